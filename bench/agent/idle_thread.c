/* Overhead bench helper, preloaded into plain runs: starts one thread that only sleeps. Any
 * second thread switches glibc's malloc to its multi-threaded paths (arena locks, atomic
 * fastbins); the agent's collector and sender threads do the same, and this row separates
 * that cost from the agent's own. */
#include <pthread.h>
#include <unistd.h>

static void *idle_main(void *arg)
{
    (void)arg;
    for (;;)
        pause();
    return NULL;
}

__attribute__((constructor)) static void idle_start(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, idle_main, NULL) == 0)
        pthread_detach(t);
}
