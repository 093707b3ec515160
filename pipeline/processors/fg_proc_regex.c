/* RE2-syntax regexes on top of glibc's POSIX regcomp: a translator from the RE2 subset
 * people write in Collector/Prometheus configs to ERE, with a map from the user's group
 * numbers to the POSIX ones, and Go-style template expansion. */
#include "fg_proc_regex.h"

#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_text.h"

struct fg_regex {
    regex_t re;
    uint32_t n_groups;                         /* user-visible capturing groups */
    uint32_t posix_of[FG_REGEX_MAX_GROUPS + 1]; /* user group i → POSIX group */
    char *names[FG_REGEX_MAX_GROUPS + 1];      /* user group i → name or NULL */
};

struct translator {
    struct fg_buf out;
    struct fg_regex *re;
    uint32_t posix_groups; /* '(' emitted so far */
    int cflags;
    struct fg_err *err;
};

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* \t \n \r \f \v \xHH: the byte they stand for, or -1. *used counts pattern bytes eaten
 * after the backslash. */
static int escape_byte(const char *p, size_t *used)
{
    *used = 1;
    switch (*p) {
    case 't':
        return '\t';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 'f':
        return '\f';
    case 'v':
        return '\v';
    case 'x':
        if (fg_hex_digit(p[1]) >= 0 && fg_hex_digit(p[2]) >= 0) {
            *used = 3;
            return fg_hex_digit(p[1]) * 16 + fg_hex_digit(p[2]);
        }
        return -1;
    default:
        return -1;
    }
}

static int is_punct(char c)
{
    return c && !is_word(c) && (unsigned char)c < 0x80 && c != ' ';
}

/* Emits one literal byte outside brackets. */
static int emit_literal(struct translator *t, int c)
{
    if (c && strchr(".[]()*+?{}|^$\\", c)) {
        char esc[2] = {'\\', (char)c};
        return fg_buf_append(&t->out, esc, 2);
    }
    if (c == 0)
        return fg_err_set(t->err, FG_EINVAL, "NUL bytes are not supported");
    char b = (char)c;
    return fg_buf_append(&t->out, &b, 1);
}

/* [...] with RE2 escapes → a POSIX bracket expression, where backslash is literal and
 * ']' '-' '^' are literal only in special positions. p points after '['. */
