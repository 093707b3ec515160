/* One logging call for the whole program: one line per record on stderr. Thread-safe. */
#ifndef FG_LOG_H
#define FG_LOG_H

enum fg_log_level { FG_LOG_DEBUG, FG_LOG_INFO, FG_LOG_WARN, FG_LOG_ERROR, FG_LOG_OFF };

extern enum fg_log_level fg__log_level;

void fg_log_set_level(enum fg_log_level level);
/* Parses "debug|info|warn|error|none"; returns -1 when unknown. */
int fg_log_level_parse(const char *name);
void fg__log(enum fg_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The level is checked before any argument is formatted. */
/* Whether records of this level are written (to skip building one that would not be). */
static inline int fg_log_enabled(enum fg_log_level level)
{
    return (int)level >= (int)__atomic_load_n(&fg__log_level, __ATOMIC_RELAXED);
}

/* The level is read relaxed-atomically: a reload may change it while threads log. */
#define fg_log(level, component, ...)                                           \
    do {                                                                        \
        if (fg_log_enabled(level))                       \
            fg__log((level), (component), __VA_ARGS__);                         \
    } while (0)

#endif
