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

#include "fg_config.h"
#include "fg_log.h"
#include "fg_service.h"

#define SHUTDOWN_TIMEOUT_NS (30 * INT64_C(1000000000))

static void usage(FILE *out)
{
    fprintf(out,
            "usage: flamegate [--config FILE]         run (without --config: the embedded default)\n"
            "       flamegate validate --config FILE  check a configuration and exit\n"
            "       flamegate print-default-config    print the embedded default configuration\n"
            "       flamegate --version | --help\n"
            "\n"
            "flamegate receives profiles (OTLP over HTTP), runs them through the processors of\n"
            "its pipelines and forwards them to its exporters. The configuration has the\n"
            "OpenTelemetry Collector's shape: receivers, processors, exporters, service.pipelines.\n"
            "Signals: SIGTERM or SIGINT stop receiving, flush and drain, then exit 0.\n");
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
    fg_log_set_level((enum fg_log_level)cfg->log_level);

    struct fg_service *svc = NULL;
    struct fg_err err = {{0}};
    if (fg_service_build(cfg, &svc, &err) != 0 || fg_service_start(svc, &err) != 0) {
        fg_log(FG_LOG_ERROR, "service", "cannot start: %s", err.msg);
        fg_service_free(svc);
        fg_config_free(cfg);
        return 1;
    }
    fg_log(FG_LOG_INFO, "service", "flamegate %s running (config %s)", FG_VERSION, cfg->source);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            fg_log(FG_LOG_WARN, "service", "SIGHUP: configuration reload is not supported yet");
            continue;
        }
        fg_log(FG_LOG_INFO, "service", "%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }
    fg_service_shutdown(svc, SHUTDOWN_TIMEOUT_NS);
    fg_service_free(svc);
    fg_config_free(cfg);
    fg_log(FG_LOG_INFO, "service", "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    /* glibc gives each busy thread its own heap; with one thread per connection that
     * costs a third of the peak RSS for no throughput (measured with bench/forward_loop.py) */
    mallopt(M_ARENA_MAX, 2);
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