static int translate_class(struct translator *t, const char **pp)
{
    const char *p = *pp;
    struct fg_buf body = {0};
    bool neg = false, lit_rbracket = false, lit_dash = false, lit_caret = false;
    int rc = 0;
    if (*p == '^') {
        neg = true;
        p++;
    }
    bool first = true;
    while (*p && (*p != ']' || first)) {
        first = false;
        int c;
        if (p[0] == '[' && p[1] == ':') {
            const char *end = strstr(p + 2, ":]");
            if (!end) {
                rc = fg_err_set(t->err, FG_EINVAL, "unterminated [: :] class");
                goto out;
            }
            if ((rc = fg_buf_append(&body, p, (size_t)(end + 2 - p))) != 0)
                goto out;
            p = end + 2;
            continue;
        }
        if (*p == '\\') {
            p++;
            const char *cls = NULL;
            switch (*p) {
            case 'd':
                cls = "0-9";
                break;
            case 'w':
                cls = "0-9A-Za-z_";
                break;
            case 's':
                cls = "[:space:]";
                break;
            case 'D':
            case 'W':
            case 'S':
                rc = fg_err_set(t->err, FG_EINVAL, "\\%c inside [...] is not supported", *p);
                goto out;
            default:
                break;
            }
            if (cls) {
                if ((rc = fg_buf_append_str(&body, cls)) != 0)
                    goto out;
                p++;
                continue;
            }
            size_t used;
            c = escape_byte(p, &used);
            if (c < 0) {
                if (!is_punct(*p)) {
                    rc = fg_err_set(t->err, FG_EINVAL, "unsupported escape \\%c in [...]",
                                    *p ? *p : ' ');
                    goto out;
                }
                c = (unsigned char)*p;
                used = 1;
            }
            p += used;
        } else {
            c = (unsigned char)*p++;
        }
        /* a range a-b (b not the closing bracket) */
        if (*p == '-' && p[1] && p[1] != ']') {
            int hi;
            p++;
            if (*p == '\\') {
                size_t used;
                hi = escape_byte(p + 1, &used);
                if (hi < 0) {
                    if (!is_punct(p[1])) {
                        rc = fg_err_set(t->err, FG_EINVAL, "unsupported range end in [...]");
                        goto out;
                    }
                    hi = (unsigned char)p[1];
                    used = 1;
                }
                p += 1 + used;
            } else {
                hi = (unsigned char)*p++;
            }
            if (hi < c) {
                rc = fg_err_set(t->err, FG_EINVAL, "invalid range %c-%c in [...]", c, hi);
                goto out;
            }
            char r[3] = {(char)c, '-', (char)hi};
            /* ranges that start or end with a special byte are spelled with [.x.] */
            if (c == ']' || c == '-' || c == '^' || hi == ']' || hi == '-') {
                if ((rc = fg_buf_printf(&body, "[.%c.]-[.%c.]", c, hi)) != 0)
                    goto out;
            } else if ((rc = fg_buf_append(&body, r, 3)) != 0) {
                goto out;
            }
            continue;
        }
        if (c == ']')
            lit_rbracket = true;
        else if (c == '-')
            lit_dash = true;
        else if (c == '^')
            lit_caret = true;
        else if (c == 0) {
            rc = fg_err_set(t->err, FG_EINVAL, "NUL bytes are not supported");
            goto out;
        } else {
            char b = (char)c;
            if ((rc = fg_buf_append(&body, &b, 1)) != 0)
                goto out;
        }
    }
    if (*p != ']') {
        rc = fg_err_set(t->err, FG_EINVAL, "missing closing ]");
        goto out;
    }
    p++;
    if (!body.len && !lit_rbracket && !lit_dash && !lit_caret) {
        rc = fg_err_set(t->err, FG_EINVAL, "empty [...]");
        goto out;
    }
    if ((rc = fg_buf_append_str(&t->out, neg ? "[^" : "[")) != 0)
        goto out;
    if (lit_rbracket && (rc = fg_buf_append_str(&t->out, "]")) != 0)
        goto out;
    if (body.len && (rc = fg_buf_append(&t->out, body.data, body.len)) != 0)
        goto out;
    if (lit_caret) {
        /* '^' is literal anywhere but first; alone it needs company */
        if (!lit_rbracket && !body.len && !lit_dash)
            rc = fg_buf_append_str(&t->out, "[.^.]");
        else
            rc = fg_buf_append_str(&t->out, "^");
        if (rc)
            goto out;
    }
    if (lit_dash && (rc = fg_buf_append_str(&t->out, "-")) != 0)
        goto out;
    rc = fg_buf_append_str(&t->out, "]");
out:
    fg_buf_free(&body);
    *pp = p;
    return rc;
}

static int open_group(struct translator *t, bool capturing, const char *name, size_t name_len)
{
    t->posix_groups++;
    if (capturing) {
        if (t->re->n_groups >= FG_REGEX_MAX_GROUPS)
            return fg_err_set(t->err, FG_EINVAL, "more than %d capturing groups",
                              FG_REGEX_MAX_GROUPS);
        uint32_t g = ++t->re->n_groups;
        t->re->posix_of[g] = t->posix_groups;
        if (name) {
            t->re->names[g] = fg_strndup(name, name_len);
            if (!t->re->names[g])
                return FG_ENOMEM;
        }
    }
    return fg_buf_append_str(&t->out, "(");
}

