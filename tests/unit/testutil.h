/* Shared helpers for the cmocka unit tests. */
#ifndef FG_TESTUTIL_H
#define FG_TESTUTIL_H

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fg_buf.h"
#include "fg_component.h"

/* Reads a whole file; returns NULL (and fails nothing) when it is absent. fg_free it. */
uint8_t *tu_read_file(const char *path, size_t *len);
/* Path of a corpus file ($FG_CORPUS/pprof/NAME), or NULL when the corpus is absent
 * (a fresh clone without ../shared): callers skip with a message then. */
const char *tu_corpus_path(const char *name, char *buf, size_t bufsize);
/* A fresh empty directory under /tmp; returns its path in buf. */
const char *tu_tempdir(char *buf, size_t bufsize);
/* Removes a directory tree made by tu_tempdir. */
void tu_rmtree(const char *path);

/* Sends stderr to a temporary file until tu_capture_end, which puts it back and returns what
 * was written, NUL-terminated (fg_free it); *len gets its length when len is not NULL. */
struct tu_capture {
    char path[64];
    int fd, saved;
};
void tu_capture_stderr(struct tu_capture *c);
char *tu_capture_end(struct tu_capture *c, size_t *len);

#endif

struct fg_profiles;
/* A canonical text form of a batch: one line per sample with every dictionary reference
 * resolved (resource, scope, profile header, stack frames, attributes, link, values,
 * timestamps), lines sorted. Two batches carry the same data iff their canonical forms are
 * equal, however their dictionaries are ordered, deduplicated or grouped. fg_free it. */
char *tu_canon(const struct fg_profiles *p);
/* A small batch exercising every table: one resource (service.name = service), one scope,
 * one cpu profile with n_samples samples (values i+1, two timestamps each, a sample
 * attribute, a link, stacks main→work→leaf_<i%3> with an inlined frame). */
struct fg_profiles *tu_make_batch(const char *service, int n_samples);

struct fg_config;
struct fg_component;
struct fg_consumer;
/* Loads a config from yaml ("t.yaml" in messages); fails the test with the loader's
 * diagnostics when it does not load. fg_config_free it. */
struct fg_config *tu_config_load(const char *yaml);
/* A config with one pipeline: an otlp receiver, processor type configured with body (its lines
 * indented four spaces; may be empty) and a debug exporter. A static buffer: valid until the
 * next call. */
const char *tu_processor_yaml(const char *type, const char *body);
/* Loads tu_processor_yaml(type, body) into *cfg, creates processor type (id type) sending to
 * next and starts it; fails the test on any error. Destroy it before fg_config_free(*cfg). */
struct fg_component *tu_processor_start(const char *type, const char *body,
                                        struct fg_consumer *next, struct fg_config **cfg);

/* A consumer that keeps the batches reaching it (the first TU_RECORDER_MAX; later ones are
 * dropped) with their arrival times (fg_now_ns), or refuses them (FG_EFULL) while refuse is
 * set. */
#define TU_RECORDER_MAX 256
struct tu_recorder {
    struct fg_consumer consumer;
    pthread_mutex_t mu;
    struct fg_profiles *batches[TU_RECORDER_MAX];
    int64_t arrived_ns[TU_RECORDER_MAX];
    int n;
    int refuse;
};
/* How many batches arrived so far. */
int tu_recorder_count(struct tu_recorder *r);

/* A processor of one type, started by tu_processor_start, sending to a recorder. */
struct tu_proc_fixture {
    struct fg_config *cfg;
    struct fg_component *proc;
    struct tu_recorder rec;
};
void tu_proc_fixture_start(struct tu_proc_fixture *f, const char *type, const char *body);
/* Destroys the processor (shut down first when shutdown is set: a flush into the
 * recorder), the recorded batches and the config. */
void tu_proc_fixture_stop(struct tu_proc_fixture *f, bool shutdown);

/* Standard base64 (the '=' padding optional) into out, at most outsz bytes; returns the
 * decoded length, 0 for a character outside the alphabet. */
size_t tu_b64_decode(const char *in, uint8_t *out, size_t outsz);
