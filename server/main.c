/* flamegate entry point: command line, configuration, and the service lifecycle driven by
 * signals (SIGTERM/SIGINT drain and exit 0). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg_alloc.h"
#include "fg_config.h"
#include "fg_log.h"
#include "fg_metrics.h"
#include "fg_service.h"
#include "fg_telemetry.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: flamegate [--config FILE]         run (without --config: the embedded default)\n"
            "       flamegate validate --config FILE  check a configuration and exit\n"
            "       flamegate print-default-config    print the embedded default configuration\n"
            "       flamegate components [--markdown] every component with its options, defaults\n"
            "                                         and descriptions\n"
            "       flamegate --version | --help\n"
            "\n"
            "flamegate receives profiles (OTLP over HTTP), runs them through the processors of\n"
            "its pipelines and forwards them to its exporters. The configuration has the\n"
            "OpenTelemetry Collector's shape: receivers, processors, exporters, service.pipelines.\n"
            "Signals: SIGTERM or SIGINT stop receiving, flush and drain (up to\n"
            "service.shutdown_timeout), then exit 0. SIGHUP reloads the configuration file:\n"
            "an invalid one is reported and the running pipelines stay.\n");
}

static void print_diag(const struct fg_diag *diag)
{
    if (diag->text.len)
        fwrite(diag->text.data, 1, diag->text.len, stderr);
}

static int load_config(const char *path, struct fg_config **cfg)
{
    struct fg_diag diag;
    fg_diag_init(&diag);
    int rc = path ? fg_config_load_file(path, cfg, &diag)
                  : fg_config_load_string("<default>", fg_default_config_yaml,
                                          strlen(fg_default_config_yaml), cfg, &diag);
    print_diag(&diag);
    if (rc)
        fprintf(stderr, "%s: %d error(s)\n", path ? path : "<default>", diag.errors);
    fg_diag_free(&diag);
    return rc;
}

/* service.telemetry: log level and encoding, secrets to scrub, the /metrics listener. A
 * /metrics port that is taken is logged and skipped: telemetry never stops the data path. */
static void apply_telemetry(const struct fg_config *cfg)
{
    fg_log_set_level((enum fg_log_level)cfg->log_level);
    fg_log_set_encoding((enum fg_log_encoding)cfg->log_encoding);
    if (fg_telemetry_register_secrets(cfg) != 0)
        fg_log(FG_LOG_WARN, "telemetry", "out of memory: secrets from the new configuration "
                                         "are not scrubbed from the logs");
    struct fg_err err = {{0}};
    if (fg_telemetry_serve(cfg->metrics_address, &err) != 0)
        fg_log(FG_LOG_ERROR, "telemetry", "no /metrics: %s", err.msg);
}

/* Builds and starts a service for cfg; logs why when it cannot. */
static struct fg_service *start_service(const struct fg_config *cfg)
{
    struct fg_service *svc = NULL;
    struct fg_err err = {{0}};
    if (fg_service_build(cfg, &svc, &err) != 0 || fg_service_start(svc, &err) != 0) {
        fg_log(FG_LOG_ERROR, "service", "cannot start: %s", err.msg);
        fg_service_free(svc);
        return NULL;
    }
    return svc;
}

/* A replaced service whose exporters are still draining, on a thread of its own so that
 * signals keep being handled meanwhile. SIGTERM waits for all of them before exiting. */
struct retiring {
    pthread_t thread;
    struct fg_service *svc;
    struct fg_config *cfg; /* the configuration svc was built from; freed after it */
    struct retiring *next;
};

static struct retiring *retirees;

static void *retire_main(void *arg)
{
    struct retiring *r = arg;
    fg_service_shutdown(r->svc, r->cfg->shutdown_timeout_ns);
    fg_service_free(r->svc);
    fg_log(FG_LOG_INFO, "service", "reload: done (the old exporters have stopped)");
    return NULL;
}

/* Stops svc (already without receivers) in the background; cfg is freed once it is done. */
static void retire(struct fg_service *svc, struct fg_config *cfg)
{
    struct retiring *r = fg_calloc(1, sizeof(*r));
    if (r) {
        r->svc = svc;
        r->cfg = cfg;
        if (pthread_create(&r->thread, NULL, retire_main, r) == 0) {
            r->next = retirees;
            retirees = r;
            return;
        }
        fg_free(r);
    }
    retire_main(&(struct retiring){.svc = svc, .cfg = cfg}); /* no thread: do it here */
    fg_config_free(cfg);
}

static void join_retirees(void)
{
    while (retirees) {
        struct retiring *r = retirees;
        retirees = r->next;
        pthread_join(r->thread, NULL);
        fg_config_free(r->cfg);
        fg_free(r);
    }
}

/* SIGHUP: the new configuration replaces the running one only when it loads and builds.
 * Order: old receivers stop (their ports free up) and old processors flush into the old
 * exporters; the new service starts; then the old exporters stop, in the background. An
 * old exporter with a persistent queue hands it to its successor at once (same directory:
 * the new exporter has attached to the open queue), one with a memory queue drains up to
 * the old shutdown_timeout while the new service already takes data. Returns false when
 * neither the new nor the old configuration could be started again (fatal). */