static int translate(struct translator *t, const char *p)
{
    int rc = 0;
    if (strncmp(p, "(?i)", 4) == 0) {
        t->cflags |= REG_ICASE;
        p += 4;
    } else if (strncmp(p, "(?s)", 4) == 0) {
        p += 4; /* POSIX '.' already matches newlines */
    }
    while (*p && !rc) {
        char c = *p;
        if (c == '\\') {
            p++;
            char e = *p;
            const char *rep = NULL;
            switch (e) {
            case 'd':
                rep = "[0-9]";
                break;
            case 'D':
                rep = "[^0-9]";
                break;
            case 'w':
            case 'W':
            case 's':
            case 'S':
            case 'b':
            case 'B':
                rc = fg_buf_append(&t->out, p - 1, 2); /* glibc knows these */
                p++;
                continue;
            case 'A':
                rep = "^";
                break;
            case 'z':
                rep = "$";
                break;
            default:
                break;
            }
            if (rep) {
                rc = fg_buf_append_str(&t->out, rep);
                p++;
                continue;
            }
            size_t used;
            int b = escape_byte(p, &used);
            if (b >= 0) {
                rc = emit_literal(t, b);
                p += used;
                continue;
            }
            if (!is_punct(e))
                return fg_err_set(t->err, FG_EINVAL, "unsupported escape \\%c", e ? e : ' ');
            rc = emit_literal(t, (unsigned char)e);
            p++;
            continue;
        }
        if (c == '[') {
            p++;
            rc = translate_class(t, &p);
            continue;
        }
        if (c == '(') {
            if (p[1] != '?') {
                rc = open_group(t, true, NULL, 0);
                p++;
                continue;
            }
            if (p[2] == ':') {
                rc = open_group(t, false, NULL, 0);
                p += 3;
                continue;
            }
            const char *name = NULL;
            if (p[2] == 'P' && p[3] == '<')
                name = p + 4;
            else if (p[2] == '<')
                name = p + 3;
            if (!name)
                return fg_err_set(t->err, FG_EINVAL,
                                  "unsupported group syntax (only (?P<name>...), (?<name>...), "
                                  "(?:...) and a leading (?i))");
            const char *end = name;
            while (is_word(*end))
                end++;
            if (*end != '>' || end == name)
                return fg_err_set(t->err, FG_EINVAL, "invalid group name");
            rc = open_group(t, true, name, (size_t)(end - name));
            p = end + 1;
            continue;
        }
        if ((c == '*' || c == '+' || c == '?' || c == '}') && p[1] == '?')
            return fg_err_set(t->err, FG_EINVAL, "non-greedy quantifiers (*? +? ?? {n,m}?) are "
                                                 "not supported");
        if (c == '{' && !(p[1] >= '0' && p[1] <= '9')) {
            rc = fg_buf_append_str(&t->out, "\\{"); /* RE2: a '{' that starts no repeat */
            p++;
            continue;
        }
        rc = fg_buf_append(&t->out, p, 1);
        p++;
    }
    return rc;
}

int fg_regex_compile(const char *pattern, int flags, struct fg_regex **out, struct fg_err *err)
{
    int rc;
    struct fg_regex *re = fg_calloc(1, sizeof(*re));
    if (!re)
        return fg_err_set(err, FG_ENOMEM, "out of memory");
    struct translator t = {.re = re, .cflags = REG_EXTENDED, .err = err};
    if (flags & FG_REGEX_ANCHORED) {
        /* the wrapper is POSIX group 1, invisible to the user */
        t.posix_groups = 1;
        if ((rc = fg_buf_append_str(&t.out, "^(")) != 0)
            goto fail;
    }
    if ((rc = translate(&t, pattern ? pattern : "")) != 0)
        goto fail;
    if ((flags & FG_REGEX_ANCHORED) && (rc = fg_buf_append_str(&t.out, ")$")) != 0)
        goto fail;
    if ((rc = fg_buf_append(&t.out, "", 1)) != 0)
        goto fail;
    int prc = regcomp(&re->re, (const char *)t.out.data, t.cflags);
    if (prc) {
        char msg[128];
        regerror(prc, &re->re, msg, sizeof(msg));
        rc = fg_err_set(err, FG_EINVAL, "%s", msg);
        goto fail;
    }
    if (re->re.re_nsub > FG_REGEX_MAX_GROUPS + 1) {
        regfree(&re->re);
        rc = fg_err_set(err, FG_EINVAL, "too many groups");
        goto fail;
    }
    fg_buf_free(&t.out);
    *out = re;
    return 0;
fail:
    if (rc == FG_ENOMEM)
        fg_err_set(err, rc, "out of memory");
    fg_buf_free(&t.out);
    for (uint32_t i = 0; i <= FG_REGEX_MAX_GROUPS; i++)
        fg_free(re->names[i]);
    fg_free(re);
    return rc;
}

