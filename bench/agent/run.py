#!/usr/bin/python3
"""Agent overhead bench: the same workloads run plain, under the flamegate agent and under
gperftools (libprofiler; tcmalloc's sampling), N times each with the configurations of
a workload interleaved (so that load drifting on a shared machine hits them alike); prints
the median wall and CPU time (user+sys of the process, its threads and the agent's helper
process) and the CPU overhead against the matching plain run, as a Markdown table.

Workloads: cpu (integer work over a few call paths), alloc (a pure malloc/free loop: the
worst case for an interposer), map (builds, queries and tears down string-keyed hash maps of
small records: allocation is ~35-40% of its CPU). "plain + idle thread" preloads a library
that starts one sleeping thread: any second thread switches glibc's malloc to its locking
paths (the agent starts none in the program: its threads live in the helper process), and
the last column measures the agent against that.

usage: run.py [--build DIR] [--runs N] [--only cpu|alloc|map]   (make bench-agent)
Timing is never pass/fail. On a shared machine read the CPU column: wall time includes
waiting for a core."""
import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PROFILER = os.path.join(LIBDIR, "libprofiler.so")
TCMALLOC = os.path.join(LIBDIR, "libtcmalloc.so")
SAMPLE = 524288


PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """The agent's helper process is orphaned on purpose (the program never sees it as a
    child): as the subreaper, this bench inherits it, reaps it and counts its CPU time."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("prctl(PR_SET_CHILD_SUBREAPER): errno %d" % ctypes.get_errno())


def run_once(argv, env):
    """Wall time of the program; CPU time of the program and of every process it left
    behind (the agent's helper), all waited for."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    cpu = ru.ru_utime + ru.ru_stime
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    while True:
        try:
            _, _, ru = os.wait4(-1, 0)
        except ChildProcessError:
            break
        cpu += ru.ru_utime + ru.ru_stime
    if status != 0:
        raise SystemExit("%s failed (status %d): %s" % (argv, status, err[-500:]))
    return wall, cpu


def clean_env(env_extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLAMEGATE_", "CPUPROFILE", "HEAPPROFILE", "TCMALLOC"))
           and k != "LD_PRELOAD"}
    env.update(env_extra)
    return env


def measure(cases, runs, tmp):
    """Runs every case once to warm up, then `runs` rounds of all cases in turn; returns
    {name: (median wall, median CPU, min CPU, max CPU)}."""
    walls = {c[0]: [] for c in cases}
    cpus = {c[0]: [] for c in cases}
    for _, argv, env, _ in cases:
        run_once(argv, clean_env(env))  # warm-up (page cache, first symbol reads)
    for _ in range(runs):
        for name, argv, env, _ in cases:
            w, c = run_once(argv, clean_env(env))
            walls[name].append(w)
            cpus[name].append(c)
            for f in os.listdir(tmp):  # keep profile files from piling up
                os.unlink(os.path.join(tmp, f))
    return {n: (statistics.median(walls[n]), statistics.median(cpus[n]), min(cpus[n]),
                max(cpus[n])) for n in walls}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--cpu-rounds", default="4000")
    ap.add_argument("--alloc-mops", default="50")
    ap.add_argument("--map-rounds", default="60")
    ap.add_argument("--only", choices=("cpu", "alloc", "map"), help="run one workload")
    args = ap.parse_args()
    become_subreaper()
    bdir = os.path.join(args.build, "agent")
    agent = os.path.join(bdir, "libflamegate-agent.so")
    idle = os.path.join(bdir, "libbench_agent_idle_thread.so")
    cpu_bin = [os.path.join(bdir, "bench_agent_cpu"), args.cpu_rounds]
    alloc_bin = [os.path.join(bdir, "bench_agent_alloc"), args.alloc_mops]
    map_bin = [os.path.join(bdir, "bench_agent_map"), args.map_rounds]
    for f in (agent, idle, cpu_bin[0], alloc_bin[0], map_bin[0]):
        if not os.path.exists(f):
            raise SystemExit("missing %s: build first (make build)" % f)
    have_gperf = os.path.exists(PROFILER) and os.path.exists(TCMALLOC)
    if not have_gperf:
        print("gperftools missing (scripts/install-deps.sh --bench): its rows are skipped",
              file=sys.stderr)
    tmp = tempfile.mkdtemp(prefix="fg-bench-agent-")
    out = "otlp-file:" + os.path.join(tmp, "fg")

    def ag(extra):
        e = {"LD_PRELOAD": os.path.abspath(agent), "FLAMEGATE_OUTPUT": out}
        e.update(extra)
        return e

    def heap(sample):
        return ag({"FLAMEGATE_PROFILES": "heap", "FLAMEGATE_HEAP_SAMPLE_BYTES": str(sample)})

    plain, idle_row = "plain", "plain + idle thread"
    # (name, argv, env, baseline name); a workload's first case is its baseline
    cpu = [
        (plain, cpu_bin, {}, None),
        ("flamegate cpu 99 Hz", cpu_bin,
         ag({"FLAMEGATE_PROFILES": "cpu", "FLAMEGATE_CPU_HZ": "99"}), plain),
        ("flamegate cpu 999 Hz", cpu_bin,
         ag({"FLAMEGATE_PROFILES": "cpu", "FLAMEGATE_CPU_HZ": "999"}), plain),
        # tick-bound like libprofiler's ITIMER_PROF: ~250 signals per CPU-second here, each
        # weighted by its overruns (the default 999 Hz sampler, perf_event, takes all 999)
        ("flamegate cpu 999 Hz thread-timer", cpu_bin,
         ag({"FLAMEGATE_PROFILES": "cpu", "FLAMEGATE_CPU_HZ": "999",
             "FLAMEGATE_CPU_SAMPLER": "thread-timer"}), plain),
        ("flamegate cpu 99 Hz + heap", cpu_bin, ag({"FLAMEGATE_CPU_HZ": "99"}), plain),
    ]
    if have_gperf:
        cpu += [
            ("gperftools libprofiler 99 Hz", cpu_bin,
             {"LD_PRELOAD": PROFILER, "CPUPROFILE": os.path.join(tmp, "g.prof"),
              "CPUPROFILE_FREQUENCY": "99"}, plain),
            ("gperftools libprofiler 999 Hz", cpu_bin,
             {"LD_PRELOAD": PROFILER, "CPUPROFILE": os.path.join(tmp, "g.prof"),
              "CPUPROFILE_FREQUENCY": "999"}, plain),
        ]

    def heap_cases(argv, with_cpu):
        cases = [
            (plain + " (glibc malloc)", argv, {}, None),
            (idle_row, argv, {"LD_PRELOAD": os.path.abspath(idle)}, plain + " (glibc malloc)"),
            ("flamegate heap 512 KiB", argv, heap(SAMPLE), plain + " (glibc malloc)"),
        ]
        if with_cpu:
            cases.append(("flamegate heap 512 KiB + cpu 99 Hz", argv,
                          ag({"FLAMEGATE_HEAP_SAMPLE_BYTES": str(SAMPLE)}),
                          plain + " (glibc malloc)"))
        # sampling almost never: what the interposed malloc/free cost by themselves
        cases.append(("flamegate heap 64 MiB (interposition only)", argv, heap(64 << 20),
                      plain + " (glibc malloc)"))
        if have_gperf:
            cases += [
                ("plain tcmalloc", argv, {"LD_PRELOAD": TCMALLOC}, None),
                ("tcmalloc sampling 512 KiB", argv,
                 {"LD_PRELOAD": TCMALLOC, "TCMALLOC_SAMPLE_PARAMETER": str(SAMPLE)},
                 "plain tcmalloc"),
            ]
        return cases

    # (tcmalloc's HEAPPROFILE, which records every allocation, takes minutes per run here:
    # not a sampling profiler, left out)
    workloads = [("cpu", cpu), ("alloc", heap_cases(alloc_bin, True)),
                 ("map", heap_cases(map_bin, False))]

    print("| workload | configuration | wall s | CPU s (median of %d) | CPU s min–max | "
          "CPU overhead | vs plain + idle thread |" % args.runs)
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for wl, cases in workloads:
        if args.only and wl != args.only:
            continue
        res = measure(cases, args.runs, tmp)
        for name, _, _, base in cases:
            wall, cpu_s, lo, hi = res[name]
            oc = "%+.1f%% vs %s" % (100 * (cpu_s / res[base][1] - 1), base) if base else \
                "baseline"
            oi = ""
            if name.startswith("flamegate") and idle_row in res:
                oi = "%+.1f%%" % (100 * (cpu_s / res[idle_row][1] - 1))
            print("| %s | %s | %.3f | %.3f | %.3f–%.3f | %s | %s |"
                  % (wl, name, wall, cpu_s, lo, hi, oc, oi), flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
