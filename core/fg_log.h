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
#define fg_log(level, component, ...)                 \
    do {                                              \
        if ((level) >= fg__log_level)                 \
            fg__log((level), (component), __VA_ARGS__); \
    } while (0)

#endif
