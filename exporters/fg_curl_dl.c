/* Forwarders for the libcurl functions flamegate calls, resolved with dlopen/dlsym on first
 * use (see fg_curl_dl.h). */
#include "fg_curl_dl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The definitions below must not meet the type-checking macros of curl.h. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#include "fg_dl.h"

/* X(return type, name, parameters, arguments, value when libcurl is missing) */
#define FG_CURL_FUNCS(X)                                                                  \
    X(CURLcode, curl_global_init, (long flags), (flags), CURLE_FAILED_INIT)               \
    X(const char *, curl_easy_strerror, (CURLcode code), (code), "libcurl is not loaded") \
    X(CURL *, curl_easy_init, (void), (), NULL)                                           \
    X(CURLcode, curl_easy_perform, (CURL * h), (h), CURLE_FAILED_INIT)                    \
    X(char *, curl_easy_escape, (CURL * h, const char *s, int len), (h, s, len), NULL)    \
    X(time_t, curl_getdate, (const char *p, const time_t *unused), (p, unused), -1)       \
    X(curl_version_info_data *, curl_version_info, (CURLversion v), (v), NULL)
/* X(void, name, parameters, arguments): functions without a result */
#define FG_CURL_VOID_FUNCS(X)                   \
    X(void, curl_easy_cleanup, (CURL * h), (h)) \
    X(void, curl_easy_reset, (CURL * h), (h))   \
    X(void, curl_free, (void *p), (p))
/* X(type, name): the variadic ones, written out below */
#define FG_CURL_VARIADIC(X) X(CURLcode, curl_easy_setopt) X(CURLcode, curl_easy_getinfo)

enum { FG_CURL_FUNCS(FG_DL_INDEX) FG_CURL_VOID_FUNCS(FG_DL_INDEX) FG_CURL_VARIADIC(FG_DL_INDEX)
           N_FUNCS };
static const char *const names[N_FUNCS] = {
    FG_CURL_FUNCS(FG_DL_NAME) FG_CURL_VOID_FUNCS(FG_DL_NAME) FG_CURL_VARIADIC(FG_DL_NAME)};

static void *fns[N_FUNCS];
static struct fg_dl_lib lib = FG_DL_LIB(FG_CURL_SONAME, FG_CURL_PACKAGE, names, fns, N_FUNCS);

int fg_curl_dl_load(struct fg_err *err)
{
    return fg_dl_load(&lib, "libcurl", err);
}

#define FG__FORWARD(type, name, params, args, fail) \
    FG_DL_FORWARD(&lib, fns[FN_##name], type, name, params, args, fail)
#define FG__FORWARD_VOID(type, name, params, args) \
    FG_DL_FORWARD_VOID(&lib, fns[FN_##name], name, params, args)
FG_CURL_FUNCS(FG__FORWARD)
FG_CURL_VOID_FUNCS(FG__FORWARD_VOID)

typedef CURLcode (*setopt_fn)(CURL *h, CURLoption option, ...);
typedef CURLcode (*getinfo_fn)(CURL *h, CURLINFO info, ...);

/* The option number says the argument's type, in ranges of 10000 (curl.h's CURLOPTTYPE_*);
 * libcurl reads it the same way. */
FG_DL_HIDDEN CURLcode curl_easy_setopt(CURL *h, CURLoption option, ...)
{
    if (!fg_dl_ready(&lib))
        return CURLE_FAILED_INIT;
    setopt_fn setopt = (setopt_fn)fns[FN_curl_easy_setopt];
    va_list ap;
    va_start(ap, option);
    CURLcode rc;
    if (option < CURLOPTTYPE_OBJECTPOINT)
        rc = setopt(h, option, va_arg(ap, long));
    else if (option < CURLOPTTYPE_FUNCTIONPOINT)
        rc = setopt(h, option, va_arg(ap, void *));
    else if (option < CURLOPTTYPE_OFF_T)
        rc = setopt(h, option, va_arg(ap, void (*)(void)));
    else if (option < CURLOPTTYPE_BLOB)
        rc = setopt(h, option, va_arg(ap, curl_off_t));
    else
        rc = setopt(h, option, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

/* Every CURLINFO_* takes a pointer to where the answer goes. */
FG_DL_HIDDEN CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
    if (!fg_dl_ready(&lib))
        return CURLE_FAILED_INIT;
    va_list ap;
    va_start(ap, info);
    CURLcode rc = ((getinfo_fn)fns[FN_curl_easy_getinfo])(h, info, va_arg(ap, void *));
    va_end(ap);
    return rc;
}

/* Plain data that libcurl only reads (CURLOPT_HTTPHEADER, CURLOPT_CONNECT_TO), allocated
 * with malloc as libcurl's own are (flamegate never replaces libcurl's allocator). */
FG_DL_HIDDEN struct curl_slist *curl_slist_append(struct curl_slist *list, const char *data)
{
    struct curl_slist *item = malloc(sizeof(*item));
    char *copy = strdup(data);
    if (!item || !copy) {
        free(item);
        free(copy);
        return NULL;
    }
    item->data = copy;
    item->next = NULL;
    if (!list)
        return item;
    struct curl_slist *last = list;
    while (last->next)
        last = last->next;
    last->next = item;
    return list;
}

FG_DL_HIDDEN void curl_slist_free_all(struct curl_slist *list)
{
    while (list) {
        struct curl_slist *next = list->next;
        free(list->data);
        free(list);
        list = next;
    }
}
