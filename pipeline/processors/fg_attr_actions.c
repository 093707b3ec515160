/* The Collector's attribute actions and include/exclude match sets over an editable
 * attribute list, shared by the attributes, resource, relabel and filter processors. */
#include "fg_attr_actions.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_arena.h"
#include "fg_digest.h"
#include "fg_hash.h"
#include "fg_log.h"
#include "fg_proc_regex.h"
#include "fg_semconv.h"

/* ---- the list ---- */

void fg_attr_list_init(struct fg_attr_list *l, struct fg_arena *arena)
{
    memset(l, 0, sizeof(*l));
    l->arena = arena;
}

static int list_reserve(struct fg_attr_list *l, uint32_t extra)
{
    if (l->n + extra <= l->cap)
        return 0;
    uint32_t cap = l->cap ? l->cap * 2 : 8;
    while (cap < l->n + extra)
        cap *= 2;
    /* the arena cannot grow in place; the old array stays behind until the arena goes */
    struct fg_attr_item *items = fg_arena_alloc(l->arena, (size_t)cap * sizeof(*items));
    if (!items)
        return FG_ENOMEM;
    if (l->n)
        memcpy(items, l->items, (size_t)l->n * sizeof(*items));
    l->items = items;
    l->cap = cap;
    return 0;
}

int fg_attr_list_from_kv(struct fg_attr_list *l, const struct fg_keyvalue *kv, uint32_t n)
{
    l->n = 0;
    if (list_reserve(l, n))
        return FG_ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        l->items[l->n++] = (struct fg_attr_item){.key = kv[i].key, .value = kv[i].value};
    return 0;
}

int fg_attr_list_from_dict(struct fg_attr_list *l, const struct fg_profiles *p,
                           const uint32_t *idx, uint32_t n)
{
    l->n = 0;
    if (list_reserve(l, n))
        return FG_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const struct fg_attribute *a = fg_dict_get_attribute(p, idx[i]);
        l->items[l->n++] = (struct fg_attr_item){
            .key = fg_dict_get_string(p, a->key),
            .unit = fg_dict_get_string(p, a->unit),
            .value = a->value,
        };
    }
    return 0;
}

static bool bytes_is(struct fg_bytes b, const char *s, size_t len)
{
    return b.len == len && (len == 0 || memcmp(b.ptr, s, len) == 0);
}

int32_t fg_attr_list_find(const struct fg_attr_list *l, const char *key, size_t len)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (bytes_is(l->items[i].key, key, len))
            return (int32_t)i;
    return -1;
}

int fg_attr_list_set(struct fg_attr_list *l, const char *key, size_t len,
                     const struct fg_value *value)
{
    int32_t i = fg_attr_list_find(l, key, len);
    if (i >= 0) {
        l->items[i].value = *value;
        return 0;
    }
    if (list_reserve(l, 1))
        return FG_ENOMEM;
    l->items[l->n++] = (struct fg_attr_item){.key = {key, (uint32_t)len}, .value = *value};
    return 0;
}

void fg_attr_list_remove(struct fg_attr_list *l, uint32_t i)
{
    if (i >= l->n)
        return;
    memmove(&l->items[i], &l->items[i + 1], (size_t)(l->n - i - 1) * sizeof(l->items[0]));
    l->n--;
}

int fg_attr_list_to_kv(const struct fg_attr_list *l, struct fg_profiles *out,
                       const struct fg_keyvalue **kv, uint32_t *n)
{
    struct fg_arena *arena = fg_profiles_arena(out);
    struct fg_keyvalue *arr = NULL;
    if (l->n && !(arr = fg_arena_calloc(arena, (size_t)l->n * sizeof(*arr))))
        return FG_ENOMEM;
    for (uint32_t i = 0; i < l->n; i++) {
        char *k = fg_arena_strndup(arena, l->items[i].key.ptr ? l->items[i].key.ptr : "",
                                   l->items[i].key.len);
        if (!k || fg_value_copy(out, &arr[i].value, &l->items[i].value))
            return FG_ENOMEM;
        arr[i].key = (struct fg_bytes){k, l->items[i].key.len};
    }
    *kv = arr;
    *n = l->n;
    return 0;
}

int fg_attr_list_to_dict(const struct fg_attr_list *l, struct fg_profiles *out,
                         const uint32_t **idx, uint32_t *n)
{
    uint32_t *arr = NULL;
    if (l->n && !(arr = fg_arena_alloc(fg_profiles_arena(out), (size_t)l->n * sizeof(*arr))))
        return FG_ENOMEM;
    for (uint32_t i = 0; i < l->n; i++) {
        const struct fg_attr_item *it = &l->items[i];
        int32_t key = fg_dict_string(out, it->key.ptr ? it->key.ptr : "", it->key.len);
        int32_t unit = it->unit.len ? fg_dict_string(out, it->unit.ptr, it->unit.len) : 0;
        if (key < 0 || unit < 0)
            return FG_ENOMEM;
        struct fg_attribute a = {.key = (uint32_t)key, .unit = (uint32_t)unit, .value = it->value};
        int32_t ai = fg_dict_attribute(out, &a);
        if (ai < 0)
            return FG_ENOMEM;
        arr[i] = (uint32_t)ai;
    }
    *idx = arr;
    *n = l->n;
    return 0;
}

