/* libyaml events → a small node tree that remembers where each node was written, so config
 * errors can say FILE:LINE:COL; scalar values get ${env:VAR} expansion on the way. */
#include "fg_yaml.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "fg_alloc.h"
#include "fg_buf.h"
#include "fg_common.h"

/* Deep nesting only comes from hostile input; the limit keeps recursion bounded. */
#define MAX_DEPTH 64
#define MAX_ENV_NAME 256

struct yctx {
    yaml_parser_t parser;
    const char *file;
    struct fg_diag *diag;
};

void fg__ynode_free(struct fg_ynode *node)
{
    if (!node)
        return;
    size_t kids = node->kind == FG_YNODE_MAPPING ? 2 * node->n : node->n;
    if (node->kind != FG_YNODE_SCALAR)
        for (size_t i = 0; i < kids; i++)
            fg__ynode_free(node->kids[i]);
    fg_free(node->kids);
    fg_free(node->text);
    fg_free(node);
}

static int valid_env_name(const char *s, size_t len)
{
    if (!len || len >= MAX_ENV_NAME)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

/* ${env:VAR}, ${VAR}, ${env:VAR:-default}, ${VAR:-default}; $$ is a literal $; any other $
 * stays as written. An unset variable without default becomes "" with a warning. */
static int expand_env(struct yctx *c, const char *in, size_t len, int line, int col,
                      char **out)
{
    struct fg_buf b;
    fg_buf_init(&b, 0);
    int rc = 0;
    size_t i = 0;
    while (i < len) {
        if (in[i] != '$' || i + 1 >= len || (in[i + 1] != '$' && in[i + 1] != '{')) {
            size_t start = i++;
            while (i < len && in[i] != '$')
                i++;
            if ((rc = fg_buf_append(&b, in + start, i - start)) != 0)
                goto fail;
            continue;
        }
        if (in[i + 1] == '$') {
            if ((rc = fg_buf_append(&b, "$", 1)) != 0)
                goto fail;
            i += 2;
            continue;
        }
        const char *inner = in + i + 2;
        const char *close = memchr(inner, '}', len - (i + 2));
        if (!close) {
            fg_diag_add(c->diag, 1, c->file, line, col,
                        "unterminated \"${\" in value (write $$ for a literal $)");
            if ((rc = fg_buf_append(&b, in + i, len - i)) != 0)
                goto fail;
            break;
        }
        size_t inner_len = (size_t)(close - inner);
        const char *name = inner;
        size_t name_len = inner_len;
        if (name_len >= 4 && memcmp(name, "env:", 4) == 0) {
            name += 4;
            name_len -= 4;
        }
        const char *def = NULL;
        size_t def_len = 0;
        for (size_t k = 0; k + 1 < name_len; k++) {
            if (name[k] == ':' && name[k + 1] == '-') {
                def = name + k + 2;
                def_len = name_len - k - 2;
                name_len = k;
                break;
            }
        }
        if (!valid_env_name(name, name_len)) {
            fg_diag_add(c->diag, 1, c->file, line, col,
                        "invalid environment reference \"${%.*s}\" (expected ${env:NAME}, "
                        "${NAME} or ${NAME:-default})",
                        (int)FG_MIN(inner_len, 200), inner);
        } else {
            char var[MAX_ENV_NAME];
            memcpy(var, name, name_len);
            var[name_len] = '\0';
            const char *v = getenv(var);
            if (v && *v) {
                rc = fg_buf_append_str(&b, v);
            } else if (def) {
                rc = fg_buf_append(&b, def, def_len);
            } else if (!v) {
                fg_diag_add(c->diag, 0, c->file, line, col,
                            "environment variable %s is not set; using an empty value", var);
            }
            if (rc)
                goto fail;
        }
        i = (size_t)(close - in) + 1;
    }
    if ((rc = fg_buf_append(&b, "", 1)) != 0)
        goto fail;
    size_t n;
    *out = (char *)fg_buf_steal(&b, &n);
    return 0;
fail:
    fg_buf_free(&b);
    return FG_ENOMEM;
}

static struct fg_ynode *node_new(enum fg_ynode_kind kind, const yaml_mark_t *mark)
{
    struct fg_ynode *n = fg_calloc(1, sizeof(*n));
    if (n) {
        n->kind = kind;
        n->line = mark->line >= (size_t)INT32_MAX ? INT32_MAX : (int)mark->line + 1;
        n->col = mark->column >= (size_t)INT32_MAX ? INT32_MAX : (int)mark->column + 1;
    }
    return n;
}

static int node_put(struct fg_ynode *parent, size_t used, struct fg_ynode *kid, size_t *cap)
{
    if (used == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        struct fg_ynode **k = fg_realloc(parent->kids, ncap * sizeof(*k));
        if (!k)
            return FG_ENOMEM;
        parent->kids = k;
        *cap = ncap;
    }
    parent->kids[used] = kid;
    return 0;
}

static int syntax_error(struct yctx *c)
{
    if (c->parser.error == YAML_MEMORY_ERROR)
        return FG_ENOMEM;
    const yaml_mark_t *m = &c->parser.problem_mark;
    const char *problem = c->parser.problem ? c->parser.problem : "malformed YAML";
    if (c->parser.context)
        fg_diag_add(c->diag, 1, c->file, (int)FG_MIN(m->line, 1000000000) + 1,
                    (int)FG_MIN(m->column, 1000000000) + 1, "YAML syntax error: %s %s",
                    problem, c->parser.context);
    else
        fg_diag_add(c->diag, 1, c->file, (int)FG_MIN(m->line, 1000000000) + 1,
                    (int)FG_MIN(m->column, 1000000000) + 1, "YAML syntax error: %s", problem);
    return FG_EINVAL;
}

static int next_event(struct yctx *c, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&c->parser, ev))
        return syntax_error(c);
    return 0;
}