void fg_regex_free(struct fg_regex *re)
{
    if (!re)
        return;
    regfree(&re->re);
    for (uint32_t i = 0; i <= FG_REGEX_MAX_GROUPS; i++)
        fg_free(re->names[i]);
    fg_free(re);
}

bool fg_regex_exec(const struct fg_regex *re, const char *s, size_t len, struct fg_regex_match *m)
{
    regmatch_t pm[FG_REGEX_MAX_GROUPS + 2];
    size_t n = re->re.re_nsub + 1;
    if (n > FG_ARRAY_LEN(pm))
        n = FG_ARRAY_LEN(pm);
    pm[0].rm_so = 0;
    pm[0].rm_eo = (regoff_t)len;
    if (regexec(&re->re, s ? s : "", n, pm, REG_STARTEND) != 0)
        return false;
    if (m) {
        m->so[0] = pm[0].rm_so;
        m->eo[0] = pm[0].rm_eo;
        for (uint32_t g = 1; g <= re->n_groups; g++) {
            uint32_t k = re->posix_of[g];
            m->so[g] = k < n ? pm[k].rm_so : -1;
            m->eo[g] = k < n ? pm[k].rm_eo : -1;
        }
    }
    return true;
}

bool fg_regex_match(const struct fg_regex *re, const char *s, size_t len)
{
    return fg_regex_exec(re, s, len, NULL);
}

uint32_t fg_regex_groups(const struct fg_regex *re)
{
    return re->n_groups;
}

const char *fg_regex_group_name(const struct fg_regex *re, uint32_t i)
{
    return i >= 1 && i <= re->n_groups ? re->names[i] : NULL;
}

int fg_regex_expand(const struct fg_regex *re, const char *tmpl, const char *s,
                    const struct fg_regex_match *m, struct fg_buf *out)
{
    int rc = 0;
    const char *p = tmpl;
    while (*p && !rc) {
        const char *dollar = strchr(p, '$');
        if (!dollar)
            return fg_buf_append_str(out, p);
        if ((rc = fg_buf_append(out, p, (size_t)(dollar - p))) != 0)
            return rc;
        p = dollar + 1;
        if (*p == '$') {
            rc = fg_buf_append(out, "$", 1);
            p++;
            continue;
        }
        /* Go's extract(): a name of letters, digits and '_', optionally in braces */
        bool brace = *p == '{';
        const char *name = brace ? p + 1 : p;
        const char *end = name;
        while (is_word(*end))
            end++;
        if (end == name || (brace && *end != '}')) {
            rc = fg_buf_append(out, "$", 1); /* not a reference: the '$' stays */
            continue;
        }
        size_t nlen = (size_t)(end - name);
        p = brace ? end + 1 : end;
        int64_t num = 0;
        for (size_t i = 0; i < nlen; i++) {
            if (name[i] < '0' || name[i] > '9' || num >= 100000000) {
                num = -1;
                break;
            }
            num = num * 10 + (name[i] - '0');
        }
        if (name[0] == '0' && nlen > 1)
            num = -1;
        int64_t g = -1;
        if (num >= 0) {
            g = num <= (int64_t)re->n_groups ? num : -1;
        } else {
            for (uint32_t i = 1; i <= re->n_groups; i++) {
                if (re->names[i] && strlen(re->names[i]) == nlen &&
                    memcmp(re->names[i], name, nlen) == 0 && m->so[i] >= 0) {
                    g = i;
                    break;
                }
            }
        }
        if (g >= 0 && m->so[g] >= 0)
            rc = fg_buf_append(out, s + m->so[g], (size_t)(m->eo[g] - m->so[g]));
    }
    return rc;
}

int fg_regex_check(const void *value, struct fg_err *err)
{
    const char *pattern = *(const char *const *)value;
    if (!pattern)
        return 0;
    struct fg_regex *re = NULL;
    int rc = fg_regex_compile(pattern, 0, &re, err);
    if (rc == FG_EINVAL)
        fg_err_prefix(err, "invalid regex \"%s\"", pattern);
    fg_regex_free(re);
    return rc;
}