/* ---- text form ---- */

static int base64(const uint8_t *p, size_t len, struct fg_buf *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63], i + 1 < len ? tab[(v >> 6) & 63] : '=',
                     i + 2 < len ? tab[v & 63] : '='};
        if (fg_buf_append(out, q, 4))
            return FG_ENOMEM;
    }
    return 0;
}

static int json_string(struct fg_bytes s, struct fg_buf *out)
{
    int rc = fg_buf_append(out, "\"", 1);
    for (uint32_t i = 0; i < s.len && !rc; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '"' || c == '\\')
            rc = fg_buf_printf(out, "\\%c", c);
        else if (c < 0x20)
            rc = fg_buf_printf(out, "\\u%04x", c);
        else
            rc = fg_buf_append(out, &s.ptr[i], 1);
    }
    return rc ? rc : fg_buf_append(out, "\"", 1);
}

static int value_text(const struct fg_value *v, struct fg_buf *out, bool nested)
{
    switch (v->kind) {
    case FG_VALUE_STRING:
        return nested ? json_string(v->u.s, out) : fg_buf_append(out, v->u.s.ptr, v->u.s.len);
    case FG_VALUE_BOOL:
        return fg_buf_append_str(out, v->u.b ? "true" : "false");
    case FG_VALUE_INT:
        return fg_buf_printf(out, "%" PRId64, v->u.i);
    case FG_VALUE_DOUBLE: {
        char tmp[40];
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, v->u.d);
            if (strtod(tmp, NULL) == v->u.d || isnan(v->u.d))
                break;
        }
        return fg_buf_append_str(out, tmp);
    }
    case FG_VALUE_BYTES: {
        int rc = nested ? fg_buf_append(out, "\"", 1) : 0;
        if (!rc)
            rc = base64((const uint8_t *)v->u.s.ptr, v->u.s.len, out);
        return rc || !nested ? rc : fg_buf_append(out, "\"", 1);
    }
    case FG_VALUE_ARRAY: {
        int rc = fg_buf_append(out, "[", 1);
        for (uint32_t i = 0; i < v->u.array.n && !rc; i++) {
            if (i)
                rc = fg_buf_append(out, ",", 1);
            if (!rc)
                rc = value_text(&v->u.array.items[i], out, true);
        }
        return rc ? rc : fg_buf_append(out, "]", 1);
    }
    case FG_VALUE_KVLIST: {
        int rc = fg_buf_append(out, "{", 1);
        for (uint32_t i = 0; i < v->u.kvlist.n && !rc; i++) {
            if (i)
                rc = fg_buf_append(out, ",", 1);
            if (!rc)
                rc = json_string(v->u.kvlist.items[i].key, out);
            if (!rc)
                rc = fg_buf_append(out, ":", 1);
            if (!rc)
                rc = value_text(&v->u.kvlist.items[i].value, out, true);
        }
        return rc ? rc : fg_buf_append(out, "}", 1);
    }
    default:
        return 0;
    }
}

int fg_value_to_text(const struct fg_value *v, struct fg_buf *out)
{
    return value_text(v, out, false);
}

/* ---- actions ---- */

static const char *const action_names[] = {"insert", "update", "upsert", "delete",
                                           "hash",   "extract", "convert", NULL};
static const char *const value_type_names[] = {"auto", "string", "int", "double", "bool", NULL};

