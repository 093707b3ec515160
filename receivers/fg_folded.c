/* Folded stacks and Pyroscope "lines" → model: frames become functions/locations/stacks in
 * the batch dictionary, identical stacks are summed into one sample. */
#include "fg_folded.h"

#include <string.h>

#include "fg_alloc.h"

int32_t fg_folded_frame(struct fg_profiles *into, const char *name, size_t len,
                        const char *file, size_t file_len, int64_t line)
{
    int32_t s = fg_dict_string(into, name, len);
    if (s < 0)
        return s;
    int32_t fs = 0;
    if (file_len > 0 && (fs = fg_dict_string(into, file, file_len)) < 0)
        return fs;
    struct fg_function f = {.name = (uint32_t)s, .filename = (uint32_t)fs};
    int32_t fi = fg_dict_function(into, &f);
    if (fi < 0)
        return fi;
    struct fg_line ln = {.function = (uint32_t)fi, .line = line};
    struct fg_location loc = {.n_lines = 1, .lines = &ln};
    return fg_dict_location(into, &loc);
}

/* Running totals per distinct stack, in first-seen order. */
struct totals {
    uint32_t *slot_of; /* stack index → slot + 1 (0 = not seen) */
    uint32_t n_slot_of;
    uint32_t *stack;
    int64_t *total;
    uint32_t n, cap;
};

static void totals_free(struct totals *t)
{
    fg_free(t->slot_of);
    fg_free(t->stack);
    fg_free(t->total);
}

static int totals_add(struct totals *t, uint32_t stack, int64_t count)
{
    if (stack >= t->n_slot_of) {
        uint32_t n = FG_MAX(stack + 1, t->n_slot_of * 2);
        uint32_t *s = fg_realloc(t->slot_of, (size_t)n * sizeof(*s));
        if (!s)
            return FG_ENOMEM;
        memset(s + t->n_slot_of, 0, (size_t)(n - t->n_slot_of) * sizeof(*s));
        t->slot_of = s;
        t->n_slot_of = n;
    }
    uint32_t slot = t->slot_of[stack];
    if (slot) {
        int64_t *v = &t->total[slot - 1];
        if (__builtin_add_overflow(*v, count, v))
            return FG_EINVAL;
        return 0;
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        uint32_t *st = fg_realloc(t->stack, (size_t)cap * sizeof(*st));
        if (!st)
            return FG_ENOMEM;
        t->stack = st;
        int64_t *tot = fg_realloc(t->total, (size_t)cap * sizeof(*tot));
        if (!tot)
            return FG_ENOMEM;
        t->total = tot;
        t->cap = cap;
    }
    t->stack[t->n] = stack;
    t->total[t->n] = count;
    t->slot_of[stack] = ++t->n;
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Non-negative decimal integer, the whole token. */
static int parse_count(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    if (len == 0)
        return FG_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return FG_EINVAL;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[i] - '0', &v))
            return FG_EINVAL;
    }
    *out = v;
    return 0;
}

/* Interns the root-first frames of text as a leaf-first stack. */
static int intern_stack(struct fg_profiles *into, const char *text, size_t len,
                        uint32_t *locs, int32_t *stack_out, uint64_t line_no, struct fg_err *err)
{
    uint32_t n = 0;
    size_t i = 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && text[i] != ';')
            i++;
        size_t end = i;
        i++; /* past ';' (or past the end) */
        while (start < end && is_space(text[start]))
            start++;
        while (end > start && is_space(text[end - 1]))
            end--;
        if (end == start)
            continue; /* ";;" or a stray separator: no frame */
        if (n == FG_FOLDED_MAX_DEPTH)
            return fg_err_set(err, FG_EINVAL, "line %llu: stack deeper than %d frames",
                              (unsigned long long)line_no, FG_FOLDED_MAX_DEPTH);
        int32_t loc = fg_folded_frame(into, text + start, end - start, NULL, 0, 0);
        if (loc < 0)
            return fg_err_set(err, loc, "out of memory");
        locs[n++] = (uint32_t)loc;
    }
    if (n == 0) {
        *stack_out = 0;
        return 0;
    }
    for (uint32_t a = 0, b = n - 1; a < b; a++, b--) { /* root first → leaf first */
        uint32_t t = locs[a];
        locs[a] = locs[b];
        locs[b] = t;
    }
    struct fg_stack st = {.n_locations = n, .locations = locs};
    int32_t si = fg_dict_stack(into, &st);
    if (si < 0)
        return fg_err_set(err, si, "out of memory");
    *stack_out = si;
    return 0;
}

int fg_folded_parse(const uint8_t *body, size_t len, const struct fg_folded_opts *opts,
                    struct fg_profiles *into, struct fg_profile *prof, uint32_t *n_samples,
                    struct fg_err *err)
{
    const char *text = (const char *)body;
    int64_t scale = opts && opts->scale > 0 ? opts->scale : 1;
    bool lines = opts && opts->lines;
    struct totals t = {0};
    uint32_t *locs = fg_malloc(FG_FOLDED_MAX_DEPTH * sizeof(*locs));
    uint64_t line_no = 0;
    int rc = 0;

    if (n_samples)
        *n_samples = 0;
    if (!locs) {
        rc = fg_err_set(err, FG_ENOMEM, "out of memory");
        goto fail;
    }
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t start = pos;
        pos = nl ? end + 1 : len;
        line_no++;
        while (end > start && (is_space(text[end - 1]) || text[end - 1] == '\r'))
            end--;
        while (start < end && is_space(text[start]))
            start++;
        if (start == end)
            continue;
        int64_t count = 1;
        size_t stack_end = end;
        if (!lines) {
            size_t c = end;
            while (c > start && !is_space(text[c - 1]))
                c--;
            if (c == start)
                continue; /* no count: not a folded line (WIRE.md §7: ignored) */
            if (parse_count(text + c, end - c, &count) != 0) {
                rc = fg_err_set(err, FG_EINVAL, "line %llu: count \"%.*s\" is not a "
                                "non-negative integer", (unsigned long long)line_no,
                                (int)FG_MIN(end - c, (size_t)32), text + c);
                goto fail;
            }
            stack_end = c;
            while (stack_end > start && is_space(text[stack_end - 1]))
                stack_end--;
        }
        if (count == 0)
            continue;
        if (__builtin_mul_overflow(count, scale, &count)) {
            rc = fg_err_set(err, FG_EINVAL, "line %llu: count overflows after scaling",
                            (unsigned long long)line_no);
            goto fail;
        }
        int32_t stack = 0;
        if ((rc = intern_stack(into, text + start, stack_end - start, locs, &stack, line_no,
                               err)) != 0)
            goto fail;
        if (stack == 0)
            continue;
        if ((rc = totals_add(&t, (uint32_t)stack, count)) != 0) {
            if (rc == FG_EINVAL)
                fg_err_set(err, rc, "line %llu: total count overflows",
                           (unsigned long long)line_no);
            else
                fg_err_set(err, rc, "out of memory");
            goto fail;
        }
    }
    for (uint32_t i = 0; i < t.n; i++) {
        struct fg_sample s = {.stack = t.stack[i], .n_values = 1, .values = &t.total[i]};
        if ((rc = fg_profiles_add_sample(into, prof, &s)) != 0) {
            fg_err_set(err, rc, "out of memory");
            goto fail;
        }
    }
    if (n_samples)
        *n_samples = t.n;
fail:
    fg_free(locs);
    totals_free(&t);
    return rc;
}
