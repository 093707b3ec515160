/* The agent's configuration: defaults, FLAMEGATE_* environment variables, validation. */
#include "agent_config.h"

#include <stdio.h>
#include <string.h>

#include "fg_alloc.h"

#define ENDPOINT_DEFAULT "http://127.0.0.1:4318"

static int parse_long(const char *s, long lo, long hi, long *out)
{
    long v = 0;
    const char *p = s;
    if (!*p)
        return FG_EINVAL;
    for (; *p; p++) {
        if (*p < '0' || *p > '9' || v > (hi / 10) + 1)
            return FG_EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi)
        return FG_EINVAL;
    *out = v;
    return 0;
}

/* "250ms", "10s", "2m", "1h" or a plain number of seconds. */
static int parse_duration_ms(const char *s, long *out)
{
    char num[32];
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n >= sizeof(num))
        return FG_EINVAL;
    memcpy(num, s, n);
    num[n] = '\0';
    long v;
    if (parse_long(num, 0, 100000000L, &v))
        return FG_EINVAL;
    const char *unit = s + n;
    long mul;
    if (!*unit || strcmp(unit, "s") == 0)
        mul = 1000;
    else if (strcmp(unit, "ms") == 0)
        mul = 1;
    else if (strcmp(unit, "m") == 0)
        mul = 60000;
    else if (strcmp(unit, "h") == 0)
        mul = 3600000;
    else
        return FG_EINVAL;
    if (v > 3600000L * 24 / mul + 1)
        return FG_EINVAL;
    *out = v * mul;
    return 0;
}

static int parse_profiles(const char *s, unsigned *out)
{
    unsigned bits = 0;
    const char *p = s;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 3 && strncmp(p, "cpu", 3) == 0)
            bits |= FG_AGENT_PROFILE_CPU;
        else if (n == 4 && strncmp(p, "heap", 4) == 0)
            bits |= FG_AGENT_PROFILE_HEAP;
        else if (n != 0)
            return FG_EINVAL;
        p += n;
        if (*p == ',')
            p++;
    }
    if (!bits)
        return FG_EINVAL;
    *out = bits;
    return 0;
}

static int parse_sampler(const char *s, enum fg__cpu_sampler *out)
{
    if (strcmp(s, "auto") == 0)
        *out = FG__SAMPLER_AUTO;
    else if (strcmp(s, "perf") == 0)
        *out = FG__SAMPLER_PERF;
    else if (strcmp(s, "timer") == 0)
        *out = FG__SAMPLER_TIMER;
    else if (strcmp(s, "thread-timer") == 0)
        *out = FG__SAMPLER_THREAD_TIMER;
    else
        return FG_EINVAL;
    return 0;
}

int fg__agent_config_from_env(struct fg_agent_config *cfg, struct fg_err *err)
{
    memset(cfg, 0, sizeof(*cfg));
    const char *v;
    cfg->endpoint = getenv("FLAMEGATE_ENDPOINT");
    cfg->service_name = getenv("FLAMEGATE_SERVICE_NAME");
    cfg->headers = getenv("FLAMEGATE_HEADERS");
    cfg->output = getenv("FLAMEGATE_OUTPUT");
    if ((v = getenv("FLAMEGATE_CPU_HZ"))) {
        long hz;
        if (parse_long(v, 10, 1000, &hz))
            return fg_err_set(err, FG_EINVAL,
                              "FLAMEGATE_CPU_HZ=\"%s\": want an integer from 10 to 1000", v);
        cfg->cpu_hz = (int)hz;
    }
    if ((v = getenv("FLAMEGATE_CPU_SAMPLER"))) {
        enum fg__cpu_sampler unused;
        if (parse_sampler(v, &unused))
            return fg_err_set(err, FG_EINVAL,
                              "FLAMEGATE_CPU_SAMPLER=\"%s\": want auto, perf, timer or "
                              "thread-timer",
                              v);
        cfg->cpu_sampler = v;
    }
    if ((v = getenv("FLAMEGATE_HEAP_SAMPLE_BYTES"))) {
        if (parse_long(v, 1, 1L << 30, &cfg->heap_sample_bytes))
            return fg_err_set(err, FG_EINVAL,
                              "FLAMEGATE_HEAP_SAMPLE_BYTES=\"%s\": want an integer from 1 to "
                              "1073741824",
                              v);
    }
    if ((v = getenv("FLAMEGATE_UPLOAD_INTERVAL"))) {
        if (parse_duration_ms(v, &cfg->upload_interval_ms) || cfg->upload_interval_ms < 100 ||
            cfg->upload_interval_ms > 3600000)
            return fg_err_set(err, FG_EINVAL,
                              "FLAMEGATE_UPLOAD_INTERVAL=\"%s\": want a duration from 100ms "
                              "to 1h (e.g. 10s, 500ms, 1m)",
                              v);
    }
    if ((v = getenv("FLAMEGATE_FOLLOW_FORK"))) {
        long on;
        if (parse_long(v, 0, 1, &on))
            return fg_err_set(err, FG_EINVAL, "FLAMEGATE_FOLLOW_FORK=\"%s\": want 0 or 1", v);
        cfg->follow_fork = (int)on;
    }
    if ((v = getenv("FLAMEGATE_PROFILES"))) {
        if (parse_profiles(v, &cfg->profiles))
            return fg_err_set(err, FG_EINVAL,
                              "FLAMEGATE_PROFILES=\"%s\": want a comma list of cpu, heap", v);
    }
    return 0;
}

