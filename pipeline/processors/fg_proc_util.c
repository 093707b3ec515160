/* Helpers shared by the processors (see fg_proc_util.h). */
#include "fg_proc_util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_hash.h"

int fg_proc_parse_double(const char *text, double *out)
{
    if (!text || !*text)
        return FG_EINVAL;
    errno = 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (errno == ERANGE || !end || *end || !isfinite(v))
        return FG_EINVAL;
    /* strtod takes hex floats and "inf"; a config number is plain decimal */
    for (const char *p = text; *p; p++)
        if (!strchr("0123456789.eE+-", *p))
            return FG_EINVAL;
    *out = v;
    return 0;
}

static int check_range(const void *value, double lo, double hi, const char *what,
                       struct fg_err *err)
{
    const char *text = *(char *const *)value;
    double v;
    if (!text)
        return 0;
    if (fg_proc_parse_double(text, &v))
        return fg_err_set(err, FG_EINVAL, "invalid number \"%s\"", text);
    if (v < lo || v > hi)
        return fg_err_set(err, FG_EINVAL, "%s is out of range (%s)", text, what);
    return 0;
}

int fg_proc_check_percentage(const void *value, struct fg_err *err)
{
    return check_range(value, 0, 100, "must be between 0 and 100", err);
}

int fg_proc_check_nonneg(const void *value, struct fg_err *err)
{
    return check_range(value, 0, HUGE_VAL, "must not be negative", err);
}

int fg_proc_check_fraction(const void *value, struct fg_err *err)
{
    return check_range(value, 0, 1, "must be between 0 and 1", err);
}

int fg_proc_check_regex(const void *value, struct fg_err *err)
{
    const char *text = *(char *const *)value;
    if (!text)
        return 0;
    regex_t re;
    int rc = regcomp(&re, text, REG_EXTENDED | REG_NOSUB);
    if (rc) {
        char msg[160];
        regerror(rc, &re, msg, sizeof(msg));
        return fg_err_set(err, FG_EINVAL, "invalid regular expression \"%s\": %s", text, msg);
    }
    regfree(&re);
    return 0;
}

static bool key_is(struct fg_bytes k, const char *key)
{
    size_t n = strlen(key);
    return k.len == n && memcmp(k.ptr, key, n) == 0;
}

const struct fg_value *fg_proc_resource_attr(const struct fg_resource *r, const char *key)
{
    for (uint32_t i = 0; i < r->n_attrs; i++)
        if (key_is(r->attrs[i].key, key))
            return &r->attrs[i].value;
    return NULL;
}

const struct fg_value *fg_proc_attr(const struct fg_profiles *p, const uint32_t *attrs,
                                    uint32_t n, const char *key)
{
    for (uint32_t i = 0; i < n; i++) {
        const struct fg_attribute *a = fg_dict_get_attribute(p, attrs[i]);
        if (key_is(fg_dict_get_string(p, a->key), key))
            return &a->value;
    }
    return NULL;
}

const char *fg_proc_value_text(const struct fg_value *v, char *buf, size_t bufsize, size_t *len)
{
    int n = 0;
    buf[0] = '\0';
    switch (v ? v->kind : FG_VALUE_EMPTY) {
    case FG_VALUE_STRING:
    case FG_VALUE_BYTES:
        *len = v->u.s.len;
        return v->u.s.len ? v->u.s.ptr : "";
    case FG_VALUE_BOOL:
        n = snprintf(buf, bufsize, "%s", v->u.b ? "true" : "false");
        break;
    case FG_VALUE_INT:
        n = snprintf(buf, bufsize, "%" PRId64, v->u.i);
        break;
    case FG_VALUE_DOUBLE:
        n = snprintf(buf, bufsize, "%.17g", v->u.d);
        break;
    default:
        break;
    }
    *len = n > 0 ? FG_MIN((size_t)n, bufsize - 1) : 0;
    return buf;
}

/* ---- bounded keyed state ---- */

struct keyslot {
    struct keyslot *next;
    uint64_t hash;
    size_t len;
    char *key;
    /* state follows, max_align_t aligned */
};

struct fg_keytab {
    size_t state_size, max_keys, n, nbuckets;
    uint64_t overflows;
    struct keyslot **buckets;
    void *overflow; /* the shared state past the bound */
};

#define SLOT_HDR ((sizeof(struct keyslot) + 15) & ~(size_t)15)

int fg_keytab_new(size_t state_size, size_t max_keys, struct fg_keytab **out)
{
    *out = NULL;
    struct fg_keytab *t = fg_calloc(1, sizeof(*t));
    if (!t)
        return FG_ENOMEM;
    t->state_size = state_size;
    t->max_keys = max_keys ? max_keys : 1;
    t->nbuckets = 64;
    t->buckets = fg_calloc(t->nbuckets, sizeof(*t->buckets));
    t->overflow = fg_calloc(1, state_size ? state_size : 1);
    if (!t->buckets || !t->overflow) {
        fg_keytab_free(t);
        return FG_ENOMEM;
    }
    *out = t;
    return 0;
}

void fg_keytab_free(struct fg_keytab *t)
{
    if (!t)
        return;
    for (size_t b = 0; t->buckets && b < t->nbuckets; b++) {
        struct keyslot *s = t->buckets[b];
        while (s) {
            struct keyslot *next = s->next;
            fg_free(s->key);
            fg_free(s);
            s = next;
        }
    }
    fg_free(t->buckets);
    fg_free(t->overflow);
    fg_free(t);
}

static void grow_buckets(struct fg_keytab *t)
{
    size_t n = t->nbuckets * 2;
    struct keyslot **b = fg_calloc(n, sizeof(*b));
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct keyslot *s = t->buckets[i];
        while (s) {
            struct keyslot *next = s->next;
            s->next = b[s->hash & (n - 1)];
            b[s->hash & (n - 1)] = s;
            s = next;
        }
    }
    fg_free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

void *fg_keytab_get(struct fg_keytab *t, const char *key, size_t len, bool *created)
{
    uint64_t h = fg_hash_bytes(0x6b657973ULL, key, len);
    *created = false;
    for (struct keyslot *s = t->buckets[h & (t->nbuckets - 1)]; s; s = s->next)
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
            return (char *)s + SLOT_HDR;
    if (t->n >= t->max_keys) {
        t->overflows++;
        return t->overflow;
    }
    struct keyslot *s = fg_calloc(1, SLOT_HDR + t->state_size);
    char *copy = fg_strndup(key, len);
    if (!s || !copy) {
        fg_free(s);
        fg_free(copy);
        return NULL;
    }
    s->hash = h;
    s->len = len;
    s->key = copy;
    if (t->n >= t->nbuckets)
        grow_buckets(t);
    s->next = t->buckets[h & (t->nbuckets - 1)];
    t->buckets[h & (t->nbuckets - 1)] = s;
    t->n++;
    *created = true;
    return (char *)s + SLOT_HDR;
}

size_t fg_keytab_count(const struct fg_keytab *t)
{
    return t->n;
}

uint64_t fg_keytab_overflows(const struct fg_keytab *t)
{
    return t->overflows;
}
