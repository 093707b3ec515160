/* Option tables: value parsers (duration, size, bool, int), defaults and freeing. The same
 * scalar setter serves defaults and user values, so a default is checked like user input. */
#include "fg_option.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fg_alloc.h"
#include "fg_common.h"
#include "fg_option_internal.h"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int fg_parse_int(const char *text, int64_t *value)
{
    if (!text)
        return FG_EINVAL;
    const char *p = text;
    if (*p == '-' || *p == '+')
        p++;
    if (!is_digit(*p))
        return FG_EINVAL;
    for (const char *q = p; *q; q++)
        if (!is_digit(*q))
            return FG_EINVAL;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno == ERANGE || !end || *end)
        return FG_EINVAL;
    *value = (int64_t)v;
    return 0;
}

int fg_parse_bool(const char *text, bool *value)
{
    static const char *const truthy[] = {"true", "yes", "on"};
    static const char *const falsy[] = {"false", "no", "off"};
    if (!text)
        return FG_EINVAL;
    for (size_t i = 0; i < FG_ARRAY_LEN(truthy); i++) {
        if (strcasecmp(text, truthy[i]) == 0) {
            *value = true;
            return 0;
        }
        if (strcasecmp(text, falsy[i]) == 0) {
            *value = false;
            return 0;
        }
    }
    return FG_EINVAL;
}

struct unit {
    const char *name;
    uint64_t mult;
};

/* Longer names first so "ms" wins over "m". Both micro signs (U+00B5, U+03BC) as Go does. */
static const struct unit duration_units[] = {
    {"ns", 1ULL},
    {"us", 1000ULL},
    {"\xc2\xb5s", 1000ULL},
    {"\xce\xbcs", 1000ULL},
    {"ms", 1000000ULL},
    {"s", 1000000000ULL},
    {"m", 60000000000ULL},
    {"h", 3600000000000ULL},
};

static const struct unit *match_duration_unit(const char *p, size_t *len)
{
    const struct unit *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < FG_ARRAY_LEN(duration_units); i++) {
        size_t n = strlen(duration_units[i].name);
        if (n > best_len && strncmp(p, duration_units[i].name, n) == 0) {
            best = &duration_units[i];
            best_len = n;
        }
    }
    *len = best_len;
    return best;
}

