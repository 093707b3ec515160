/* Agent robustness workload: forks (child allocates, burns, exits), creates and joins 1000
 * threads, dlopens/dlcloses a module while burning CPU in it, and frees memory it got
 * early (FLAMEGATE_DEBUG_BOOTSTRAP makes those come from the agent's bootstrap arena).
 * usage: agent_robust PLUGIN.so ; prints the number of open fds before and after the
 * threads ("fds BEFORE AFTER": a profiler that keeps one fd per thread must close it when
 * the thread exits), then "ok" and exits 0 when everything ran. */
#include <dirent.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <malloc.h>

static volatile uint64_t sink;

__attribute__((noinline)) static void spin(long iters)
{
    uint64_t x = sink;
    for (long i = 0; i < iters; i++)
        x = x * 2862933555777941757ULL + 3;
    sink = x;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += de->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* Whether the thread tid belongs to this process. */
static int own_thread(pid_t tid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/task/%d", (int)tid);
    return access(path, F_OK) == 0;
}

/* perf_event fds held by this process (a profiler's events must not survive fork); *foreign
 * counts those signalling a thread that is not this process's (the parent's events). */
static int perf_event_fds(int *foreign)
{
    *foreign = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        char path[300], target[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len > 0) {
            target[len] = '\0';
            if (strcmp(target, "anon_inode:[perf_event]") != 0)
                continue;
            n++;
            struct f_owner_ex owner;
            if (fcntl(atoi(de->d_name), F_GETOWN_EX, &owner) != 0 || !own_thread(owner.pid))
                (*foreign)++;
        }
    }
    closedir(d);
    return n;
}

static void *thread_fn(void *arg)
{
    char *p = malloc(100 + (size_t)(uintptr_t)arg % 5000);
    if (!p)
        return (void *)1;
    memset(p, 0, 100);
    spin(2000);
    free(p);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    /* Early blocks: with the debug knob these come from the bootstrap arena. */
    void *early[64];
    for (int i = 0; i < 64; i++) {
        early[i] = malloc(16 + (size_t)i * 8);
        if (!early[i])
            return 3;
        memset(early[i], i, 16);
    }
    early[1] = realloc(early[1], 100000);
    if (!early[1] || ((unsigned char *)early[1])[0] != 1)
        return 4;
    if (malloc_usable_size(early[2]) < 32)
        return 5;
    for (int i = 0; i < 64; i++)
        free(early[i]);

    /* fork: the child allocates and burns under the inherited interposer, then exits */
    for (int k = 0; k < 3; k++) {
        pid_t pid = fork();
        if (pid < 0)
            return 6;
        if (pid == 0) {
            /* none; with FLAMEGATE_FOLLOW_FORK=1 the restarted agent's, none of the parent's */
            const char *follow = getenv("FLAMEGATE_FOLLOW_FORK");
            int foreign, n = perf_event_fds(&foreign);
            if (n < 0 || foreign || (n && !(follow && strcmp(follow, "1") == 0)))
                _exit(12);
            for (int i = 0; i < 10000; i++)
                free(malloc((size_t)i % 4096 + 1));
            spin(20000000);
            exit(0);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return 7;
    }

    /* 1000 threads, 50 at a time */
    int fds_before = open_fds();
    for (int round = 0; round < 20; round++) {
        pthread_t th[50];
        for (int i = 0; i < 50; i++)
            if (pthread_create(&th[i], NULL, thread_fn, (void *)(uintptr_t)(round * 50 + i)))
                return 8;
        for (int i = 0; i < 50; i++) {
            void *rv;
            if (pthread_join(th[i], &rv) || rv)
                return 9;
        }
    }
    printf("fds %d %d\n", fds_before, open_fds());

    /* dlopen / dlclose while the profiler samples code inside the module */
    for (int i = 0; i < 20; i++) {
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 10;
        }
        uint64_t (*burn)(long) = (uint64_t(*)(long))dlsym(h, "plugin_burn");
        if (!burn)
            return 11;
        burn(30000000); /* ~30 ms of CPU each: enough samples even when ticks are coalesced under load */
        dlclose(h);
    }
    spin(50000000);
    printf("ok\n");
    return 0;
}
