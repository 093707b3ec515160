// C++ workload for the demangling test: ns::Worker::spin(int) burns ~0.5 s of CPU and
// ns::Worker::grow(int) keeps 8 MiB from malloc (called directly, so the allocating frame is
// the method itself, not libstdc++'s operator new without frame pointers).
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

namespace ns {
class Worker {
public:
    __attribute__((noinline)) long spin(int rounds);
    __attribute__((noinline)) void grow(int blocks);
    ~Worker()
    {
        for (void *p : kept_)
            std::free(p);
    }

private:
    std::vector<void *> kept_;
};

long Worker::spin(int rounds)
{
    volatile long acc = 0;
    for (int r = 0; r < rounds; r++)
        for (long i = 0; i < 1000000; i++)
            acc = acc + (i ^ r);
    return acc;
}

void Worker::grow(int blocks)
{
    for (int i = 0; i < blocks; i++) {
        void *p = std::malloc(64 * 1024);
        if (!p)
            std::abort();
        static_cast<volatile char *>(p)[0] = 1;
        kept_.push_back(p);
    }
}
} // namespace ns

static double cpu_seconds()
{
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main()
{
    ns::Worker w;
    w.grow(128);
    long acc = 0;
    double t0 = cpu_seconds();
    while (cpu_seconds() - t0 < 0.5)
        acc += w.spin(10);
    std::printf("%ld\n", acc & 1);
    return 0;
}
