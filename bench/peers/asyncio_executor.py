#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""asyncio_executor: the Python way to keep CPU work off an event loop.

An asyncio loop hands jobs to loop.run_in_executor() on a
concurrent.futures.ThreadPoolExecutor(N) or ProcessPoolExecutor(N), as
bench/roundtrip's loop hands them to a pool.  The same C job cannot run
here, so this measures what Python's executors are judged by: scaling.

  cpu jobs     K calls of a fixed pure-Python loop calibrated to about
               --job-us microseconds (2 ms by default), run serially on the
               loop thread, then all K at once through each executor:
               jobs/s, the speedup over serial and the parallel
               efficiency (speedup / N).  Threads
               hold the GIL while they run Python code, so they cannot
               scale; processes can, at the price of pickling every call.
  empty jobs   M no-op calls, one at a time (W = 1), through each
               executor: the round trip of one job in microseconds.
  --sweep      the cpu jobs again with 1, 2, 4, ... N workers.

Repetitions are interleaved; the JSON report (stdout) gives the median,
min, max and every sample of each figure.  Progress goes to stderr.
Standard library only.

  usage: asyncio_executor.py [--quick | --tiny | --full] [--workers N]
                             [--jobs K] [--job-us US] [--empty M]
                             [--reps R] [--sweep]
