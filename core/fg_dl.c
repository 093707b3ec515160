/* dlopen and dlsym, once per library, for the lazy library shims. */
#include "fg_dl.h"

#include <dlfcn.h>
#include <stdio.h>

static void open_lib(struct fg_dl_lib *lib)
{
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(lib->why, sizeof(lib->why), "%s", dlerror());
        atomic_store_explicit(&lib->state, -1, memory_order_release);
        return;
    }
    for (size_t i = 0; i < lib->n; i++)
        if (!(lib->fns[i] = dlsym(h, lib->names[i]))) {
            snprintf(lib->why, sizeof(lib->why), "%s: no symbol %s", lib->soname,
                     lib->names[i]);
            atomic_store_explicit(&lib->state, -1, memory_order_release);
            return; /* stays open: the process may map it for others too */
        }
    atomic_store_explicit(&lib->state, 1, memory_order_release);
}

bool fg_dl_ready(struct fg_dl_lib *lib)
{
    int state = atomic_load_explicit(&lib->state, memory_order_acquire);
    if (state == 0) {
        pthread_mutex_lock(&lib->mu);
        if (atomic_load_explicit(&lib->state, memory_order_acquire) == 0)
            open_lib(lib);
        pthread_mutex_unlock(&lib->mu);
        state = atomic_load_explicit(&lib->state, memory_order_acquire);
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