static int name_index(const char *const *names, const char *s)
{
    for (int i = 0; s && names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

static int check_action_name(const void *value, struct fg_err *err)
{
    const char *s = *(const char *const *)value;
    if (name_index(action_names, s) >= 0)
        return 0;
    return fg_err_set(err, FG_EINVAL,
                      "unknown action \"%s\" (valid: insert, update, upsert, delete, hash, "
                      "extract, convert)",
                      s ? s : "");
}

static int check_converted_type(const void *value, struct fg_err *err)
{
    const char *s = *(const char *const *)value;
    if (s && (strcmp(s, "int") == 0 || strcmp(s, "double") == 0 || strcmp(s, "string") == 0))
        return 0;
    return fg_err_set(err, FG_EINVAL, "unknown converted_type \"%s\" (valid: int, double, string)",
                      s ? s : "");
}

const struct fg_option fg_attr_action_options[] = {
    FG_OPT_STR("key", struct fg_attr_action_cfg, key, NULL, "attribute the action works on"),
    FG_OPT_STR_CHECK("action", struct fg_attr_action_cfg, action, NULL, check_action_name,
                     "insert, update, upsert, delete, hash, extract or convert"),
    FG_OPT_STR("value", struct fg_attr_action_cfg, value, NULL,
               "value for insert/update/upsert (typed like YAML unless value_type says)"),
    FG_OPT_CHOICE("value_type", struct fg_attr_action_cfg, value_type, "auto", value_type_names,
                  "type of value: auto, string, int, double, bool"),
    FG_OPT_STR("from_attribute", struct fg_attr_action_cfg, from_attribute, NULL,
               "copy the value of this attribute instead of value"),
    FG_OPT_STR_CHECK("pattern", struct fg_attr_action_cfg, pattern, NULL, fg_regex_check,
                     "extract: regex with named groups; delete/hash: keys matching it"),
    FG_OPT_STR_CHECK("converted_type", struct fg_attr_action_cfg, converted_type, NULL,
                     check_converted_type, "convert: int, double or string"),
    FG_OPT_END,
};

int fg_attr_action_check(const void *elem, struct fg_err *err)
{
    const struct fg_attr_action_cfg *a = elem;
    if (!a->action)
        return fg_err_set(err, FG_EINVAL, "action: missing (insert, update, upsert, delete, "
                                          "hash, extract or convert)");
    int kind = name_index(action_names, a->action);
    bool has_key = a->key && *a->key;
    switch (kind) {
    case FG_ACT_INSERT:
    case FG_ACT_UPDATE:
    case FG_ACT_UPSERT:
        if (!has_key)
            return fg_err_set(err, FG_EINVAL, "%s needs a key", a->action);
        if (!a->value == !a->from_attribute)
            return fg_err_set(err, FG_EINVAL, "%s needs exactly one of value and from_attribute",
                              a->action);
        break;
    case FG_ACT_DELETE:
    case FG_ACT_HASH:
        if (!has_key == !a->pattern)
            return fg_err_set(err, FG_EINVAL, "%s needs exactly one of key and pattern",
                              a->action);
        break;
    case FG_ACT_EXTRACT: {
        if (!has_key || !a->pattern)
            return fg_err_set(err, FG_EINVAL, "extract needs a key and a pattern");
        struct fg_regex *re = NULL;
        int rc = fg_regex_compile(a->pattern, 0, &re, err);
        if (rc)
            return rc;
        bool named = false;
        for (uint32_t g = 1; g <= fg_regex_groups(re); g++)
            named |= fg_regex_group_name(re, g) != NULL;
        fg_regex_free(re);
        if (!named)
            return fg_err_set(err, FG_EINVAL,
                              "extract: pattern needs at least one named group (?P<name>...)");
        break;
    }
    case FG_ACT_CONVERT:
        if (!has_key || !a->converted_type)
            return fg_err_set(err, FG_EINVAL, "convert needs a key and a converted_type");
        break;
    default:
        return fg_err_set(err, FG_EINVAL, "unknown action \"%s\"", a->action);
    }
    if (a->value_type != FG_AVT_AUTO && a->value) {
        if (a->value_type == FG_AVT_INT) {
            int64_t v;
            if (fg_parse_int(a->value, &v))
                return fg_err_set(err, FG_EINVAL, "value \"%s\" is not an int", a->value);
        } else if (a->value_type == FG_AVT_BOOL) {
            bool b;
            if (fg_parse_bool(a->value, &b))
                return fg_err_set(err, FG_EINVAL, "value \"%s\" is not a bool", a->value);
        } else if (a->value_type == FG_AVT_DOUBLE) {
            char *end;
            errno = 0;
            (void)strtod(a->value, &end);
            if (!*a->value || *end || errno)
                return fg_err_set(err, FG_EINVAL, "value \"%s\" is not a double", a->value);
        }
    }
    return 0;
}

struct action {
    enum fg_attr_action_kind kind;
    char *key;
    size_t key_len;
    char *from;
    struct fg_value value;
    char *value_text;
    struct fg_regex *re;
    int converted_type;
};

struct fg_attr_actions {
    size_t n;
    struct action *items;
};

/* A YAML scalar typed the way the Collector's YAML decoding would type it (auto), or as
 * value_type says (checked when the config was parsed). */
static void parse_typed(const char *text, int type, struct fg_value *v)
{
    int64_t i;
    bool b;
    if ((type == FG_AVT_AUTO || type == FG_AVT_INT) && fg_parse_int(text, &i) == 0) {
        *v = (struct fg_value){.kind = FG_VALUE_INT, .u.i = i};
        return;
    }
    if ((type == FG_AVT_BOOL && fg_parse_bool(text, &b) == 0) ||
        (type == FG_AVT_AUTO && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0))) {
        *v = (struct fg_value){.kind = FG_VALUE_BOOL, .u.b = type == FG_AVT_BOOL ? b : text[0] == 't'};
        return;
    }
    if (type == FG_AVT_AUTO || type == FG_AVT_DOUBLE) {
        char *end;
        errno = 0;
        double d = strtod(text, &end);
        if (*text && !*end && !errno && (type == FG_AVT_DOUBLE || strpbrk(text, ".eE"))) {
            *v = (struct fg_value){.kind = FG_VALUE_DOUBLE, .u.d = d};
            return;
        }
    }
    *v = (struct fg_value){.kind = FG_VALUE_STRING, .u.s = {text, (uint32_t)strlen(text)}};
}

void fg_attr_actions_free(struct fg_attr_actions *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++) {
        fg_free(a->items[i].key);
        fg_free(a->items[i].from);
        fg_free(a->items[i].value_text);
        fg_regex_free(a->items[i].re);
    }
    fg_free(a->items);
    fg_free(a);
}

