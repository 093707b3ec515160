/* What the lazy library shims (exporters/fg_curl_dl.c, server/fg_ssl_dl.c) share: a
 * library opened by soname on first use, its functions looked up once, and forwarders with
 * the library's own names. */
#ifndef FG_DL_H
#define FG_DL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "fg_common.h"

/* The shims' definitions carry the libraries' own names: hidden, so that neither the
 * libraries (flamegate links with -rdynamic) nor anything else binds to them. */
#define FG_DL_HIDDEN __attribute__((visibility("hidden")))

/* One library. Set the first five fields statically (FG_DL_LIB); the rest is state. */
struct fg_dl_lib {
    const char *soname;       /* "libcurl.so.4": the versioned name, as the package ships it */
    const char *package;      /* the Debian package that ships it, for the error message */
    const char *const *names; /* functions to look up (in the dependencies too) */
    void **fns;               /* where their addresses go, same order */
    size_t n;
    pthread_mutex_t mu;
    atomic_int state; /* 0 not tried, 1 loaded, -1 failed (why says what) */
    char why[200];
};
#define FG_DL_LIB(soname, package, names, fns, n) \
    {(soname), (package), (names), (fns), (n), PTHREAD_MUTEX_INITIALIZER, 0, ""}

/* Opens the library and looks up every function the first time (RTLD_NOW | RTLD_LOCAL;
 * never closed); later calls only read the outcome. Any thread. */
bool fg_dl_ready(struct fg_dl_lib *lib);
/* fg_dl_ready, with the reason on failure: FG_EUNSUPPORTED and "cannot load <what> (<why>);
 * install the Debian package <package>". */
int fg_dl_load(struct fg_dl_lib *lib, const char *what, struct fg_err *err);

/* For a shim's X-macro lists, whose entries start (type, name, ...): the enum of the
 * functions' indexes (FN_<name>) and the array of their names, in one order. */
#define FG_DL_INDEX(type, name, ...) FN_##name,
#define FG_DL_NAME(type, name, ...) #name,

/* A forwarder `type name params` calling fn with args once the library is ready, else
 * returning fail; the _VOID form for functions without a result. */
#define FG_DL_FORWARD(lib, fn, type, name, params, args, fail)         \
    FG_DL_HIDDEN type name params                                      \
    {                                                                  \
        return fg_dl_ready(lib) ? ((type(*) params)(fn))args : (fail); \
    }
#define FG_DL_FORWARD_VOID(lib, fn, name, params, args) \
    FG_DL_HIDDEN void name params                       \
    {                                                   \
        if (fg_dl_ready(lib))                           \
            ((void(*) params)(fn))args;                 \
    }

#endif
