/* Pieces shared by the libcurl exporters (otlphttp, otlp, pyroscope): global init, a pool
 * of idle easy handles, request header lines, and the auth extension's Authorization.
 * libcurl is loaded at the first send (fg_curl_dl.h): create, start and the header lists
 * do not need it. */
#ifndef FG_CURL_EXPORTER_H
#define FG_CURL_EXPORTER_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg_auth.h"
#include "fg_common.h"

#define FG_CURL_POOL_MAX 64 /* the most idle handles any exporter keeps */

/* An easy handle and whether it holds an HTTP/2 connection from an earlier call (only the
 * otlp exporter reads warm; the others ignore it). */
struct fg_curl_conn {
    CURL *h;
    bool warm;
};

/* Idle easy handles: each keeps its connection cache, so a worker that takes one back
 * reuses the connection of an earlier request. */
struct fg_curl_pool {
    pthread_mutex_t mu;
    struct fg_curl_conn idle[FG_CURL_POOL_MAX];
    size_t n;
    size_t cap; /* at most FG_CURL_POOL_MAX */
};

/* Loads libcurl and runs curl_global_init, once per process; each send calls it before
 * touching libcurl. 0, or FG_EPERMANENT with the reason (the library or its package is
 * missing, or curl's own). */
int fg_curl_global_init(struct fg_err *err);

/* 0, or FG_ENOMEM when the mutex cannot be made. cap is clamped to FG_CURL_POOL_MAX. */
int fg_curl_pool_init(struct fg_curl_pool *p, size_t cap);
/* An idle handle (reset: options go, the connection cache stays) or a new one with warm
 * false. 0, or FG_ENOMEM when curl cannot make a handle. */
int fg_curl_pool_take(struct fg_curl_pool *p, struct fg_curl_conn *out);
/* Keeps c->h for reuse, or cleans it up when the pool is full; c->h is NULL after. */
void fg_curl_pool_give(struct fg_curl_pool *p, struct fg_curl_conn *c);
/* Cleans up the idle handles and the mutex; after fg_curl_pool_init succeeded only. */
void fg_curl_pool_free(struct fg_curl_pool *p);

/* Appends "name: value" to *list. grpc_metadata: the name is lowercased (HTTP/2 wants
 * lowercase keys) and an empty value is written "name;" (libcurl's spelling of an empty
 * header; "name:" would delete it). 0 or FG_ENOMEM. */
int fg_curl_add_header(struct curl_slist **list, const char *name, const char *value,
                       bool grpc_metadata);

/* When *auth is set, appends header_name with the authenticator's client value and clears
 * *auth, so a restarted exporter keeps its one header. Call from start: the extension has
 * started by then (extensions start first), so its value is known. */
int fg_curl_apply_client_auth(struct fg_authenticator **auth, struct curl_slist **headers,
                              const char *header_name, bool grpc_metadata, struct fg_err *err);

/* The head each libcurl exporter's struct begins with, so that one consume, start and
 * shutdown serve all three. */
struct fg_exporter;
struct fg_curl_exporter {
    struct fg_component base;      /* first: the pipeline sees only this */
    struct fg_exporter *helper;    /* queue, workers, retry */
    struct fg_authenticator *auth; /* until start adds its header */
    struct curl_slist *headers;    /* built once at create; start may add the auth header */
    struct fg_curl_pool pool;
    const char *auth_header;       /* the header start writes the auth extension's value to */
    bool grpc_metadata;            /* headers are gRPC metadata (see fg_curl_add_header) */
};

/* Sets up the head: the component's ops, factory and id (args_id, or the factory's type),
 * the shared consume, the pool (cap idle handles) and how start writes the auth header.
 * 0, or FG_ENOMEM when the pool's mutex cannot be made (nothing to release then). */
int fg_curl_exporter_init(struct fg_curl_exporter *cx, const struct fg_factory *factory,
                          const struct fg_component_ops *ops, const char *args_id,
                          size_t pool_cap, const char *auth_header, bool grpc_metadata);
/* fg_consumer.consume: queues the batch on the helper. */
int fg_curl_exporter_consume(struct fg_consumer *self, struct fg_profiles *batch,
                             struct fg_err *err);
/* fg_component_ops.start: the auth header (once), then the helper's workers. */
int fg_curl_exporter_start(struct fg_component *c, struct fg_err *err);
/* fg_component_ops.shutdown: drains the helper until deadline_ns. */
int fg_curl_exporter_shutdown(struct fg_component *c, int64_t deadline_ns);
/* Frees the helper (joining its workers first, they hold handles), the pool and the headers;
 * the pool must have been initialised. The exporter frees its own fields after. */
void fg_curl_exporter_release(struct fg_curl_exporter *cx);

#endif