int fg_attr_actions_compile(const struct fg_structlist *cfg, struct fg_attr_actions **out,
                            struct fg_err *err)
{
    struct fg_attr_actions *a = fg_calloc(1, sizeof(*a));
    int rc = FG_ENOMEM;
    if (!a || (cfg->n && !(a->items = fg_calloc(cfg->n, sizeof(*a->items)))))
        goto fail;
    for (size_t i = 0; i < cfg->n; i++) {
        const struct fg_attr_action_cfg *c = (const struct fg_attr_action_cfg *)cfg->items + i;
        if ((rc = fg_attr_action_check(c, err)) != 0) {
            fg_err_prefix(err, "actions[%zu]", i);
            goto fail;
        }
        struct action *x = &a->items[a->n++];
        x->kind = (enum fg_attr_action_kind)name_index(action_names, c->action);
        rc = FG_ENOMEM;
        if (c->key && *c->key) {
            if (!(x->key = fg_strdup(c->key)))
                goto fail;
            x->key_len = strlen(x->key);
        }
        if (c->from_attribute && !(x->from = fg_strdup(c->from_attribute)))
            goto fail;
        if (c->value) {
            if (!(x->value_text = fg_strdup(c->value)))
                goto fail;
            parse_typed(x->value_text, c->value_type, &x->value);
        }
        if (c->pattern && (rc = fg_regex_compile(c->pattern, 0, &x->re, err)) != 0)
            goto fail;
        if (c->converted_type)
            x->converted_type = name_index(value_type_names, c->converted_type);
    }
    *out = a;
    return 0;
fail:
    fg_attr_actions_free(a);
    if (rc == FG_ENOMEM)
        fg_err_set(err, rc, "out of memory");
    return rc;
}

/* The Collector's sha2Hasher (coreinternal/attraction): strings by their bytes, ints and
 * doubles as 8 little-endian bytes, bools as one byte; other kinds become "". */
static int hash_value(struct fg_attr_list *l, struct fg_value *v)
{
    uint8_t buf[8];
    const void *data = buf;
    size_t len = 0;
    switch (v->kind) {
    case FG_VALUE_STRING:
        data = v->u.s.ptr;
        len = v->u.s.len;
        break;
    case FG_VALUE_BOOL:
        buf[0] = v->u.b ? 1 : 0;
        len = 1;
        break;
    case FG_VALUE_INT:
    case FG_VALUE_DOUBLE: {
        uint64_t bits;
        if (v->kind == FG_VALUE_INT)
            bits = (uint64_t)v->u.i;
        else
            memcpy(&bits, &v->u.d, 8);
        for (int i = 0; i < 8; i++)
            buf[i] = (uint8_t)(bits >> (8 * i));
        len = 8;
        break;
    }
    default:
        break;
    }
    char hex[65] = "";
    if (len || v->kind == FG_VALUE_STRING) /* an empty string hashes too, as in the Collector */
        fg_sha256_hex(data ? data : "", len, hex);
    char *s = fg_arena_strndup(l->arena, hex, strlen(hex));
    if (!s)
        return FG_ENOMEM;
    *v = (struct fg_value){.kind = FG_VALUE_STRING, .u.s = {s, (uint32_t)strlen(hex)}};
    return 0;
}

static int convert_value(struct fg_attr_list *l, struct fg_value *v, int to)
{
    struct fg_value nv;
    char tmp[64];
    switch (to) {
    case FG_AVT_INT:
        if (v->kind == FG_VALUE_INT)
            return 0;
        if (v->kind == FG_VALUE_BOOL)
            nv = (struct fg_value){.kind = FG_VALUE_INT, .u.i = v->u.b};
        else if (v->kind == FG_VALUE_DOUBLE && v->u.d > -9.2e18 && v->u.d < 9.2e18)
            nv = (struct fg_value){.kind = FG_VALUE_INT, .u.i = (int64_t)v->u.d};
        else if (v->kind == FG_VALUE_STRING && v->u.s.len < sizeof(tmp)) {
            memcpy(tmp, v->u.s.ptr, v->u.s.len);
            tmp[v->u.s.len] = '\0';
            int64_t i;
            if (fg_parse_int(tmp, &i))
                return 0; /* the Collector leaves values that do not parse alone */
            nv = (struct fg_value){.kind = FG_VALUE_INT, .u.i = i};
        } else
            return 0;
        break;
    case FG_AVT_DOUBLE:
        if (v->kind == FG_VALUE_DOUBLE)
            return 0;
        if (v->kind == FG_VALUE_BOOL)
            nv = (struct fg_value){.kind = FG_VALUE_DOUBLE, .u.d = v->u.b ? 1.0 : 0.0};
        else if (v->kind == FG_VALUE_INT)
            nv = (struct fg_value){.kind = FG_VALUE_DOUBLE, .u.d = (double)v->u.i};
        else if (v->kind == FG_VALUE_STRING && v->u.s.len && v->u.s.len < sizeof(tmp)) {
            memcpy(tmp, v->u.s.ptr, v->u.s.len);
            tmp[v->u.s.len] = '\0';
            char *end;
            errno = 0;
            double d = strtod(tmp, &end);
            if (*end || errno)
                return 0;
            nv = (struct fg_value){.kind = FG_VALUE_DOUBLE, .u.d = d};
        } else
            return 0;
        break;
    case FG_AVT_STRING: {
        if (v->kind == FG_VALUE_STRING)
            return 0;
        struct fg_buf b = {0};
        if (fg_value_to_text(v, &b)) {
            fg_buf_free(&b);
            return FG_ENOMEM;
        }
        char *s = fg_arena_strndup(l->arena, b.data ? (const char *)b.data : "", b.len);
        nv = (struct fg_value){.kind = FG_VALUE_STRING, .u.s = {s, (uint32_t)b.len}};
        fg_buf_free(&b);
        if (!s)
            return FG_ENOMEM;
        break;
    }
    default:
        return 0;
    }
    *v = nv;
    return 0;
}

