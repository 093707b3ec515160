/* dlopen and dlsym, once per library, for the lazy library shims. */
#include "fg_dl.h"

#include <dlfcn.h>
#include <stdio.h>

static void open_lib(struct fg_dl_lib *lib)
{
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(lib->why, sizeof(lib->why), "%s", dlerror());
        __atomic_store_n(&lib->state, -1, __ATOMIC_RELEASE);
        return;
    }
    for (size_t i = 0; i < lib->n; i++)
        if (!(lib->fns[i] = dlsym(h, lib->names[i]))) {
            snprintf(lib->why, sizeof(lib->why), "%s: no symbol %s", lib->soname,
                     lib->names[i]);
            __atomic_store_n(&lib->state, -1, __ATOMIC_RELEASE);
            return; /* stays open: the process may map it for others too */
        }
    __atomic_store_n(&lib->state, 1, __ATOMIC_RELEASE);
}

bool fg_dl_ready(struct fg_dl_lib *lib)
{
    int state = __atomic_load_n(&lib->state, __ATOMIC_ACQUIRE);
    if (state == 0) {
        pthread_mutex_lock(&lib->mu);
        if (__atomic_load_n(&lib->state, __ATOMIC_ACQUIRE) == 0)
            open_lib(lib);
        pthread_mutex_unlock(&lib->mu);
        state = __atomic_load_n(&lib->state, __ATOMIC_ACQUIRE);
    }
    return state == 1;
}

int fg_dl_load(struct fg_dl_lib *lib, const char *what, struct fg_err *err)
{
    if (fg_dl_ready(lib))
        return 0;
    return fg_err_set(err, FG_EUNSUPPORTED, "cannot load %s (%s); install the Debian package %s",
                      what, lib->why, lib->package);
}