int fg_parse_duration(const char *text, int64_t *ns)
{
    if (!text || !*text)
        return FG_EINVAL;
    if (strcmp(text, "0") == 0) {
        *ns = 0;
        return 0;
    }
    const uint64_t limit = (uint64_t)INT64_MAX;
    uint64_t total = 0;
    const char *p = text;
    while (*p) {
        uint64_t whole = 0;
        int digits = 0;
        while (is_digit(*p)) {
            unsigned d = (unsigned)(*p - '0');
            if (whole > (limit - d) / 10)
                return FG_EINVAL; /* overflow */
            whole = whole * 10 + d;
            digits++;
            p++;
        }
        uint64_t frac = 0, scale = 1;
        if (*p == '.') {
            p++;
            while (is_digit(*p)) {
                /* Digits past nanosecond precision of an hour add nothing; skip them. */
                if (scale < 1000000000000000000ULL) {
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
                digits++;
                p++;
            }
        }
        if (!digits)
            return FG_EINVAL;
        size_t ulen;
        const struct unit *u = match_duration_unit(p, &ulen);
        if (!u)
            return FG_EINVAL;
        p += ulen;
        if (whole > limit / u->mult)
            return FG_EINVAL;
        uint64_t part = whole * u->mult;
        if (frac) {
            double f = (double)frac * ((double)u->mult / (double)scale);
            if (f >= (double)limit)
                return FG_EINVAL;
            uint64_t fpart = (uint64_t)f;
            if (fpart > limit - part)
                return FG_EINVAL;
            part += fpart;
        }
        if (part > limit - total)
            return FG_EINVAL;
        total += part;
    }
    *ns = (int64_t)total;
    return 0;
}

static const struct unit size_units[] = {
    {"b", 1ULL},
    {"kb", 1000ULL},
    {"mb", 1000ULL * 1000},
    {"gb", 1000ULL * 1000 * 1000},
    {"tb", 1000ULL * 1000 * 1000 * 1000},
    {"kib", 1ULL << 10},
    {"mib", 1ULL << 20},
    {"gib", 1ULL << 30},
    {"tib", 1ULL << 40},
};

int fg_parse_size(const char *text, uint64_t *bytes)
{
    if (!text || !is_digit(*text))
        return FG_EINVAL;
    const char *p = text;
    uint64_t v = 0;
    while (is_digit(*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return FG_EINVAL;
        v = v * 10 + d;
        p++;
    }
    while (*p == ' ')
        p++;
    uint64_t mult = 1;
    if (*p) {
        size_t i;
        for (i = 0; i < FG_ARRAY_LEN(size_units); i++)
            if (strcasecmp(p, size_units[i].name) == 0)
                break;
        if (i == FG_ARRAY_LEN(size_units))
            return FG_EINVAL;
        mult = size_units[i].mult;
    }
    if (v > UINT64_MAX / mult)
        return FG_EINVAL;
    *bytes = v * mult;
    return 0;
}

/* Bounds in the units people write them in: "1h", "30s", "1ms" rather than nanoseconds. */
static void format_duration(int64_t ns, char *buf, size_t bufsize)
{
    static const struct {
        const char *name;
        int64_t mult;
    } units[] = {{"h", 3600000000000LL}, {"m", 60000000000LL}, {"s", 1000000000LL},
                 {"ms", 1000000LL},       {"us", 1000LL},       {"ns", 1LL}};
    if (ns == 0) {
        snprintf(buf, bufsize, "0");
        return;
    }
    for (size_t i = 0; i < FG_ARRAY_LEN(units); i++) {
        if (ns % units[i].mult == 0) {
            snprintf(buf, bufsize, "%" PRId64 "%s", ns / units[i].mult, units[i].name);
            return;
        }
    }
}

static void format_size(uint64_t bytes, char *buf, size_t bufsize)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {{"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10}};
    for (size_t i = 0; i < FG_ARRAY_LEN(units); i++) {
        if (bytes && bytes % units[i].mult == 0) {
            snprintf(buf, bufsize, "%" PRIu64 "%s", bytes / units[i].mult, units[i].name);
            return;
        }
    }
    snprintf(buf, bufsize, "%" PRIu64, bytes);
}

static void enum_list(const char *const *names, char *buf, size_t bufsize)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; names && names[i]; i++) {
        int n = snprintf(buf + used, bufsize - used, "%s%s", i ? ", " : "", names[i]);
        if (n < 0 || (size_t)n >= bufsize - used)
            break;
        used += (size_t)n;
    }
}

void fg__option_names(const struct fg_option *table, char *buf, size_t bufsize)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; table && table[i].name; i++) {
        int n = snprintf(buf + used, bufsize - used, "%s%s", i ? ", " : "", table[i].name);
        if (n < 0 || (size_t)n >= bufsize - used)
            break;
        used += (size_t)n;
    }
}

int fg__option_set_scalar(const struct fg_option *opt, void *cfg, const char *text,
                          struct fg_err *err)
{
    void *field = (char *)cfg + opt->offset;
    bool bounded = opt->min < opt->max;
    char lo[48], hi[48];

