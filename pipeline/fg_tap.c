/* The tap registry: a fixed table of observers behind a read-write lock, skipped with one
 * atomic load when empty so that a gateway without a live view pays nothing. */
#include "fg_tap.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

struct observer {
    fg_tap_fn fn;
    void *ctx;
};

static pthread_rwlock_t tap_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct observer observers[FG_TAP_MAX]; /* under tap_lock */
static size_t n_observers;                   /* under tap_lock */
static atomic_size_t n_active;               /* mirrors n_observers for the fast path */

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct fg_config *current_config; /* under config_lock */
static const void *current_owner;              /* under config_lock */

int fg_tap_add(fg_tap_fn fn, void *ctx)
{
    int rc = 0;
    pthread_rwlock_wrlock(&tap_lock);
    if (n_observers == FG_TAP_MAX) {
        rc = FG_EFULL;
    } else {
        observers[n_observers++] = (struct observer){fn, ctx};
        atomic_store(&n_active, n_observers);
    }
    pthread_rwlock_unlock(&tap_lock);
    return rc;
}

void fg_tap_remove(fg_tap_fn fn, void *ctx)
{
    /* the write lock waits for every publish in flight */
    pthread_rwlock_wrlock(&tap_lock);
    for (size_t i = 0; i < n_observers; i++)
        if (observers[i].fn == fn && observers[i].ctx == ctx) {
            observers[i] = observers[--n_observers];
            break;
        }
    atomic_store(&n_active, n_observers);
    pthread_rwlock_unlock(&tap_lock);
}

void fg_tap_publish(const char *pipeline, struct fg_profiles *batch)
{
    if (atomic_load_explicit(&n_active, memory_order_relaxed) == 0 || !batch)
        return;
    pthread_rwlock_rdlock(&tap_lock);
    for (size_t i = 0; i < n_observers; i++)
        observers[i].fn(observers[i].ctx, pipeline, batch);
    pthread_rwlock_unlock(&tap_lock);
}

void fg_tap_set_config(const void *owner, const struct fg_config *cfg)
{
    pthread_mutex_lock(&config_lock);
    current_config = cfg;
    current_owner = owner;
    pthread_mutex_unlock(&config_lock);
}

void fg_tap_clear_config(const void *owner)
{
    pthread_mutex_lock(&config_lock);
    if (current_owner == owner) {
        current_config = NULL;
        current_owner = NULL;
    }
    pthread_mutex_unlock(&config_lock);
}

void fg_tap_with_config(void (*fn)(void *ctx, const struct fg_config *cfg), void *ctx)
{
    pthread_mutex_lock(&config_lock);
    fn(ctx, current_config);
    pthread_mutex_unlock(&config_lock);
}