static int apply_one(const struct action *x, struct fg_attr_list *l)
{
    int32_t at = x->key ? fg_attr_list_find(l, x->key, x->key_len) : -1;
    switch (x->kind) {
    case FG_ACT_INSERT:
    case FG_ACT_UPDATE:
    case FG_ACT_UPSERT: {
        if ((x->kind == FG_ACT_INSERT && at >= 0) || (x->kind == FG_ACT_UPDATE && at < 0))
            return 0;
        struct fg_value v = x->value;
        if (x->from) {
            int32_t src = fg_attr_list_find(l, x->from, strlen(x->from));
            if (src < 0)
                return 0;
            v = l->items[src].value;
        }
        return fg_attr_list_set(l, x->key, x->key_len, &v);
    }
    case FG_ACT_DELETE:
        if (!x->re) {
            if (at >= 0)
                fg_attr_list_remove(l, (uint32_t)at);
            return 0;
        }
        for (uint32_t i = l->n; i-- > 0;)
            if (fg_regex_match(x->re, l->items[i].key.ptr, l->items[i].key.len))
                fg_attr_list_remove(l, i);
        return 0;
    case FG_ACT_HASH:
        if (!x->re)
            return at >= 0 ? hash_value(l, &l->items[at].value) : 0;
        for (uint32_t i = 0; i < l->n; i++)
            if (fg_regex_match(x->re, l->items[i].key.ptr, l->items[i].key.len) &&
                hash_value(l, &l->items[i].value))
                return FG_ENOMEM;
        return 0;
    case FG_ACT_EXTRACT: {
        if (at < 0 || l->items[at].value.kind != FG_VALUE_STRING)
            return 0;
        struct fg_bytes s = l->items[at].value.u.s;
        struct fg_regex_match m;
        if (!fg_regex_exec(x->re, s.ptr, s.len, &m))
            return 0;
        for (uint32_t g = 1; g <= fg_regex_groups(x->re); g++) {
            const char *name = fg_regex_group_name(x->re, g);
            if (!name)
                continue;
            struct fg_value v = {.kind = FG_VALUE_STRING};
            if (m.so[g] >= 0)
                v.u.s = (struct fg_bytes){s.ptr + m.so[g], (uint32_t)(m.eo[g] - m.so[g])};
            else
                v.u.s = (struct fg_bytes){"", 0};
            if (fg_attr_list_set(l, name, strlen(name), &v))
                return FG_ENOMEM;
        }
        return 0;
    }
    case FG_ACT_CONVERT:
        return at >= 0 ? convert_value(l, &l->items[at].value, x->converted_type) : 0;
    }
    return 0;
}

