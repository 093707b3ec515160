/* Agent test workload: what a program sees of the agent. Burns CPU and allocates for the
 * given time, then prints its thread count, glibc's single-threaded flag and whether it has
 * any child process, as one JSON line.
 * usage: agent_helperwork SECONDS */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/single_threaded.h>
#include <sys/wait.h>
#include <time.h>

static volatile uint64_t sink;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noinline)) void helper_burn(void)
{
    uint64_t x = sink;
    for (int i = 0; i < 100000; i++)
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    sink = x;
}

__attribute__((noinline)) void *helper_alloc(size_t n)
{
    char *p = malloc(n);
    if (p)
        p[0] = 1;
    return p;
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d));)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 0.3, end = now_s() + secs;
    void *keep[64] = {0};
    for (unsigned i = 0; now_s() < end; i++) {
        helper_burn();
        free(keep[i % 64]);
        keep[i % 64] = helper_alloc(4096 + i % 8192);
    }
    int threads = count_threads(), single = __libc_single_threaded;
    errno = 0;
    pid_t child = waitpid(-1, NULL, WNOHANG);
    printf("{\"threads\": %d, \"single_threaded\": %d, \"waitpid\": %d, \"echild\": %d}\n",
           threads, single, (int)child, errno == ECHILD);
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    return 0;
}