static bool reload(const char *path, struct fg_config **cfg, struct fg_service **svc)
{
    struct fg_config *next_cfg = NULL;
    struct fg_service *next = NULL;
    struct fg_err err = {{0}};

    fg_log(FG_LOG_INFO, "service", "SIGHUP: reloading %s", path ? path : "<default>");
    if (load_config(path, &next_cfg) != 0) {
        fg_log(FG_LOG_ERROR, "service",
               "reload: the new configuration is invalid (errors above); keeping the running "
               "one");
        return true;
    }
    if (fg_service_build(next_cfg, &next, &err) != 0) {
        fg_log(FG_LOG_ERROR, "service", "reload: %s; keeping the running configuration",
               err.msg);
        fg_config_free(next_cfg);
        return true;
    }
    fg_service_stop_intake(*svc, (*cfg)->shutdown_timeout_ns);
    if (fg_service_start(next, &err) != 0) {
        fg_log(FG_LOG_ERROR, "service",
               "reload: cannot start the new configuration: %s; restarting the old one",
               err.msg);
        fg_service_free(next);
        fg_config_free(next_cfg);
        next = start_service(*cfg);
        if (!next) {
            fg_service_shutdown(*svc, (*cfg)->shutdown_timeout_ns);
            return false;
        }
        /* The old instance shares its config with the restart: stopped here, not in the
         * background, so the config has one owner again. Rare path; it may take up to
         * shutdown_timeout when memory queues cannot drain. */
        fg_service_shutdown(*svc, (*cfg)->shutdown_timeout_ns);
        fg_service_free(*svc);
        *svc = next;
        return true;
    }
    apply_telemetry(next_cfg);
    fg_log(FG_LOG_INFO, "service", "reload: new configuration running; stopping the old exporters");
    retire(*svc, *cfg);
    *svc = next;
    *cfg = next_cfg;
    return true;
}

static int run(const char *path)
{
    /* every thread inherits this mask; main waits for the signals synchronously */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct fg_config *cfg;
    if (load_config(path, &cfg) != 0)
        return 1;
    apply_telemetry(cfg);

    struct fg_service *svc = start_service(cfg);
    if (!svc) {
        fg_telemetry_stop();
        fg_telemetry_register_secrets(NULL);
        fg_config_free(cfg);
        fg_metrics_reset();
        return 1;
    }
    fg_log(FG_LOG_INFO, "service", "flamegate %s running (config %s)", FG_VERSION, cfg->source);

    int status = 0;
    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            if (!reload(path, &cfg, &svc)) {
                fg_log(FG_LOG_ERROR, "service", "reload failed and the old configuration "
                                                "could not be restarted: exiting");
                fg_service_free(svc);
                join_retirees();
                fg_telemetry_stop();
                fg_config_free(cfg);
                fg_telemetry_register_secrets(NULL);
                fg_metrics_reset();
                return 1;
            }
            continue;
        }
        fg_log(FG_LOG_INFO, "service", "%s: shutting down (shutdown_timeout %lld ms)",
               sig == SIGTERM ? "SIGTERM" : "SIGINT",
               (long long)(cfg->shutdown_timeout_ns / 1000000));
        break;
    }
    fg_service_shutdown(svc, cfg->shutdown_timeout_ns);
    fg_service_free(svc);
    join_retirees(); /* services replaced by reloads, still draining */
    fg_telemetry_stop();
    fg_config_free(cfg);
    fg_log(FG_LOG_INFO, "service", "stopped");
    fg_telemetry_register_secrets(NULL);
    fg_metrics_reset();
    return status;
}

int main(int argc, char **argv)
{
    /* glibc gives each busy thread its own heap; with one thread per connection that
     * costs a third of the peak RSS for no throughput (measured with bench/forward_loop.py) */
    mallopt(M_ARENA_MAX, 2);
    /* each request's decoded batch is freed at the top of its heap; under the default
     * threshold glibc hands those pages back and faults them in again for the next
     * request (aggregate path: 12% of its decode CPU, bench/aggregate_bench.md) */
    mallopt(M_TRIM_THRESHOLD, 32 << 20);
    const char *config = NULL;
    bool validate = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--version") == 0 || strcmp(a, "version") == 0) {
            printf("flamegate %s\n", FG_VERSION);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "validate") == 0 && i == 1) {
            validate = true;
        } else if (strcmp(a, "print-default-config") == 0 && i == 1) {
            fputs(fg_default_config_yaml, stdout);
            return 0;
        } else if (strcmp(a, "components") == 0 && i == 1) {
            bool md = argc == 3 && strcmp(argv[2], "--markdown") == 0;
            if (argc > 3 || (argc == 3 && !md)) {
                fprintf(stderr, "usage: flamegate components [--markdown]\n");
                return 2;
            }
            fg_components_print(stdout, md);
            return 0;
        } else if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0) {
            if (++i == argc) {
                fprintf(stderr, "flamegate: %s needs a file name\n", a);
                return 2;
            }
            config = argv[i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            config = a + 9;
        } else {
            fprintf(stderr, "flamegate: unknown argument '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (validate) {
        if (!config) {
            fprintf(stderr, "flamegate validate: --config FILE is required\n");
            return 2;
        }
        struct fg_config *cfg;
        if (load_config(config, &cfg) != 0)
            return 1;
        fprintf(stderr, "%s: valid\n", config);
        fg_config_free(cfg);
        return 0;
    }
    return run(config);
}