int fg_attr_actions_apply(const struct fg_attr_actions *a, struct fg_attr_list *l)
{
    for (size_t i = 0; i < a->n; i++) {
        int rc = apply_one(&a->items[i], l);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- match sets ---- */

const char *const fg_match_type_names[] = {"strict", "regexp", NULL};

const struct fg_option fg_match_kv_options[] = {
    FG_OPT_STR("key", struct fg_attr_match_kv, key, NULL, "attribute key"),
    FG_OPT_STR("value", struct fg_attr_match_kv, value, NULL,
               "value (strict: equal text; regexp: a regex); absent = the key exists"),
    FG_OPT_END,
};

static int check_match_kv(const void *elem, struct fg_err *err)
{
    const struct fg_attr_match_kv *kv = elem;
    if (!kv->key || !*kv->key)
        return fg_err_set(err, FG_EINVAL, "key: missing");
    return 0;
}

const struct fg_option fg_match_options[] = {
    FG_OPT_CHOICE("match_type", struct fg_match_cfg, match_type, "strict", fg_match_type_names,
                  "strict (equal text) or regexp (values are regexes)"),
    FG_OPT_LIST("services", struct fg_match_cfg, services, "service.name values (any)"),
    FG_OPT_STRUCTS_CHECK("resources", struct fg_match_cfg, resources, fg_match_kv_options,
                         struct fg_attr_match_kv, check_match_kv,
                         "resource attributes that must all match"),
    FG_OPT_STRUCTS_CHECK("attributes", struct fg_match_cfg, attributes, fg_match_kv_options,
                         struct fg_attr_match_kv, check_match_kv,
                         "profile (or sample) attributes that must all match"),
    FG_OPT_LIST("sample_types", struct fg_match_cfg, sample_types,
                "profile sample types (e.g. cpu, alloc_space); any"),
    FG_OPT_END,
};

struct match_kv {
    char *key;
    size_t key_len;
    char *value; /* strict; NULL = exists */
    struct fg_regex *re;
};

struct match_str {
    char *s;
    struct fg_regex *re;
};

struct fg_match {
    bool regexp;
    size_t n_services, n_resources, n_attributes, n_sample_types;
    struct match_str *services, *sample_types;
    struct match_kv *resources, *attributes;
};

void fg_match_free(struct fg_match *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_services; i++) {
        fg_free(m->services[i].s);
        fg_regex_free(m->services[i].re);
    }
    for (size_t i = 0; i < m->n_sample_types; i++) {
        fg_free(m->sample_types[i].s);
        fg_regex_free(m->sample_types[i].re);
    }
    for (size_t i = 0; i < m->n_resources; i++) {
        fg_free(m->resources[i].key);
        fg_free(m->resources[i].value);
        fg_regex_free(m->resources[i].re);
    }
    for (size_t i = 0; i < m->n_attributes; i++) {
        fg_free(m->attributes[i].key);
        fg_free(m->attributes[i].value);
        fg_regex_free(m->attributes[i].re);
    }
    fg_free(m->services);
    fg_free(m->sample_types);
    fg_free(m->resources);
    fg_free(m->attributes);
    fg_free(m);
}

static int compile_strs(const struct fg_strlist *l, bool regexp, struct match_str **out,
                        size_t *n, const char *what, struct fg_err *err)
{
    if (!l->n)
        return 0;
    if (!(*out = fg_calloc(l->n, sizeof(**out))))
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    for (size_t i = 0; i < l->n; i++) {
        struct match_str *s = &(*out)[(*n)++];
        if (!(s->s = fg_strdup(l->items[i])))
            return fg_err_set(err, FG_ENOMEM, "out of memory");
        int rc;
        if (regexp && (rc = fg_regex_compile(s->s, 0, &s->re, err)) != 0) {
            fg_err_prefix(err, "%s[%zu]", what, i);
            return rc;
        }
    }
    return 0;
}

static int compile_kvs(const struct fg_structlist *l, bool regexp, struct match_kv **out,
                       size_t *n, const char *what, struct fg_err *err)
{
    if (!l->n)
        return 0;
    if (!(*out = fg_calloc(l->n, sizeof(**out))))
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    for (size_t i = 0; i < l->n; i++) {
        const struct fg_attr_match_kv *c = (const struct fg_attr_match_kv *)l->items + i;
        struct match_kv *kv = &(*out)[(*n)++];
        if (!c->key)
            return fg_err_set(err, FG_EINVAL, "%s[%zu]: key: missing", what, i);
        if (!(kv->key = fg_strdup(c->key)) || (c->value && !(kv->value = fg_strdup(c->value))))
            return fg_err_set(err, FG_ENOMEM, "out of memory");
        kv->key_len = strlen(kv->key);
        int rc;
        if (regexp && kv->value && (rc = fg_regex_compile(kv->value, 0, &kv->re, err)) != 0) {
            fg_err_prefix(err, "%s[%zu].value", what, i);
            return rc;
        }
    }
    return 0;
}

int fg_match_compile(const struct fg_match_cfg *cfg, struct fg_match **out, struct fg_err *err)
{
    *out = NULL;
    if (!cfg->services.n && !cfg->resources.n && !cfg->attributes.n && !cfg->sample_types.n)
        return 0;
    struct fg_match *m = fg_calloc(1, sizeof(*m));
    if (!m)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    m->regexp = cfg->match_type == 1;
    int rc;
    if ((rc = compile_strs(&cfg->services, m->regexp, &m->services, &m->n_services, "services",
                           err)) ||
        (rc = compile_strs(&cfg->sample_types, m->regexp, &m->sample_types, &m->n_sample_types,
                           "sample_types", err)) ||
        (rc = compile_kvs(&cfg->resources, m->regexp, &m->resources, &m->n_resources,
                          "resources", err)) ||
        (rc = compile_kvs(&cfg->attributes, m->regexp, &m->attributes, &m->n_attributes,
                          "attributes", err))) {
        fg_match_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int fg_match_validate(const struct fg_match_cfg *cfg, const char *what, struct fg_err *err)
{
    struct fg_match *m = NULL;
    int rc = fg_match_compile(cfg, &m, err);
    fg_match_free(m);
    if (rc)
        fg_err_prefix(err, "%s", what);
    return rc;
}

bool fg_match_needs_profile(const struct fg_match *m)
{
    return m && (m->n_attributes || m->n_sample_types);
}

/* Text of a value for matching; strings without copying. */
static bool value_matches(const struct fg_value *v, const char *want, const struct fg_regex *re)
{
    struct fg_buf b = {0};
    const char *s;
    size_t len;
    if (v->kind == FG_VALUE_STRING) {
        s = v->u.s.ptr ? v->u.s.ptr : "";
        len = v->u.s.len;
    } else {
        if (fg_value_to_text(v, &b) || fg_buf_append(&b, "", 1)) {
            fg_buf_free(&b);
            return false;
        }
        s = (const char *)b.data;
        len = b.len - 1; /* the NUL is for regexec only */
    }
    bool ok = re ? fg_regex_match(re, s, len) : (strlen(want) == len && memcmp(s, want, len) == 0);
    fg_buf_free(&b);
    return ok;
}

static bool str_matches(const struct match_str *m, struct fg_bytes s)
{
    if (m->re)
        return fg_regex_match(m->re, s.ptr ? s.ptr : "", s.len);
    return bytes_is(s, m->s, strlen(m->s));
}

static bool kv_matches(const struct match_kv *kv, const struct fg_value *v)
{
    return !kv->value || value_matches(v, kv->value, kv->re);
}

static const struct fg_value *find_kv(const struct fg_keyvalue *kv, uint32_t n, const char *key,
                                      size_t len)
{
    for (uint32_t i = 0; i < n; i++)
        if (bytes_is(kv[i].key, key, len))
            return &kv[i].value;
    return NULL;
}

static const struct fg_value *find_dict(const struct fg_profiles *p, const uint32_t *idx,
                                        uint32_t n, const char *key, size_t len)
{
    for (uint32_t i = 0; i < n; i++) {
        const struct fg_attribute *a = fg_dict_get_attribute(p, idx[i]);
        if (bytes_is(fg_dict_get_string(p, a->key), key, len))
            return &a->value;
    }
    return NULL;
}

bool fg_match_dict_attrs(const struct fg_match *m, const struct fg_profiles *p,
                         const uint32_t *idx, uint32_t n)
{
    for (size_t i = 0; i < m->n_attributes; i++) {
        const struct match_kv *kv = &m->attributes[i];
        const struct fg_value *v = find_dict(p, idx, n, kv->key, kv->key_len);
        if (!v || !kv_matches(kv, v))
            return false;
    }
    return true;
}

bool fg_match_profile(const struct fg_match *m, const struct fg_profiles *p,
                      const struct fg_resource *res, const struct fg_profile *prof)
{
    if (m->n_services) {
        const struct fg_value *v = find_kv(res->attrs, res->n_attrs, FG_SEMCONV_SERVICE_NAME,
                                              strlen(FG_SEMCONV_SERVICE_NAME));
        bool any = false;
        for (size_t i = 0; v && v->kind == FG_VALUE_STRING && i < m->n_services && !any; i++)
            any = str_matches(&m->services[i], v->u.s);
        if (!any)
            return false;
    }
    for (size_t i = 0; i < m->n_resources; i++) {
        const struct match_kv *kv = &m->resources[i];
        const struct fg_value *v = find_kv(res->attrs, res->n_attrs, kv->key, kv->key_len);
        if (!v || !kv_matches(kv, v))
            return false;
    }
    if (!prof)
        return true;
    if (m->n_attributes && !fg_match_dict_attrs(m, p, prof->attrs, prof->n_attrs))
        return false;
    if (m->n_sample_types) {
        struct fg_bytes type = fg_dict_get_string(p, prof->sample_type.type);
        bool any = false;
        for (size_t i = 0; i < m->n_sample_types && !any; i++)
            any = str_matches(&m->sample_types[i], type);
        if (!any)
            return false;
    }
    return true;
}

/* ---- index-list cache ---- */

static uint64_t idx_hash(const uint32_t *idx, uint32_t n)
{
    return fg_hash_bytes(0x5eed, idx, (size_t)n * sizeof(*idx));
}

static struct fg_idx_memo_entry *memo_slot(const struct fg_idx_memo *m, const uint32_t *idx,
                                           uint32_t n, uint64_t h)
{
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct fg_idx_memo_entry *e = &m->slots[i];
        if (!e->used || (e->hash == h && e->n_in == n &&
                         (n == 0 || memcmp(e->in, idx, n * sizeof(*idx)) == 0)))
            return e;
    }
}

static int memo_grow(struct fg_idx_memo *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    struct fg_idx_memo_entry *slots = fg_calloc(cap, sizeof(*slots));
    if (!slots)
        return FG_ENOMEM;
    struct fg_idx_memo old = *m;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].used)
            *memo_slot(m, old.slots[i].in, old.slots[i].n_in, old.slots[i].hash) = old.slots[i];
    fg_free(old.slots);
    return 0;
}

