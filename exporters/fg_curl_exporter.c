/* Pieces shared by the libcurl exporters: global init, the easy-handle pool, header lines
 * and the auth extension's Authorization header. */
#include "fg_curl_exporter.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fg_buf.h"
#include "fg_curl_dl.h"
#include "fg_exporter_helper.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;
static struct fg_err curl_init_err;

static void curl_init_once(void)
{
    curl_init_rc = fg_curl_dl_load(&curl_init_err);
    if (curl_init_rc != 0)
        return;
    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK)
        curl_init_rc = fg_err_set(&curl_init_err, FG_EIO, "curl_global_init: %s",
                                  curl_easy_strerror(cc));
}

int fg_curl_global_init(struct fg_err *err)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != 0)
        return fg_err_set(err, FG_EPERMANENT, "%s", curl_init_err.msg);
    return 0;
}

int fg_curl_pool_init(struct fg_curl_pool *p, size_t cap)
{
    p->n = 0;
    p->cap = cap < FG_CURL_POOL_MAX ? cap : FG_CURL_POOL_MAX;
    return pthread_mutex_init(&p->mu, NULL) == 0 ? 0 : FG_ENOMEM;
}

int fg_curl_pool_take(struct fg_curl_pool *p, struct fg_curl_conn *out)
{
    bool found = false;
    pthread_mutex_lock(&p->mu);
    if (p->n > 0) {
        *out = p->idle[--p->n];
        found = true;
    }
    pthread_mutex_unlock(&p->mu);
    if (found) {
        curl_easy_reset(out->h); /* options go, the connection cache stays */
        return 0;
    }
    out->h = curl_easy_init();
    out->warm = false;
    return out->h ? 0 : FG_ENOMEM;
}

void fg_curl_pool_give(struct fg_curl_pool *p, struct fg_curl_conn *c)
{
    pthread_mutex_lock(&p->mu);
    if (p->n < p->cap) {
        p->idle[p->n++] = *c;
        c->h = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    if (c->h)
        curl_easy_cleanup(c->h);
    c->h = NULL;
}

void fg_curl_pool_free(struct fg_curl_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        curl_easy_cleanup(p->idle[i].h);
    p->n = 0;
    pthread_mutex_destroy(&p->mu);
}

int fg_curl_add_header(struct curl_slist **list, const char *name, const char *value,
                       bool grpc_metadata)
{
    struct fg_buf line;
    fg_buf_init(&line, 0);
    int rc = grpc_metadata && !*value ? fg_buf_printf(&line, "%s;", name)
                                      : fg_buf_printf(&line, "%s: %s", name, value);
    if (rc == 0)
        rc = fg_buf_append(&line, "", 1);
    if (rc == 0) {
        if (grpc_metadata) {
            size_t n = strlen(name);
            for (size_t i = 0; i < n; i++)
                if (line.data[i] >= 'A' && line.data[i] <= 'Z')
                    line.data[i] = (uint8_t)(line.data[i] - 'A' + 'a');
        }
        struct curl_slist *l = curl_slist_append(*list, (const char *)line.data);
        if (l)
            *list = l;
        else
            rc = FG_ENOMEM;
    }
    fg_buf_free(&line);
    return rc;
}

int fg_curl_apply_client_auth(struct fg_authenticator **auth, struct curl_slist **headers,
                              const char *header_name, bool grpc_metadata, struct fg_err *err)
{
    if (!*auth)
        return 0;
    char value[2048];
    int rc = (*auth)->client_value(*auth, value, sizeof(value));
    if (rc != 0)
        return fg_err_set(err, rc, "auth.authenticator: no client credentials configured");
    rc = fg_curl_add_header(headers, header_name, value, grpc_metadata);
    memset(value, 0, sizeof(value)); /* the credential should not linger on the stack */
    if (rc != 0)
        return fg_err_set(err, rc, "out of memory");
    *auth = NULL;
    return 0;
}

int fg_curl_exporter_init(struct fg_curl_exporter *cx, const struct fg_factory *factory,
                          const struct fg_component_ops *ops, const char *args_id,
                          size_t pool_cap, const char *auth_header, bool grpc_metadata)
{
    if (fg_curl_pool_init(&cx->pool, pool_cap) != 0)
        return FG_ENOMEM;
    cx->base.ops = ops;
    cx->base.factory = factory;
    snprintf(cx->base.id, sizeof(cx->base.id), "%s", args_id ? args_id : factory->type);
    cx->base.consumer.consume = fg_curl_exporter_consume;
    cx->auth_header = auth_header;
    cx->grpc_metadata = grpc_metadata;
    return 0;
}

int fg_curl_exporter_consume(struct fg_consumer *self, struct fg_profiles *batch,
                             struct fg_err *err)
{
    struct fg_curl_exporter *cx = (struct fg_curl_exporter *)(void *)((char *)self -
        offsetof(struct fg_curl_exporter, base.consumer));
    return fg_exporter_enqueue(cx->helper, batch, err);
}

int fg_curl_exporter_start(struct fg_component *c, struct fg_err *err)
{
    struct fg_curl_exporter *cx = (struct fg_curl_exporter *)c;
    int rc = fg_curl_apply_client_auth(&cx->auth, &cx->headers, cx->auth_header,
                                       cx->grpc_metadata, err);
    if (rc != 0)
        return rc;
    return fg_exporter_start(cx->helper, err);
}

int fg_curl_exporter_shutdown(struct fg_component *c, int64_t deadline_ns)
{
    return fg_exporter_shutdown(((struct fg_curl_exporter *)c)->helper, deadline_ns);
}

void fg_curl_exporter_release(struct fg_curl_exporter *cx)
{
    fg_exporter_free(cx->helper); /* joins the workers before their handles go */
    cx->helper = NULL;
    fg_curl_pool_free(&cx->pool);
    curl_slist_free_all(cx->headers);
    cx->headers = NULL;
}
