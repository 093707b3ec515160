/* The listener start and single-endpoint component glue the HTTP receivers share. */
#include "fg_http_receiver.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "fg_alloc.h"
#include "fg_log.h"

int fg_http_listener_start(struct fg_http_listener *l, const char *id,
                           const struct fg_http_listener_routes *routes, struct fg_err *err)
{
    int rc = fg_http_server_new(l->endpoint, &l->srv, err);
    if (rc)
        goto fail;
    if ((rc = fg_http_server_set_limits(l->srv, &l->limits)) != 0) {
        fg_err_set(err, rc, "invalid listener limits");
        goto fail;
    }
    if (l->tls) {
        struct fg_tls_server *t = NULL;
        if ((rc = fg_tls_server_new(l->tls, &t, err)) != 0 ||
            (rc = fg_http_server_set_tls(l->srv, t)) != 0)
            goto fail;
    }
    if (l->auth && (rc = fg_http_server_set_auth(l->srv, fg_auth_http_check, l->auth)) != 0)
        goto fail;
    for (size_t i = 0; i < routes->n_http; i++) {
        if ((rc = fg_http_server_route(l->srv, &routes->http[i])) != 0) {
            fg_err_set(err, rc, "cannot register %s", routes->http[i].path);
            goto fail;
        }
    }
    for (size_t i = 0; i < routes->n_grpc; i++) {
        if ((rc = fg_grpc_server_route(l->srv, &routes->grpc[i])) != 0) {
            fg_err_set(err, rc, "cannot register gRPC %s", routes->grpc[i].path);
            goto fail;
        }
    }
    if ((rc = fg_http_server_start(l->srv, err)) != 0)
        goto fail;
    /* The host as configured (port 0 is replaced by the bound one). */
    const char *colon = strrchr(l->endpoint, ':');
    int host_len = colon ? (int)(colon - l->endpoint) : 0;
    fg_log(FG_LOG_INFO, id, "listening on %.*s:%u (%s)%s%s", host_len, l->endpoint,
           (unsigned)fg_http_server_port(l->srv), l->label, l->tls ? " with TLS" : "",
           l->auth ? (l->tls ? " and auth" : " with auth") : "");
    return 0;
fail:
    fg_err_prefix(err, "%s", id);
    fg_http_server_free(l->srv);
    l->srv = NULL;
    return rc;
}

void fg_http_listener_free(struct fg_http_listener *l)
{
    fg_http_server_free(l->srv);
    l->srv = NULL;
    fg_free(l->endpoint);
    l->endpoint = NULL;
}

bool fg_http_media_type_is(const char *ct, const char *type)
{
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strlen(type);
    if (strncasecmp(ct, type, n) != 0)
        return false;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

static void strlist_free(struct fg_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        fg_free(l->items[i]);
    fg_free(l->items);
    l->items = NULL;
    l->n = 0;
}

static int strlist_copy(struct fg_strlist *dst, const struct fg_strlist *src)
{
    dst->n = 0;
    dst->items = src->n ? fg_calloc(src->n, sizeof(*dst->items)) : NULL;
    if (src->n && !dst->items)
        return FG_ENOMEM;
    for (size_t i = 0; i < src->n; i++) {
        if (!(dst->items[i] = fg_strdup(src->items[i] ? src->items[i] : "")))
            return FG_ENOMEM;
        dst->n++;
    }
    return 0;
}

int fg_http_receiver_create(const struct fg_create_args *args, const struct fg_factory *factory,
                            const struct fg_component_ops *ops, const char *label,
                            struct fg_component **out, struct fg_err *err)
{
    const struct fg_http_receiver_config *cfg = args->config;
    *out = NULL;
    if (!args->next)
        return fg_err_set(err, FG_EINVAL, "%s: no next consumer", args->id);
    if (!cfg->endpoint || !*cfg->endpoint)
        return fg_err_set(err, FG_EINVAL, "%s: endpoint is not set", args->id);
    struct fg_http_receiver *r = fg_calloc(1, sizeof(*r));
    if (!r)
        return fg_err_set(err, FG_ENOMEM, "%s: out of memory", args->id);
    r->base.ops = ops;
    r->base.factory = factory;
    snprintf(r->base.id, sizeof(r->base.id), "%s", args->id);
    r->next = args->next;
    r->max_body = (size_t)cfg->max_request_body_size;
    r->listener.label = label;
    fg_http_limits_default(&r->listener.limits);
    r->listener.tls = cfg->tls_enabled ? &cfg->tls : NULL;
    int rc = fg_auth_resolve(args, &cfg->auth, &r->listener.auth, err);
    if (rc != 0)
        goto fail;
    r->listener.endpoint = fg_strdup(cfg->endpoint);
    if (!r->listener.endpoint || strlist_copy(&r->tenant_headers, &cfg->tenant_headers) != 0) {
        rc = fg_err_set(err, FG_ENOMEM, "%s: out of memory", args->id);
        goto fail;
    }
    *out = &r->base;
    return 0;
fail:
    fg_http_receiver_destroy(&r->base);
    return rc;
}

int fg_http_receiver_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    (void)deadline_ns; /* the server waits for its handlers however long they take */
    fg_http_server_stop(((struct fg_http_receiver *)c)->listener.srv);
    return 0;
}

void fg_http_receiver_destroy(struct fg_component *c)
{
    struct fg_http_receiver *r = (struct fg_http_receiver *)c;
    if (!r)
        return;
    fg_http_listener_free(&r->listener);
    strlist_free(&r->tenant_headers);
    fg_free(r);
}

uint16_t fg_http_receiver_port(const struct fg_component *c)
{
    const struct fg_http_receiver *r = (const struct fg_http_receiver *)c;
    return r->listener.srv ? fg_http_server_port(r->listener.srv) : 0;
}