void fg_idx_memo_free(struct fg_idx_memo *m)
{
    fg_free(m->slots);
    memset(m, 0, sizeof(*m));
}

const struct fg_idx_memo_entry *fg_idx_memo_get(const struct fg_idx_memo *m, const uint32_t *idx,
                                                uint32_t n)
{
    if (!m->cap)
        return NULL;
    const struct fg_idx_memo_entry *e = memo_slot(m, idx, n, idx_hash(idx, n));
    return e->used ? e : NULL;
}

int fg_idx_memo_put(struct fg_idx_memo *m, const uint32_t *in, uint32_t n_in, bool keep,
                    const uint32_t *out, uint32_t n_out)
{
    if ((m->n + 1) * 2 > m->cap && memo_grow(m))
        return FG_ENOMEM;
    uint64_t h = idx_hash(in, n_in);
    struct fg_idx_memo_entry *e = memo_slot(m, in, n_in, h);
    if (!e->used)
        m->n++;
    *e = (struct fg_idx_memo_entry){h, in, n_in, true, keep, out, n_out};
    return 0;
}

/* ---- processor plumbing ---- */

int fg_proc_copy(const struct fg_profiles *in, struct fg_profiles **out, struct fg_err *err)
{
    struct fg_profiles *p = NULL;
    int rc = fg_profiles_new(&p);
    if (rc)
        return fg_err_set(err, rc, "out of memory");
    if ((rc = fg_profiles_merge(p, in, err)) != 0) {
        fg_profiles_unref(p);
        return rc;
    }
    memcpy(p->tenant, in->tenant, sizeof(p->tenant));
    *out = p;
    return 0;
}