__attribute__((visibility("default"))) int fg_agent_config_from_env(struct fg_agent_config *cfg, char *errbuf, unsigned errlen)
{
    struct fg_err err = {{0}};
    int rc = fg__agent_config_from_env(cfg, &err);
    if (rc && errbuf && errlen)
        snprintf(errbuf, errlen, "%s", err.msg);
    return rc;
}

static char *dup_or_null(const char *s)
{
    return s ? fg_strdup(s) : NULL;
}

void fg__agent_settings_clear(struct fg__agent_settings *s)
{
    fg_free(s->service_name);
    fg_free(s->headers);
    fg_free(s->out_path);
    memset(s, 0, sizeof(*s));
}

int fg__agent_settings_make(const struct fg_agent_config *cfg, struct fg__agent_settings *s,
                            struct fg_err *err)
{
    memset(s, 0, sizeof(*s));
    int rc;
    s->profiles = cfg->profiles ? cfg->profiles : FG_AGENT_PROFILE_CPU | FG_AGENT_PROFILE_HEAP;
    if (s->profiles & ~(FG_AGENT_PROFILE_CPU | FG_AGENT_PROFILE_HEAP))
        return fg_err_set(err, FG_EINVAL, "profiles: unknown bits 0x%x", s->profiles);
    s->cpu_hz = cfg->cpu_hz ? cfg->cpu_hz : 99;
    if (s->cpu_hz < 10 || s->cpu_hz > 1000)
        return fg_err_set(err, FG_EINVAL, "cpu_hz %d: want 10 to 1000", s->cpu_hz);
    if (cfg->cpu_sampler && parse_sampler(cfg->cpu_sampler, &s->cpu_sampler))
        return fg_err_set(err, FG_EINVAL,
                          "cpu_sampler \"%s\": want auto, perf, timer or thread-timer",
                          cfg->cpu_sampler);
    s->heap_sample_bytes = cfg->heap_sample_bytes ? cfg->heap_sample_bytes : 524288;
    if (s->heap_sample_bytes < 1 || s->heap_sample_bytes > (1L << 30))
        return fg_err_set(err, FG_EINVAL, "heap_sample_bytes %ld: want 1 to 1073741824",
                          s->heap_sample_bytes);
    if (cfg->follow_fork != 0 && cfg->follow_fork != 1)
        return fg_err_set(err, FG_EINVAL, "follow_fork %d: want 0 or 1", cfg->follow_fork);
    s->follow_fork = cfg->follow_fork == 1;
    s->upload_interval_ms = cfg->upload_interval_ms ? cfg->upload_interval_ms : 10000;
    if (s->upload_interval_ms < 100 || s->upload_interval_ms > 3600000)
        return fg_err_set(err, FG_EINVAL, "upload interval %ldms: want 100ms to 1h",
                          s->upload_interval_ms);
    const char *out = cfg->output ? cfg->output : "otlp";
    if (strcmp(out, "otlp") == 0) {
        s->output = FG__OUT_OTLP;
    } else if (strncmp(out, "otlp-file:", 10) == 0 && out[10]) {
        s->output = FG__OUT_OTLP_FILE;
        s->out_path = fg_strdup(out + 10);
    } else if (strncmp(out, "pprof-file:", 11) == 0 && out[11]) {
        s->output = FG__OUT_PPROF_FILE;
        s->out_path = fg_strdup(out + 11);
    } else {
        return fg_err_set(err, FG_EINVAL,
                          "FLAMEGATE_OUTPUT=\"%s\": want otlp, otlp-file:PATH or "
                          "pprof-file:PATH",
                          out);
    }
    if (s->output != FG__OUT_OTLP && !s->out_path)
        goto nomem;
#ifndef FG_AGENT_HAVE_PPROF
    if (s->output == FG__OUT_PPROF_FILE) {
        rc = fg_err_set(err, FG_EUNSUPPORTED,
                        "FLAMEGATE_OUTPUT=pprof-file: this build has no pprof encoder; use "
                        "otlp-file:PATH");
        goto fail;
    }
#endif
    const char *ep = cfg->endpoint && cfg->endpoint[0] ? cfg->endpoint : ENDPOINT_DEFAULT;
    if ((rc = fg__url_parse(ep, &s->url, err))) {
        fg_err_prefix(err, "FLAMEGATE_ENDPOINT=\"%s\"", ep);
        goto fail;
    }
    if (cfg->headers && cfg->headers[0]) {
        if ((rc = fg__headers_parse(cfg->headers, &s->headers, err))) {
            fg_err_prefix(err, "FLAMEGATE_HEADERS");
            goto fail;
        }
    }
    if (cfg->service_name && !cfg->service_name[0]) {
        rc = fg_err_set(err, FG_EINVAL, "FLAMEGATE_SERVICE_NAME is empty");
        goto fail;
    }
    s->service_name = dup_or_null(cfg->service_name);
    if (cfg->service_name && !s->service_name)
        goto nomem;
    return 0;
nomem:
    rc = fg_err_set(err, FG_ENOMEM, "out of memory");
fail:
    fg__agent_settings_clear(s);
    return rc;
}