"""

import argparse
import asyncio
import concurrent.futures
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time

# Jobs and repetitions of each mode: (cpu jobs, job us, empty jobs, reps).
# A job of 2 ms keeps the parent's cost per job (pickling, the call queue,
# the result) small beside the work, so processes can show their scaling.
MODES = {
    "tiny": (24, 200, 100, 1),
    "quick": (100, 2000, 1000, 3),
    "full": (500, 2000, 5000, 5),
}


def cpu_job(iters):
    """The CPU job: `iters` rounds of a linear congruential step."""
    x = 12345
    for _ in range(iters):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def noop():
    return None


def now_ns():
    return time.perf_counter_ns()


def progress(msg):
    print("asyncio_executor: " + msg, file=sys.stderr, flush=True)


def calibrate(target_us):
    """Rounds of cpu_job() that take about target_us on this thread: the
    fastest of several timed runs, so a busy machine disturbs it less."""
    # Runs of about 2 ms: long enough for the clock, short enough that the
    # fastest of a few is rarely cut by the scheduler on a loaded machine.
    iters = 1000
    while timed(cpu_job, iters) < 2_000_000 and iters < 1 << 30:
        iters *= 2
    best = min(timed(cpu_job, iters) for _ in range(15)) / iters
    return max(1, round(target_us * 1000 / best))


def timed(fn, *args):
    t0 = now_ns()
    fn(*args)
    return now_ns() - t0


def summary(values):
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "samples": list(values),
    }


async def run_serial(jobs, iters):
    """K jobs on the loop thread itself, one after the other."""
    t0 = now_ns()
    for _ in range(jobs):
        cpu_job(iters)
    return now_ns() - t0


async def run_executor(executor, jobs, iters):
    """K jobs through the executor, all in flight at once."""
    loop = asyncio.get_running_loop()
    t0 = now_ns()
    await asyncio.gather(
        *(loop.run_in_executor(executor, cpu_job, iters) for _ in range(jobs)))
    return now_ns() - t0


async def run_empty(executor, jobs):
    """M no-ops, one at a time: elapsed / M is one round trip."""
    loop = asyncio.get_running_loop()
    t0 = now_ns()
    for _ in range(jobs):
        await loop.run_in_executor(executor, noop)
    return now_ns() - t0


def process_context():
    # forkserver: workers do not inherit the thread pool's threads (fork
    # with threads running is deprecated), and start faster than spawn.
    methods = multiprocessing.get_all_start_methods()
    method = "forkserver" if "forkserver" in methods else "spawn"
    return multiprocessing.get_context(method)


def make_executors(workers):
    threads = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
    procs = concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=process_context())
    return {"threads": threads, "processes": procs}


async def warm_up(executors, workers, iters):
    """Starts every thread and process before anything is timed."""
    for ex in executors.values():
        await run_executor(ex, 4 * workers, max(1, iters // 10))
        await run_empty(ex, 20)


def shut_down(executors):
    for ex in executors.values():
        ex.shutdown(wait=True)


async def measure_main(args, iters):
    """Serial, threads(N), processes(N): cpu and empty jobs, interleaved."""
    ns = {"serial": [], "threads": [], "processes": []}
    empty_ns = {"threads": [], "processes": []}
    executors = make_executors(args.workers)
    try:
        await warm_up(executors, args.workers, iters)
        for rep in range(args.reps):
            progress(f"rep {rep + 1} of {args.reps}")
            ns["serial"].append(await run_serial(args.jobs, iters))
            for name, ex in executors.items():
                ns[name].append(await run_executor(ex, args.jobs, iters))
                empty_ns[name].append(await run_empty(ex, args.empty))
    finally:
        shut_down(executors)
    return ns, empty_ns


async def measure_sweep(args, iters, counts):
    """cpu jobs through both executors at each worker count."""
    out = {}
    for n in counts:
        progress(f"sweep: {n} worker{'s' if n > 1 else ''}")
        executors = make_executors(n)
        try:
            await warm_up(executors, n, iters)
            for name, ex in executors.items():
                out[(name, n)] = [
                    await run_executor(ex, args.jobs, iters)
                    for _ in range(args.reps)
                ]
        finally:
            shut_down(executors)
    return out


def sweep_counts(workers):
    counts = []
    n = 1
    while n < workers:
        counts.append(n)
        n *= 2
    return counts


def cpu_result(peer, workers, jobs, ns, serial_median):
    rates = [jobs * 1e9 / t for t in ns]
    speedup = serial_median / statistics.median(ns)
    return {
        "peer": peer,
        "label": peer if peer == "serial" else f"{peer}({workers})",
        "workers": workers,
        "kind": "cpu",
        "jobs": jobs,
        "elapsed_ns": summary(ns),
        "jobs_per_s": summary(rates),
        "speedup": speedup,
        "efficiency": speedup / workers,
    }


def empty_result(peer, workers, jobs, ns):
    return {
        "peer": peer,
        "label": f"{peer}({workers})",
        "workers": workers,
        "kind": "empty",
        "jobs": jobs,
        "elapsed_ns": summary(ns),
        "us_per_job": summary([t / 1e3 / jobs for t in ns]),
    }


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="asyncio run_in_executor on thread and process pools: "
        "scaling of pure-Python CPU jobs and the round trip of a no-op.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode",
                      const="quick", help="fewer jobs (the default)")
    mode.add_argument("--full", action="store_const", dest="mode",
                      const="full", help="more jobs and repetitions")
    mode.add_argument("--tiny", action="store_const", dest="mode",
                      const="tiny", help="a smoke test, not a measurement")
    p.add_argument("--workers", type=int, default=0,
                   help="executor workers (default: the usable CPUs)")
    p.add_argument("--jobs", type=int, default=0, help="cpu jobs per run")
    p.add_argument("--job-us", type=int, default=0,
                   help="target duration of one cpu job, in microseconds")
    p.add_argument("--empty", type=int, default=0,
                   help="no-op round trips per run")
    p.add_argument("--reps", type=int, default=0, help="repetitions")
    p.add_argument("--sweep", action="store_true",
                   help="also run the cpu jobs with 1, 2, 4, ... workers")
    args = p.parse_args(argv)
    args.mode = args.mode or "quick"
    jobs, job_us, empty, reps = MODES[args.mode]
    args.jobs = args.jobs or jobs
    args.job_us = args.job_us or job_us
    args.empty = args.empty or empty
    args.reps = args.reps or reps
    args.workers = args.workers or len(os.sched_getaffinity(0))
    for name in ("workers", "jobs", "job_us", "empty", "reps"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def gil_enabled():
    check = getattr(sys, "_is_gil_enabled", None)
    return check() if check is not None else True


def main(argv):
    args = parse_args(argv)
    progress(f"calibrating a {args.job_us} us job")
    iters = calibrate(args.job_us)
    job_ns = [timed(cpu_job, iters) for _ in range(11)]

    ns, empty_ns = asyncio.run(measure_main(args, iters))
    counts = sweep_counts(args.workers) if args.sweep else []
    sweep = asyncio.run(measure_sweep(args, iters, counts)) if counts else {}

    serial_median = statistics.median(ns["serial"])
    results = [cpu_result("serial", 1, args.jobs, ns["serial"],
                          serial_median)]
    for name in ("threads", "processes"):
        results.append(cpu_result(name, args.workers, args.jobs, ns[name],
                                  serial_median))
    for name in ("threads", "processes"):
        results.append(empty_result(name, args.workers, args.empty,
                                    empty_ns[name]))
    scaling = [cpu_result(name, n, args.jobs, sweep[(name, n)],
                          serial_median)
               for name in ("threads", "processes") for n in counts]
    scaling += [r for r in results[1:3]]

    report = {
        "benchmark": "python",
        "machine": {"cores": os.cpu_count() or 1,
                    "usable_cores": len(os.sched_getaffinity(0)),
                    "cpu_model": cpu_model()},
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "gil_enabled": gil_enabled(),
        "process_start_method": process_context().get_start_method(),
        "parameters": {"mode": args.mode, "workers": args.workers,
                       "jobs": args.jobs, "job_target_us": args.job_us,
                       "job_iters": iters, "empty_jobs": args.empty,
                       "reps": args.reps, "sweep": counts + [args.workers]
                       if args.sweep else []},
        "job_ns": summary(job_ns),
        "results": results,
        "scaling": scaling,
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
