/* Regular expressions for the processors: the RE2 syntax users write for the Collector and
 * Prometheus, translated onto POSIX extended regexes (glibc regcomp), plus Go's template
 * expansion ($1, ${name}) for replacements. Private to pipeline/processors.
 *
 * Supported beyond ERE: (?P<name>...) and (?<name>...) groups, (?:...), a leading (?i),
 * \d \D \w \W \s \S \b \B, \t \n \r \f \v \xHH, escapes inside [...], \A and \z.
 * Rejected with a message: non-greedy quantifiers, \p{...}, \Q...\E, back-references,
 * other flags. Differences that remain: POSIX picks the leftmost-longest match where RE2
 * picks leftmost-first (same yes/no answer; captures of alternations can differ), and
 * matching is by byte, not by UTF-8 character.
 *
 * Threads: a compiled regex may be used by any number of threads at once. */
#ifndef FG_PROC_REGEX_H
#define FG_PROC_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_buf.h"
#include "fg_common.h"

/* Matches must cover the whole input (Prometheus relabel, pprof drop_frames). */
#define FG_REGEX_ANCHORED 1

#define FG_REGEX_MAX_GROUPS 32

struct fg_regex;

/* One match: offsets of group i (0 = whole match) in so[i]..eo[i]; -1 when the group did
 * not take part. */
struct fg_regex_match {
    int64_t so[FG_REGEX_MAX_GROUPS + 1];
    int64_t eo[FG_REGEX_MAX_GROUPS + 1];
};

int fg_regex_compile(const char *pattern, int flags, struct fg_regex **out, struct fg_err *err);
void fg_regex_free(struct fg_regex *re);

/* Matches s[0..len). s[len] or a later byte must be a NUL (glibc reads only the range, but
 * sanitizers check up to the terminator): model strings and arena copies are. */
bool fg_regex_match(const struct fg_regex *re, const char *s, size_t len);
/* Like fg_regex_match, filling m with the groups of the (first) match. */
bool fg_regex_exec(const struct fg_regex *re, const char *s, size_t len, struct fg_regex_match *m);

/* Capturing groups of the pattern as the user wrote it (not counting group 0). */
uint32_t fg_regex_groups(const struct fg_regex *re);
/* Name of group i (1-based), or NULL when unnamed. */
const char *fg_regex_group_name(const struct fg_regex *re, uint32_t i);

/* Appends template to out with $1, ${1}, $name, ${name} replaced by the groups of m over s,
 * and $$ by $, as Go's regexp.Expand does (so "$1x" names a group "1x", which is empty). */
int fg_regex_expand(const struct fg_regex *re, const char *tmpl, const char *s,
                    const struct fg_regex_match *m, struct fg_buf *out);

/* An option check (config/fg_option.h) for a string that must compile as a regex. */
int fg_regex_check(const void *value, struct fg_err *err);

#endif
