#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/server/run.sh: the HTTP server benchmark, in one command.
#
#   bench/server/run.sh [--quick] [--json FILE] [other options of load]
#
# Runs build/bench/server/load (it builds nothing: build first with
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2
# or point TANDEM_BUILD_DIR at another build directory).  load starts every
# server peer on a loopback port (examples/compute_server --mode hybrid and
# --mode inline, bench/server/peer_threads, bench/server/peer_uvwork, and
# three scheduling variants of hybrid; with --external also the Go, Node
# and Tokio servers of bench/peers/, built by `cmake --build build --target
# bench_server_peers`), measures /ping latency idle and under a stream of
# /fib/N, /fib and /ping throughput, CPU per /fib and memory, runs wrk with
# mixed.lua if wrk is installed (else it says it skips it), stops every
# server with SIGTERM, checks it exits 0 and writes a JSON report (stdout,
# or --json FILE); `bench/tandem-bench --only server` runs this and prints
# it as tables, the targets among them.  --quick takes under a minute on
# 2 cores, --tiny a few seconds (a smoke test, no wrk), the default
# run about three times that.  See load.c's header for the method and
# `load --help` for the options (--workers, --fib, --peers, ...).
#
# Exit status: 0 when every server ran, answered correctly and exited 0
# after SIGTERM (missed targets are reported, not failures; an external
# server that is not built is skipped); 1 otherwise; 2 for a usage error or
# a missing build.
#
# JSON: the header every benchmark writes (bench/cli.h: benchmark,
# machine {cores, usable_cores, cpu_model}, libuv_version, parameters),
# then flat keys; numbers are null when not measured.
#   schema                   "tandem-bench-server/1"
#   kernel                   string
#   loadavg_start, loadavg_end   1-minute load average
#   other_cpu_cores          CPU the machine spent outside this benchmark
#                            during the run, in cores (> 0.25: noisy)
#   quick                    1 with --quick
#   rounds                   each measurement alternates over the peers in
#                            this many rounds (samples pooled)
#   workers                  pool size of hybrid and its variants, and
#                            UV_THREADPOOL_SIZE of uvwork
#   fib_n, fib_local_ms      N of /fib/N, and fib(N) on one core here, ms
#   fib_conns                K: connections sending /fib/N back to back
#   ping_conns               C: connections of the /ping throughput phase
#   ping_interval_ms         the paced /ping connection sends one per this
#   client_nice              the driver's nice value (servers run at 0)
#   loop_slice_ns            the slice hybrid_slice gives its loop thread
#   wrk_ran                  1 if wrk ran; wrk_conns, wrk_fib_pct (% of
#                            requests that are /fib/N), wrk_secs,
#                            wrk_ping_secs: its settings
#   For each peer P that was selected, of hybrid, inline, threads, uvwork,
#   go, node, tokio (--external: Go net/http, Node http + piscina, Rust
#   Tokio + hyper), hybrid_nice0 (--worker-nice 0), hybrid_slice (loop
#   thread given a short EEVDF slice), hybrid_sched_idle (workers in
#   SCHED_IDLE), hybrid_hogs (a control: no /fib load, W SCHED_IDLE
#   spinners keep the CPUs busy; its loaded_* figures are the machine's):
#   P.ran                    1 if the server started
#   P.skipped                1: an external server that is not built (its
#                            note says how to build it); not a failure
#   P.note                   what went wrong, or ""
#   P.exit_code              0 = exited cleanly after SIGTERM; -1 = killed
#   P.errors                 wrong, failed or missing answers seen
#   P.worker_nice            nice of the server's other threads
#   P.fib_idle_ms            one /fib/N on the idle server (median)
#   P.idle_ping_n, P.idle_ping_{p50,p99,p999,max}_us
#                            paced /ping latency, idle server (not for the
#                            three variants)
#   P.loaded_ping_n, P.loaded_ping_{p50,p99,p999,max}_us
#                            the same while K connections send /fib/N
#   P.loaded_fib_rps         /fib answers per second in that phase
#   P.cpu_per_fib_ms         the server process's CPU time (every thread,
#                            /proc/PID/stat) in the loaded windows per /fib
#                            answered in them, ms (the paced pings included)
#   P.cpu_loaded             cores the whole server process used then
#   P.rss_mib, P.rss_peak_mib  VmRSS after the loaded rounds, and VmHWM
#                            (the peak) as the server stops, MiB
#   P.loaded_fib_n, P.loaded_fib_{mean,p50,p99,p999}_us
#                            the client's latency of every /fib answer of
#                            the loaded rounds
#   P.wait_n, P.wait_{mean,p50,p90,p99,p999,max}_ns, P.run_... (the same)
#                            the server's own /fib jobs' wait (queued ->
#                            started) and run, from its GET /stats
#                            "metrics" after the loaded rounds (cumulative:
#                            the fib-idle jobs are in them); only for a
#                            server that has them: hybrid and its variants
#                            (tandem_pool_metrics), uvwork (timed around
#                            uv_queue_work in the peer)
#   P.ping_rps               /ping answers per second, C connections back
#                            to back, no heavy work (median of the rounds)
#   P.ping_client_cpu        cores the driver used meanwhile (near 1:
#                            the figure may be client-bound)
#   P.loop_wait_idle_us, P.loop_wait_loaded_us
#                            the server's main (loop) thread's mean
#                            run-queue wait per time it got a CPU
#                            (/proc/PID/task/PID/schedstat), idle / loaded
#   P.loop_cpu_loaded, P.workers_cpu_loaded
#                            cores used by the main thread / the others
#   P.loop_sleeps_per_s_loaded, P.loop_preempted_per_s_loaded
#                            the main thread's voluntary / involuntary
#                            context switches per second under load
#   P.client_wait_loaded_us  the driver's own run-queue wait per run
#   P.wrk_mixed_{rps,p50_us,p90_us,p99_us,p999_us,mean_us,max_us,errors}
#                            wrk -t1 -c16 with wrk_fib_pct % /fib/N; the
#                            latency is over all requests
#   P.wrk_ping_{rps,p50_us,p99_us,errors}   wrk with /ping only
#   target.T, target.T.bar, target.T.met (true, false, or null if unknown)
#     for T in
#     hybrid_loaded_p99_vs_idle    hybrid loaded p99 / idle p99, <= 2
#     inline_vs_hybrid_loaded_p99  inline loaded p99 / hybrid's, >= 20
#     hybrid_vs_inline_fib_rps     hybrid /fib req/s / inline's, >= 1.8
#     hybrid_vs_inline_ping_rps    hybrid /ping req/s / inline's, >= 0.9
#     hybrid_loop_wait_loaded_us   hybrid's loop thread wait per run under
#                                  load, <= max(50, 2 x idle) us
#   samples.P.loaded_ping_us  every loaded /ping latency of P, in us, in
#                            order within each round (for a CDF plot)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${TANDEM_BUILD_DIR:-$root/build}
load=$build/bench/server/load

if [ ! -x "$load" ]; then
  echo "run.sh: no $load: build it first:" >&2
  echo "  cmake -S $root -B $build -DCMAKE_BUILD_TYPE=Release &&" \
       "cmake --build $build -j2" >&2
  exit 2
fi
exec "$load" "$@"
