/* SPDX-License-Identifier: MIT */
/*
 * idle: what a pool costs while it has nothing to do.
 *
 * Makes a pool of N workers and a loop attached to it, runs a burst of
 * empty jobs through it so that every worker has started and worked,
 * lets it settle for a first second, then leaves the loop waiting on a
 * timer for S more seconds and reports the process's own CPU time over
 * those S seconds (getrusage: every thread, user and system) as a
 * percentage of one core.  An idle pool should cost close to 0 %: workers
 * asleep on a futex, no timer left running on the loop.
 *
 * Run:   build/bench/idle [--workers N] [--seconds S] [--quick | --tiny]
 *                         [--json FILE]
 * --seconds defaults to 5 (2 with --quick, 1 with --tiny); the JSON report
 * (cli.h) goes to stdout or FILE.  bench/tandem-bench --scale runs it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#include "tandem.h"

#include "cli.h"
#include "stats.h"

#define BURST_JOBS 10000
#define SETTLE_MS 1000

typedef struct idle_s {
  bench_cli_t cli;
  unsigned seconds;
  unsigned queued;
  unsigned done;
} idle_t;

static idle_t idle;

static void empty_cb(tandem_work_t *req) {
  (void)req;
}

/* Re-queues each finished job until BURST_JOBS have run. */
static void after_cb(tandem_work_t *req, int status) {
  tandem_t *t = req->data;

  idle.done++;
  if (status == 0 && idle.queued < BURST_JOBS) {
    idle.queued++;
    if (tandem_queue_work(t, req, empty_cb, after_cb) != 0)
      idle.queued--;
  }
}

static void timer_cb(uv_timer_t *timer) {
  (void)timer;
}

/* CPU time of the whole process (every thread), in ns. */
static uint64_t cpu_ns(void) {
  struct rusage ru;

  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return 0;
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000u;
}

/* Runs the loop for ms milliseconds with nothing but a timer to wait on. */
static int wait_ms(uv_loop_t *loop, uv_timer_t *timer, uint64_t ms) {
  int err = uv_timer_start(timer, timer_cb, ms, 0);

  if (err == 0)
    uv_run(loop, UV_RUN_DEFAULT);
  return err;
}

/* The burst, the settling second and the measured seconds; sets *cpu and
 * *wall (ns) of the last. */
static int measure(uv_loop_t *loop, tandem_t *t, uint64_t *cpu,
                   uint64_t *wall) {
  tandem_work_t reqs[64];
  uv_timer_t timer;
  uint64_t c0, t0;
  unsigned i;
  int err;

  memset(reqs, 0, sizeof(reqs));
  for (i = 0; i < 64; i++) {
    reqs[i].data = t;
    idle.queued++;
    if ((err = tandem_queue_work(t, &reqs[i], empty_cb, after_cb)) != 0)
      return err;
  }
  uv_run(loop, UV_RUN_DEFAULT);
  if (idle.done != idle.queued)
    return UV_EPROTO;
  if ((err = uv_timer_init(loop, &timer)) != 0)
    return err;
  err = wait_ms(loop, &timer, SETTLE_MS);
  c0 = cpu_ns();
  t0 = stats_now_ns();
  if (err == 0)
    err = wait_ms(loop, &timer, (uint64_t)idle.seconds * 1000);
  *cpu = cpu_ns() - c0;
  *wall = stats_now_ns() - t0;
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  return err;
}

static int own_option(void *ctx, const char *a, const char *val) {
  uint64_t v;

  (void)ctx;
  if (strcmp(a, "--seconds") != 0)
    return 0;
  if (bench_cli_count(val, 1, 3600, &v) != 0)
    return -1;
  idle.seconds = (unsigned)v;
  return 2;
}

static const char usage[] =
    "usage: idle [--workers N] [--seconds S] [--quick | --tiny] [--json FILE]\n"
    "  --workers N   workers of the pool (default: the online CPUs)\n"
    "  --seconds S   how long to measure, after a first second (default 5,\n"
    "                --quick 2, --tiny 1)\n"
    "  --json FILE   write the JSON report to FILE (default: stdout)\n";

int main(int argc, char **argv) {
  tandem_options_t opts;
  tandem_pool_t *pool;
  uint64_t cpu = 0, wall = 1;
  unsigned workers;
  uv_loop_t loop;
  tandem_t t;
  FILE *f;
  int err;

  idle.cli.name = "idle";
  idle.cli.usage = usage;
  if (bench_cli_parse(&idle.cli, argc, argv, own_option, NULL) != 0)
    return 2;
  if (idle.seconds == 0)
    idle.seconds = idle.cli.tiny ? 1 : idle.cli.quick ? 2 : 5;
  memset(&opts, 0, sizeof(opts));
  opts.workers = bench_cli_workers(&idle.cli);
  fprintf(stderr, "idle: %u workers, 1 s to settle, then %u s idle\n",
          opts.workers, idle.seconds);
  if ((err = tandem_pool_new(&pool, &opts)) != 0)
    return bench_cli_error(&idle.cli, "tandem_pool_new", err), 1;
  workers = tandem_pool_workers(pool);
  err = uv_loop_init(&loop);
  if (err == 0 && (err = tandem_init(&loop, &t, pool)) == 0) {
    err = measure(&loop, &t, &cpu, &wall);
    tandem_close(&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  if (err != 0)
    bench_cli_error(&idle.cli, "measuring", err);
  if (uv_loop_close(&loop) != 0 || tandem_pool_free(pool) != 0)
    err = err != 0 ? err : UV_EBUSY;
  if (err != 0)
    return 1;
  f = bench_report_open(&idle.cli, TANDEM_VERSION_STRING, workers, 1);
  if (f == NULL)
    return 1;
  fprintf(f, ", \"seconds\": %u, \"settle_ms\": %d, \"burst_jobs\": %d},\n",
          idle.seconds, SETTLE_MS, BURST_JOBS);
  fprintf(f,
          " \"cpu_ns\": %" PRIu64 ", \"wall_ns\": %" PRIu64
          ", \"cpu_percent_of_one_core\": %.4f\n",
          cpu, wall, 100.0 * (double)cpu / (double)wall);
  return bench_report_close(&idle.cli, f) == 0 ? 0 : 1;
}