    switch (opt->type) {
    case FG_OPT_STRING: {
        char *copy = fg_strdup(text);
        if (!copy)
            return fg_err_set(err, FG_ENOMEM, "out of memory");
        fg_free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case FG_OPT_BOOL: {
        bool v;
        if (fg_parse_bool(text, &v) != 0)
            return fg_err_set(err, FG_EINVAL, "invalid boolean \"%s\" (expected true or false)",
                              text);
        *(bool *)field = v;
        return 0;
    }
    case FG_OPT_INT: {
        int64_t v;
        if (fg_parse_int(text, &v) != 0)
            return fg_err_set(err, FG_EINVAL, "invalid integer \"%s\"", text);
        if (bounded && (v < opt->min || v > opt->max))
            return fg_err_set(err, FG_EINVAL,
                              "%" PRId64 " is out of range (must be between %" PRId64
                              " and %" PRId64 ")",
                              v, opt->min, opt->max);
        *(int64_t *)field = v;
        return 0;
    }
    case FG_OPT_DURATION: {
        int64_t v;
        if (fg_parse_duration(text, &v) != 0)
            return fg_err_set(err, FG_EINVAL,
                              "invalid duration \"%s\" (examples: 5s, 200ms, 1m30s, 1h)", text);
        if (bounded && (v < opt->min || v > opt->max)) {
            format_duration(opt->min, lo, sizeof(lo));
            format_duration(opt->max, hi, sizeof(hi));
            return fg_err_set(err, FG_EINVAL, "%s is out of range (must be between %s and %s)",
                              text, lo, hi);
        }
        *(int64_t *)field = v;
        return 0;
    }
    case FG_OPT_SIZE: {
        uint64_t v;
        if (fg_parse_size(text, &v) != 0)
            return fg_err_set(err, FG_EINVAL,
                              "invalid size \"%s\" (examples: 1024, 512KiB, 4MiB, 20MB)", text);
        uint64_t min = opt->min > 0 ? (uint64_t)opt->min : 0;
        uint64_t max = opt->max > 0 ? (uint64_t)opt->max : 0;
        if (bounded && (v < min || v > max)) {
            format_size(min, lo, sizeof(lo));
            format_size(max, hi, sizeof(hi));
            return fg_err_set(err, FG_EINVAL, "%s is out of range (must be between %s and %s)",
                              text, lo, hi);
        }
        *(uint64_t *)field = v;
        return 0;
    }
    case FG_OPT_ENUM: {
        for (int i = 0; opt->enum_names && opt->enum_names[i]; i++) {
            if (strcmp(opt->enum_names[i], text) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        char allowed[200];
        enum_list(opt->enum_names, allowed, sizeof(allowed));
        return fg_err_set(err, FG_EINVAL, "invalid value \"%s\" (allowed: %s)", text, allowed);
    }
    case FG_OPT_STRMAP:
    case FG_OPT_STRLIST:
    case FG_OPT_STRUCT:
    case FG_OPT_STRUCTLIST:
        break;
    }
    return fg_err_set(err, FG_EINVAL, "expected a %s, not a scalar",
                      opt->type == FG_OPT_STRLIST || opt->type == FG_OPT_STRUCTLIST ? "list"
                                                                                     : "mapping");
}

void fg__structlist_clear(const struct fg_option *opt, struct fg_structlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        fg_options_free(opt->sub, (char *)l->items + i * opt->elem_size);
    fg_free(l->items);
    memset(l, 0, sizeof(*l));
}

int fg_options_defaults(const struct fg_option *table, void *cfg, struct fg_err *err)
{
    for (const struct fg_option *opt = table; opt && opt->name; opt++) {
        int rc = 0;
        if (opt->type == FG_OPT_STRUCT)
            rc = fg_options_defaults(opt->sub, (char *)cfg + opt->offset, err);
        else if (opt->default_value)
            rc = fg__option_set_scalar(opt, cfg, opt->default_value, err);
        if (rc) {
            fg_err_prefix(err, "default of %s", opt->name);
            return rc;
        }
    }
    return 0;
}

void fg_options_free(const struct fg_option *table, void *cfg)
{
    if (!cfg)
        return;
    for (const struct fg_option *opt = table; opt && opt->name; opt++) {
        void *field = (char *)cfg + opt->offset;
        switch (opt->type) {
        case FG_OPT_STRING:
            fg_free(*(char **)field);
            *(char **)field = NULL;
            break;
        case FG_OPT_STRMAP: {
            struct fg_strmap *m = field;
            for (size_t i = 0; i < m->n; i++) {
                fg_free(m->keys[i]);
                fg_free(m->values[i]);
            }
            fg_free(m->keys);
            fg_free(m->values);
            memset(m, 0, sizeof(*m));
            break;
        }
        case FG_OPT_STRLIST: {
            struct fg_strlist *l = field;
            for (size_t i = 0; i < l->n; i++)
                fg_free(l->items[i]);
            fg_free(l->items);
            memset(l, 0, sizeof(*l));
            break;
        }
        case FG_OPT_STRUCT:
            fg_options_free(opt->sub, field);
            break;
        case FG_OPT_STRUCTLIST:
            fg__structlist_clear(opt, field);
            break;
        default:
            break;
        }
    }
}