void fg_proc_release_profile(struct fg_profile *prof)
{
    fg_free(prof->samples);
    prof->samples = NULL;
    prof->n_samples = prof->cap_samples = 0;
}

void fg_proc_release_scope(struct fg_scope_profiles *sp)
{
    for (uint32_t i = 0; i < sp->n_profiles; i++)
        fg_proc_release_profile(&sp->profiles[i]);
    fg_free(sp->profiles);
    sp->profiles = NULL;
    sp->n_profiles = sp->cap_profiles = 0;
}

void fg_proc_release_resource(struct fg_resource_profiles *rp)
{
    for (uint32_t s = 0; s < rp->n_scopes; s++)
        fg_proc_release_scope(&rp->scopes[s]);
    fg_free(rp->scopes);
    rp->scopes = NULL;
    rp->n_scopes = rp->cap_scopes = 0;
}

void fg_proc_recount(struct fg_profiles *p)
{
    uint64_t n = 0;
    for (uint32_t r = 0; r < p->n_resources; r++)
        for (uint32_t s = 0; s < p->resources[r].n_scopes; s++)
            for (uint32_t i = 0; i < p->resources[r].scopes[s].n_profiles; i++)
                n += p->resources[r].scopes[s].profiles[i].n_samples;
    p->n_samples = n;
}

int fg_proc_finish(struct fg_consumer *next, const char *id, struct fg_profiles *in,
                   struct fg_profiles *out, int rc, struct fg_err *err)
{
    if (rc) {
        fg_profiles_unref(out);
        fg_profiles_unref(in);
        if (rc == FG_ENOMEM) {
            fg_log(FG_LOG_WARN, id, "out of memory while processing a batch; asking to retry");
            return fg_err_set(err, FG_ERETRYABLE, "%s: out of memory", id);
        }
        return rc;
    }
    if (out) {
        fg_profiles_unref(in);
        in = out;
    }
    return fg_consume(next, in, err);
}

int fg_proc_finish_filtered(struct fg_consumer *next, const char *id, struct fg_profiles *in,
                            struct fg_profiles *out, int rc, bool emptied, struct fg_err *err)
{
    if (!rc && emptied) {
        fg_profiles_unref(out);
        fg_profiles_unref(in);
        return 0;
    }
    return fg_proc_finish(next, id, in, out, rc, err);
}

int fg_proc_edit_copy(const struct fg_profiles *in, fg_proc_edit_fn edit, const void *ctx,
                      struct fg_profiles **outp, struct fg_err *err)
{
    struct fg_profiles *out = NULL;
    struct fg_arena *scratch = NULL;
    *outp = NULL;
    int rc = fg_proc_copy(in, &out, err);
    if (rc)
        return rc;
    if ((rc = fg_arena_new(&scratch)) != 0)
        goto fail;
    struct fg_attr_list l;
    fg_attr_list_init(&l, scratch);
    if ((rc = edit(ctx, out, &l)) != 0)
        goto fail;
    fg_arena_free(scratch);
    *outp = out;
    return 0;
fail:
    fg_arena_free(scratch);
    fg_profiles_unref(out);
    return fg_err_set(err, rc, "%s", fg_strerror(rc));
}

int fg_proc_start_nothing(struct fg_component *c, struct fg_err *err)
{
    (void)c;
    (void)err;
    return 0;
}

int fg_proc_shutdown_nothing(struct fg_component *c, int64_t deadline_ns)
{
    (void)c;
    (void)deadline_ns;
    return 0;
}