static int is_null_scalar(const yaml_event_t *ev)
{
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || ev->data.scalar.tag)
        return 0;
    const char *v = (const char *)ev->data.scalar.value;
    return strcmp(v, "") == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* Builds the node that starts with ev (consumed here, deleted by the caller). */
static int parse_node(struct yctx *c, yaml_event_t *ev, int depth, int is_key,
                      struct fg_ynode **out)
{
    struct fg_ynode *node = NULL;
    int rc = 0;
    *out = NULL;
    if (depth > MAX_DEPTH) {
        fg_diag_add(c->diag, 1, c->file, (int)FG_MIN(ev->start_mark.line, 1000000000) + 1,
                    (int)FG_MIN(ev->start_mark.column, 1000000000) + 1,
                    "nesting deeper than %d levels", MAX_DEPTH);
        return FG_EINVAL;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        node = node_new(FG_YNODE_SCALAR, &ev->start_mark);
        if (!node)
            return FG_ENOMEM;
        node->is_null = is_null_scalar(ev);
        const char *v = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;
        if (is_key || node->is_null)
            node->text = fg_strndup(v, len);
        else if (expand_env(c, v, len, node->line, node->col, &node->text) != 0)
            node->text = NULL;
        if (!node->text) {
            rc = FG_ENOMEM;
            goto fail;
        }
        *out = node;
        return 0;
    }
    case YAML_ALIAS_EVENT:
        fg_diag_add(c->diag, 1, c->file, (int)FG_MIN(ev->start_mark.line, 1000000000) + 1,
                    (int)FG_MIN(ev->start_mark.column, 1000000000) + 1,
                    "YAML aliases (*%s) are not supported",
                    ev->data.alias.anchor ? (const char *)ev->data.alias.anchor : "");
        return FG_EINVAL;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        yaml_event_type_t end = is_map ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT;
        node = node_new(is_map ? FG_YNODE_MAPPING : FG_YNODE_SEQUENCE, &ev->start_mark);
        if (!node)
            return FG_ENOMEM;
        size_t cap = 0;
        for (;;) {
            yaml_event_t kev;
            if ((rc = next_event(c, &kev)) != 0)
                goto fail;
            if (kev.type == end) {
                yaml_event_delete(&kev);
                break;
            }
            struct fg_ynode *kid;
            rc = parse_node(c, &kev, depth + 1, is_map, &kid);
            yaml_event_delete(&kev);
            if (rc)
                goto fail;
            if ((rc = node_put(node, is_map ? 2 * node->n : node->n, kid, &cap)) != 0) {
                fg__ynode_free(kid);
                goto fail;
            }
            if (!is_map) {
                node->n++;
                continue;
            }
            yaml_event_t vev;
            if ((rc = next_event(c, &vev)) != 0) {
                node->kids[2 * node->n + 1] = NULL;
                node->n++; /* so the key is freed with the node */
                goto fail;
            }
            rc = parse_node(c, &vev, depth + 1, 0, &kid);
            yaml_event_delete(&vev);
            if (!rc && (rc = node_put(node, 2 * node->n + 1, kid, &cap)) != 0)
                fg__ynode_free(kid);
            if (rc) {
                /* keys and values come in pairs; the capacity is even, so this slot exists */
                node->kids[2 * node->n + 1] = NULL;
                node->n++;
                goto fail;
            }
            node->n++;
        }
        *out = node;
        return 0;
    }
    default:
        fg_diag_add(c->diag, 1, c->file, (int)FG_MIN(ev->start_mark.line, 1000000000) + 1,
                    (int)FG_MIN(ev->start_mark.column, 1000000000) + 1,
                    "unexpected YAML event");
        return FG_EINVAL;
    }
fail:
    fg__ynode_free(node);
    return rc;
}

int fg__yaml_parse(const char *file, const char *data, size_t len, struct fg_diag *diag,
                   struct fg_ynode **root)
{
    struct yctx c;
    struct fg_ynode *doc = NULL;
    yaml_event_t ev;
    int have_event = 0;
    int rc = 0;
    *root = NULL;
    memset(&c, 0, sizeof(c));
    c.file = file;
    c.diag = diag;
    if (!yaml_parser_initialize(&c.parser))
        return FG_ENOMEM;
    yaml_parser_set_input_string(&c.parser, (const unsigned char *)data, len);
    int docs = 0;
    for (;;) {
        if ((rc = next_event(&c, &ev)) != 0)
            goto fail;
        have_event = 1;
        if (ev.type == YAML_STREAM_END_EVENT)
            break;
        if (ev.type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            fg_diag_add(diag, 1, file, (int)FG_MIN(ev.start_mark.line, 1000000000) + 1,
                        (int)FG_MIN(ev.start_mark.column, 1000000000) + 1,
                        "more than one YAML document; a configuration is one document");
            rc = FG_EINVAL;
            goto fail;
        }
        if (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_ALIAS_EVENT ||
            ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
            if ((rc = parse_node(&c, &ev, 0, 0, &doc)) != 0)
                goto fail;
        }
        yaml_event_delete(&ev);
        have_event = 0;
    }
    yaml_event_delete(&ev);
    yaml_parser_delete(&c.parser);
    *root = doc;
    return 0;
fail:
    if (have_event)
        yaml_event_delete(&ev);
    yaml_parser_delete(&c.parser);
    fg__ynode_free(doc);
    return rc;
}
