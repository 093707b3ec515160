#!/usr/bin/python3
"""Agent overhead bench: the same CPU-bound and allocation-heavy workloads run plain, under
the flamegate agent and under gperftools (libprofiler; tcmalloc's heap profilers), each N
times; prints the median wall and CPU time (user+sys of the process and its threads) and the
overhead against the matching plain run, as a Markdown table.

usage: run.py [--build DIR] [--runs N]   (make bench-agent)
Timing is never pass/fail. On a shared machine read the CPU column: wall time includes
waiting for a core."""
import argparse
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


def run_once(argv, env):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if status != 0:
        raise SystemExit("%s failed (status %d): %s" % (argv, status, err[-500:]))
    return wall, ru.ru_utime + ru.ru_stime


def measure(argv, env_extra, runs, tmp):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLAMEGATE_", "CPUPROFILE", "HEAPPROFILE", "TCMALLOC"))
           and k != "LD_PRELOAD"}
    env.update(env_extra)
    walls, cpus = [], []
    run_once(argv, env)  # warm-up (page cache, first symbol reads)
    for _ in range(runs):
        w, c = run_once(argv, env)
        walls.append(w)
        cpus.append(c)
        for f in os.listdir(tmp):  # keep profile files from piling up
            os.unlink(os.path.join(tmp, f))
    return statistics.median(walls), statistics.median(cpus)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--cpu-rounds", default="4000")
    ap.add_argument("--alloc-mops", default="50")
    ap.add_argument("--only", choices=("cpu", "alloc"), help="run one workload")
    args = ap.parse_args()
    agent = os.path.join(args.build, "agent", "libflamegate-agent.so")
    cpu_bin = [os.path.join(args.build, "agent", "bench_agent_cpu"), args.cpu_rounds]
    alloc_bin = [os.path.join(args.build, "agent", "bench_agent_alloc"), args.alloc_mops]
    for f in (agent, cpu_bin[0], alloc_bin[0]):
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

    cases = [
        # (workload, name, argv, env, baseline name)
        ("cpu", "plain", cpu_bin, {}, None),
        ("cpu", "flamegate cpu 99 Hz", cpu_bin,
         ag({"FLAMEGATE_PROFILES": "cpu", "FLAMEGATE_CPU_HZ": "99"}), "plain"),
        ("cpu", "flamegate cpu 999 Hz", cpu_bin,
         ag({"FLAMEGATE_PROFILES": "cpu", "FLAMEGATE_CPU_HZ": "999"}), "plain"),
        ("cpu", "flamegate cpu 99 Hz + heap", cpu_bin,
         ag({"FLAMEGATE_CPU_HZ": "99"}), "plain"),
    ]
    if have_gperf:
        cases += [
            ("cpu", "gperftools libprofiler 99 Hz", cpu_bin,
             {"LD_PRELOAD": PROFILER, "CPUPROFILE": os.path.join(tmp, "g.prof"),
              "CPUPROFILE_FREQUENCY": "99"}, "plain"),
            ("cpu", "gperftools libprofiler 999 Hz", cpu_bin,
             {"LD_PRELOAD": PROFILER, "CPUPROFILE": os.path.join(tmp, "g.prof"),
              "CPUPROFILE_FREQUENCY": "999"}, "plain"),
        ]
    cases += [
        ("alloc", "plain (glibc malloc)", alloc_bin, {}, None),
        ("alloc", "flamegate heap 512 KiB", alloc_bin,
         ag({"FLAMEGATE_PROFILES": "heap", "FLAMEGATE_HEAP_SAMPLE_BYTES": str(SAMPLE)}),
         "plain (glibc malloc)"),
        ("alloc", "flamegate heap 512 KiB + cpu 99 Hz", alloc_bin,
         ag({"FLAMEGATE_HEAP_SAMPLE_BYTES": str(SAMPLE)}), "plain (glibc malloc)"),
        # sampling almost never: what the interposed malloc/free cost by themselves
        ("alloc", "flamegate heap 64 MiB (interposition only)", alloc_bin,
         ag({"FLAMEGATE_PROFILES": "heap", "FLAMEGATE_HEAP_SAMPLE_BYTES": str(64 << 20)}),
         "plain (glibc malloc)"),
    ]
    if have_gperf:
        cases += [
            ("alloc", "plain tcmalloc", alloc_bin, {"LD_PRELOAD": TCMALLOC}, None),
            ("alloc", "tcmalloc sampling 512 KiB", alloc_bin,
             {"LD_PRELOAD": TCMALLOC, "TCMALLOC_SAMPLE_PARAMETER": str(SAMPLE)},
             "plain tcmalloc"),
            ("alloc", "tcmalloc HEAPPROFILE (every allocation)", alloc_bin,
             {"LD_PRELOAD": TCMALLOC, "HEAPPROFILE": os.path.join(tmp, "h")},
             "plain tcmalloc"),
        ]
    results = {}
    print("| workload | configuration | wall s (median of %d) | CPU s | wall overhead | "
          "CPU overhead |" % args.runs)
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for wl, name, argv, env, base in cases:
        if args.only and wl != args.only:
            continue
        wall, cpu = measure(argv, env, args.runs, tmp)
        results[(wl, name)] = (wall, cpu)
        if base:
            bw, bc = results[(wl, base)]
            ow = "%+.1f%% vs %s" % (100 * (wall / bw - 1), base)
            oc = "%+.1f%%" % (100 * (cpu / bc - 1))
        else:
            ow = oc = "baseline"
        print("| %s | %s | %.3f | %.3f | %s | %s |" % (wl, name, wall, cpu, ow, oc),
              flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
