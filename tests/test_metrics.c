/* SPDX-License-Identifier: MIT */
/*
 * Time recording (issue #14), through the public API: the histogram's
 * buckets and quantiles on known samples; a pool's wait and run histograms
 * count every request that ran, exactly, merged over its workers, its HIGH
 * lane and its blocking side, and no fork-join task or job that never
 * started; a worker's busy and parked time, the current job and sleep
 * included; a loop's lag and poll time; and nothing at all when recording
 * is off (the option or TANDEM_METRICS).
 */
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"
#include "pool.h" /* the readings a request carries (internal) */
#include "hold.h"
#include "suite_run.h"
#include "tandem.h"

#define MS 1000000u /* nanoseconds */
#define US 1000u

/* ------------------------------------------------------------ histogram */

START_TEST(bucket_layout) {
  unsigned i;
  uint64_t lo;
  uint64_t hi;

  /* 0..7 ns: one bucket each; then 8 per power of two. */
  for (i = 0; i < 8; i++) {
    ck_assert_uint_eq(tandem_histogram_bucket(i), i);
    ck_assert_uint_eq(tandem_histogram_bucket_lower(i), i);
  }
  ck_assert_uint_eq(tandem_histogram_bucket(8), 8);
  ck_assert_uint_eq(tandem_histogram_bucket(15), 15);
  ck_assert_uint_eq(tandem_histogram_bucket(16), 16);
  ck_assert_uint_eq(tandem_histogram_bucket(17), 16); /* [16, 18) */
  ck_assert_uint_eq(tandem_histogram_bucket(18), 17);
  ck_assert_uint_eq(tandem_histogram_bucket_lower(24), 32);
  ck_assert_uint_eq(tandem_histogram_bucket_upper(24), 36);
  /* 1000 ns: in [960, 1024), 64 wide; 1 s: in [939524096, 1006632960). */
  i = tandem_histogram_bucket(1000);
  ck_assert_uint_eq(tandem_histogram_bucket_lower(i), 960);
  ck_assert_uint_eq(tandem_histogram_bucket_upper(i), 1024);
  i = tandem_histogram_bucket(1000000000);
  ck_assert_uint_eq(tandem_histogram_bucket_lower(i), 939524096u);
  ck_assert_uint_eq(tandem_histogram_bucket_upper(i), 1006632960u);
  /* Every bucket: contiguous, each value of its range lands in it, and no
   * wider than 1/8 of its lower bound (above the linear part). */
  for (i = 0; i + 1 < TANDEM_HISTOGRAM_BUCKETS; i++) {
    lo = tandem_histogram_bucket_lower(i);
    hi = tandem_histogram_bucket_upper(i);
    ck_assert_uint_lt(lo, hi);
    ck_assert_uint_eq(hi, tandem_histogram_bucket_lower(i + 1));
    ck_assert_uint_eq(tandem_histogram_bucket(lo), i);
    ck_assert_uint_eq(tandem_histogram_bucket(hi - 1), i);
    if (i >= 8)
      ck_assert_uint_le((hi - lo) * 8, lo);
  }
  /* 100 s is inside; anything larger lands in the last bucket. */
  ck_assert_uint_lt(tandem_histogram_bucket(100000000000ull),
                    TANDEM_HISTOGRAM_BUCKETS - 1);
  ck_assert_uint_eq(tandem_histogram_bucket(UINT64_MAX),
                    TANDEM_HISTOGRAM_BUCKETS - 1);
  ck_assert_uint_eq(tandem_histogram_bucket_upper(TANDEM_HISTOGRAM_BUCKETS - 1),
                    UINT64_MAX);
  ck_assert_uint_eq(tandem_histogram_bucket_lower(TANDEM_HISTOGRAM_BUCKETS),
                    UINT64_MAX);
}
END_TEST

START_TEST(record_and_quantiles) {
  static tandem_histogram_t h;
  uint64_t q;

  memset(&h, 0, sizeof(h));
  ck_assert_uint_eq(tandem_histogram_quantile(&h, 0.5), 0);
  ck_assert_uint_eq(tandem_histogram_quantile(NULL, 0.5), 0);
  ck_assert_uint_eq(tandem_histogram_mean(&h), 0);
  /* 90 values of 1 us, 9 of 1 ms, 1 of 1 s. */
  for (int i = 0; i < 90; i++)
    tandem_histogram_record(&h, 1000);
  for (int i = 0; i < 9; i++)
    tandem_histogram_record(&h, 1000000);
  tandem_histogram_record(&h, 1000000000);
  tandem_histogram_record(NULL, 5); /* nothing */
  ck_assert_uint_eq(h.count, 100);
  ck_assert_uint_eq(h.sum_ns, 90 * 1000ull + 9 * 1000000ull + 1000000000ull);
  ck_assert_uint_eq(h.max_ns, 1000000000);
  ck_assert_uint_eq(h.bucket[tandem_histogram_bucket(1000)], 90);
  ck_assert_uint_eq(h.bucket[tandem_histogram_bucket(1000000)], 9);
  ck_assert_uint_eq(tandem_histogram_mean(&h), h.sum_ns / 100);
  /* Within one bucket of the exact value, never below it. */
  q = tandem_histogram_quantile(&h, 0.5);
  ck_assert_uint_ge(q, 1000);
  ck_assert_uint_lt(q, 1000 + 1000 / 8);
  q = tandem_histogram_quantile(&h, 0.9); /* the 90th value: 1 us */
  ck_assert_uint_ge(q, 1000);
  ck_assert_uint_lt(q, 1125);
  q = tandem_histogram_quantile(&h, 0.95);
  ck_assert_uint_ge(q, 1000000);
  ck_assert_uint_lt(q, 1125000);
  q = tandem_histogram_quantile(&h, 0.999); /* the 100th: the max, exact */
  ck_assert_uint_eq(q, 1000000000);
  ck_assert_uint_eq(tandem_histogram_quantile(&h, 1.0), 1000000000);
  ck_assert_uint_ge(tandem_histogram_quantile(&h, 0.0), 1000);
  ck_assert_uint_ge(tandem_histogram_quantile(&h, -3.0), 1000); /* clamped */
  ck_assert_uint_eq(tandem_histogram_quantile(&h, 7.0), 1000000000);
}
END_TEST

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a;
  uint64_t y = *(const uint64_t *)b;

  return x < y ? -1 : x > y;
}

/* Random log-spread samples: every quantile within one bucket's width of
 * the exact order statistic; two halves merged equal the whole. */
START_TEST(quantiles_random_and_merge) {
  static tandem_histogram_t whole, a, b;
  static uint64_t v[20000];
  static const double qs[] = {0.01, 0.1, 0.5, 0.9, 0.99, 0.999};
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  uint64_t exact;
  uint64_t got;
  size_t n = sizeof(v) / sizeof(v[0]);
  size_t i;

  memset(&whole, 0, sizeof(whole));
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  for (i = 0; i < n; i++) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    v[i] = (seed >> 20) >> (seed % 40); /* 0 .. 2^44, spread over scales */
    tandem_histogram_record(&whole, v[i]);
    tandem_histogram_record(i % 2 ? &a : &b, v[i]);
  }
  tandem_histogram_merge(&a, &b);
  tandem_histogram_merge(&a, NULL);
  ck_assert_mem_eq(&a, &whole, sizeof(a));
  qsort(v, n, sizeof(v[0]), cmp_u64);
  for (i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
    size_t rank = (size_t)(qs[i] * (double)n + 0.999999); /* ceil */
    unsigned bk;

    exact = v[rank - 1];
    got = tandem_histogram_quantile(&whole, qs[i]);
    bk = tandem_histogram_bucket(exact);
    ck_assert_uint_ge(got, exact < whole.max_ns ? exact : whole.max_ns);
    if (bk + 1 < TANDEM_HISTOGRAM_BUCKETS)
      ck_assert_uint_lt(got, tandem_histogram_bucket_upper(bk));
  }
}
END_TEST

/* ------------------------------------------------ readings (internal) */

/* A request carries its queued reading in 56 bits (pool.h): a wait must be
 * measured modulo 2^56 -- a TSC passes 2^56 after about 300 days of
 * uptime at 2.8 GHz -- and a reading taken on another core a few ticks
 * "before" the queued one is a wait of 0, not of 2^56 ticks.  The clock is
 * left uncalibrated here: a tick is a nanosecond. */
START_TEST(readings_modulo_2_56) {
  static tdm_rec_t rec;
  static tandem_work_t req;
  const uint64_t t = (UINT64_C(1) << 56) + 5000; /* past the wrap */
  unsigned word;

  ck_assert_uint_eq(tdm_clock_ns(1000), 1000);
  memset(&rec, 0, sizeof(rec));
  word = tdm_req_stamp(&req, 0, t);
  req.opts_ = word;
  tdm_rec_job(&rec, tdm_req_queued(&req), t + 1000, t + 3000);
  ck_assert_uint_eq(rec.wait.bucket[tandem_histogram_bucket(1000)], 1);
  ck_assert_uint_eq(rec.wait.sum_ns, 1000);
  ck_assert_uint_eq(rec.run.sum_ns, 2000);
  /* Started "before" it was queued (another core's counter): wait 0. */
  tdm_rec_job(&rec, tdm_req_queued(&req), t - 10, t + 100);
  ck_assert_uint_eq(rec.wait.sum_ns, 1000);
  ck_assert_uint_eq(rec.wait.bucket[0], 1);
  /* A lag whose callback reading is a few ticks early is 0 too. */
  ck_assert_uint_eq(tdm_clock_since56(t, t - 10), 0);
  ck_assert_uint_eq(tdm_clock_since56(t, t + 700), 700);
}
END_TEST

/* ------------------------------------------------------------ the pool */

static fixture_t fx;
static atomic_int callbacks;
static atomic_int ok_status;

static void spin_until(uint64_t t) {
  while (uv_hrtime() < t) {
  }
}

static void work_200us(tandem_work_t *req) {
  (void)req;
  spin_until(uv_hrtime() + 200 * US);
}

static void work_empty(tandem_work_t *req) {
  (void)req;
}

static void after_count(tandem_work_t *req, int status) {
  (void)req;
  atomic_fetch_add(&callbacks, 1);
  if (status == 0)
    atomic_fetch_add(&ok_status, 1);
}

static void run_all(int n) {
  while (atomic_load(&callbacks) < n)
    uv_run(&fx.loop, UV_RUN_ONCE);
}

static void open_pool(unsigned workers, int metrics) {
  tandem_options_t o = fixture_options(workers);

  o.metrics = metrics;
  fixture_open(&fx, &o);
  atomic_store(&callbacks, 0);
  atomic_store(&ok_status, 0);
}

/* Every request that ran is counted once in wait and in run, split over
 * the workers exactly; the run times are the jobs' 200 us; the lag is
 * counted once per after callback. */
START_TEST(counts_exact_over_workers) {
  enum { N = 600 };
  static tandem_work_t reqs[N];
  tandem_metrics_t m;
  tandem_loop_metrics_t lm;
  uint64_t jobs = 0;
  uint64_t q;
  int i;

  open_pool(3, 1);
  for (i = 0; i < N; i++)
    ck_assert_int_eq(tandem_queue_work(&fx.tandem, &reqs[i],
                                       i % 3 ? work_empty : work_200us,
                                       after_count),
                     0);
  run_all(N);
  ck_assert_int_eq(atomic_load(&ok_status), N);
  ck_assert_int_eq(tandem_pool_metrics(fx.pool, &m), 0);
  ck_assert_int_eq(m.enabled, 1);
  ck_assert_uint_eq(m.workers, 3);
  ck_assert_uint_eq(m.wait.count, N);
  ck_assert_uint_eq(m.run.count, N);
  for (i = 0; i < 3; i++)
    jobs += m.worker[i].jobs;
  ck_assert_uint_eq(jobs, N);
  ck_assert_uint_eq(m.total.jobs, N);
  /* A third of the jobs ran 200 us: p99 at least that, within a bucket
   * of reason (a preempted job runs longer: bounded loosely). */
  q = tandem_histogram_quantile(&m.run, 0.99);
  ck_assert_uint_ge(q, 200 * US);
  ck_assert_uint_ge(m.run.sum_ns, (uint64_t)(N / 3) * 200 * US);
  ck_assert_uint_ge(m.total.busy_ns, (uint64_t)(N / 3) * 200 * US);
  ck_assert_uint_le(m.run.max_ns, m.uptime_ns);
  ck_assert_int_eq(tandem_loop_metrics(&fx.tandem, &lm), 0);
  ck_assert_int_eq(lm.enabled, 1);
  ck_assert_uint_eq(lm.lag.count, N);
  ck_assert_uint_eq(lm.callbacks, N);
  ck_assert_uint_eq(lm.busy_ns + lm.idle_ns, lm.uptime_ns);
  fixture_close(&fx);
}
END_TEST

/* One job in flight, queued again from its after callback: each waits
 * from its queueing to its start, never 0 -- a worker that went straight
 * on from the job before must not take its end for the next one's start
 * when the next one was queued after that end. */
static int pingpong_left;

static void after_requeue(tandem_work_t *req, int status) {
  after_count(req, status);
  if (--pingpong_left > 0)
    ck_assert_int_eq(tandem_queue_work(&fx.tandem, req, work_empty,
                                       after_requeue), 0);
}

START_TEST(round_trip_waits_not_zero) {
  enum { N = 3000 };
  static tandem_work_t req;
  tandem_metrics_t m;

  open_pool(2, 1);
  pingpong_left = N;
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &req, work_empty,
                                     after_requeue), 0);
  run_all(N);
  ck_assert_int_eq(tandem_pool_metrics(fx.pool, &m), 0);
  ck_assert_uint_eq(m.wait.count, N);
  ck_assert_msg(m.wait.bucket[0] <= N / 100,
                "%llu of %d waits recorded as 0 ns",
                (unsigned long long)m.wait.bucket[0], N);
  fixture_close(&fx);
}
END_TEST

/* Jobs queued from another thread, and jobs cancelled before they start:
 * only the ones that ran are counted. */
static hold_t gate;

static void work_hold(tandem_work_t *req) {
  (void)req;
  hold_wait(&gate);
}

START_TEST(cancelled_not_counted) {
  enum { N = 20 };
  static tandem_work_t blocker, reqs[N];
  tandem_metrics_t m;
  int cancelled = 0;
  int i;

  open_pool(1, 1);
  hold_init(&gate);
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &blocker, work_hold,
                                     after_count), 0);
  ck_assert_int_eq(wait_atomic_ge(&gate.entered, 1, 5000), 1);
  for (i = 0; i < N; i++)
    ck_assert_int_eq(tandem_queue_work(&fx.tandem, &reqs[i], work_empty,
                                       after_count), 0);
  for (i = 0; i < N; i += 2)
    cancelled += tandem_cancel(&reqs[i]) == 0;
  ck_assert_int_gt(cancelled, 0);
  hold_open(&gate);
  run_all(N + 1);
  ck_assert_int_eq(tandem_pool_metrics(fx.pool, &m), 0);
  ck_assert_uint_eq(m.wait.count, (uint64_t)(N + 1 - cancelled));
  ck_assert_uint_eq(m.run.count, (uint64_t)(N + 1 - cancelled));
  fixture_close(&fx);
}
END_TEST

/* While a job runs, its worker is busy now, and its busy time grows
 * before the job ends. */
START_TEST(busy_now) {
  static tandem_work_t req;
  tandem_metrics_t m1, m2;
  tandem_stats_t st;

  open_pool(2, 1);
  hold_init(&gate);
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &req, work_hold, after_count),
                   0);
  ck_assert_int_eq(wait_atomic_ge(&gate.entered, 1, 5000), 1);
  ck_assert_int_eq(tandem_pool_metrics(fx.pool, &m1), 0);
  ck_assert_uint_eq(m1.total.busy, 1);
  ck_assert_int_eq(tandem_pool_stats(fx.pool, &st), 0);
  ck_assert_uint_eq(st.workers_busy, 1);
  spin_until(uv_hrtime() + 20 * MS);
  ck_assert_int_eq(tandem_pool_metrics(fx.pool, &m2), 0);
  ck_assert_uint_ge(m2.total.busy_ns, m1.total.busy_ns + 15 * MS);
  hold_open(&gate);
  run_all(1);
  fixture_close(&fx);
}
END_TEST

/* An idle pool's workers are parked, and their parked time grows; an idle
 * loop sleeps in its poll. */
static void on_timer(uv_timer_t *t) {
  (void)t;
}

START_TEST(parked_and_loop_idle) {
  tandem_metrics_t m1, m2;
  tandem_loop_metrics_t lm;
  uv_timer_t timer;
  uint64_t t0;
  uint64_t slept;

  open_pool(2, 1);
  /* Let the workers finish their first search and park. */
  spin_until(uv_hrtime() + 20 * MS);
  ck_assert_int_eq(tandem_pool_metrics(fx.pool, &m1), 0);
  t0 = uv_hrtime();
  uv_update_time(&fx.loop); /* the timer counts from now, not from before */
  uv_timer_init(&fx.loop, &timer);
  uv_timer_start(&timer, on_timer, 100, 0);
  uv_run(&fx.loop, UV_RUN_DEFAULT); /* sleeps ~100 ms in epoll */
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  slept = uv_hrtime() - t0;
  /* libuv's clock counts whole milliseconds: the timer may fire up to a
   * millisecond early. */
  ck_assert_uint_ge(slept, 90 * MS);
  ck_assert_int_eq(tandem_pool_metrics(fx.pool, &m2), 0);
  ck_assert_uint_eq(m2.total.busy, 0);
  /* Both workers parked nearly all along (a wake-up costs a little). */
  ck_assert_uint_ge(m2.total.parked_ns, m1.total.parked_ns + 2 * slept * 6 / 10);
  ck_assert_int_eq(tandem_loop_metrics(&fx.tandem, &lm), 0);
  ck_assert_uint_ge(lm.idle_ns, slept * 6 / 10);
  fixture_close(&fx);
}
END_TEST

/* An I/O callback that computes is busy time, not idle: libuv runs I/O
 * callbacks from inside its poll phase, so a clock around the whole poll
 * (prepare to check handle) would have counted it idle. */
static void on_readable(uv_poll_t *h, int status, int events) {
  (void)status;
  (void)events;
  spin_until(uv_hrtime() + 60 * MS);
  uv_poll_stop(h);
}

START_TEST(io_callback_is_busy) {
  tandem_loop_metrics_t a, b;
  uv_poll_t poll;
  int fds[2];

  open_pool(1, 1);
  ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  ck_assert_int_eq(uv_poll_init(&fx.loop, &poll, fds[0]), 0);
  ck_assert_int_eq(uv_poll_start(&poll, UV_READABLE, on_readable), 0);
  ck_assert_int_eq(write(fds[1], "x", 1), 1);
  ck_assert_int_eq(tandem_loop_metrics(&fx.tandem, &a), 0);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  ck_assert_int_eq(tandem_loop_metrics(&fx.tandem, &b), 0);
  ck_assert_uint_ge(b.busy_ns - a.busy_ns, 50 * MS);
  uv_close((uv_handle_t *)&poll, NULL);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  close(fds[0]);
  close(fds[1]);
  fixture_close(&fx);
}
END_TEST

/* An after callback that runs late: the lag of the job behind it shows
 * it.  Both jobs are done before the loop runs, so the second callback
 * starts at least 30 ms after its job was done. */
static atomic_int worked;

static void work_mark(tandem_work_t *req) {
  (void)req;
  atomic_fetch_add(&worked, 1);
}

static void after_slow(tandem_work_t *req, int status) {
  after_count(req, status);
  spin_until(uv_hrtime() + 30 * MS);
}

START_TEST(lag_seen) {
  static tandem_work_t a, b;
  tandem_loop_metrics_t lm;

  open_pool(2, 1);
  atomic_store(&worked, 0);
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &a, work_mark, after_slow),
                   0);
  ck_assert_int_eq(tandem_queue_work(&fx.tandem, &b, work_mark, after_slow),
                   0);
  ck_assert_int_eq(wait_atomic_ge(&worked, 2, 5000), 1);
  spin_until(uv_hrtime() + MS); /* and past their completions */
  run_all(2);
  ck_assert_int_eq(tandem_loop_metrics(&fx.tandem, &lm), 0);
  ck_assert_uint_eq(lm.lag.count, 2);
  ck_assert_uint_ge(lm.lag.max_ns, 30 * MS);
  fixture_close(&fx);
}
END_TEST

/* Fork-join tasks are not requests: a job that runs a parallel_for is
 * counted once. */
static void sum_range(size_t lo, size_t hi, void *ctx) {
  atomic_fetch_add((atomic_size_t *)ctx, hi - lo);
}

static atomic_size_t summed;

static void work_pfor(tandem_work_t *req) {
  (void)req;
  tandem_parallel_for(NULL, 0, 100000, 100, sum_range, &summed);
}

START_TEST(tasks_not_counted) {
  static tandem_work_t reqs[4];
  tandem_metrics_t m;
  tandem_stats_t st;
  int i;

  open_pool(2, 1);
  atomic_store(&summed, 0);
  for (i = 0; i < 4; i++)
    ck_assert_int_eq(tandem_queue_work(&fx.tandem, &reqs[i], work_pfor,
                                       after_count), 0);
  run_all(4);
  ck_assert_uint_eq(atomic_load(&summed), 400000);
  ck_assert_int_eq(tandem_pool_metrics(fx.pool, &m), 0);
  ck_assert_int_eq(tandem_pool_stats(fx.pool, &st), 0);
  ck_assert_uint_eq(m.wait.count, 4);
  ck_assert_uint_eq(m.run.count, 4);
  ck_assert_uint_eq(m.total.jobs, 4);
  /* (tandem_stats_t's jobs count the tasks other workers took too, but
   * whether they took any is up to the scheduler.) */
  ck_assert_uint_ge(st.total.jobs, 4);
  fixture_close(&fx);
}
END_TEST

/* HIGH lane and blocking jobs are counted with the rest. */
START_TEST(blocking_and_high_counted) {
  enum { N = 30 };
  static tandem_work_t reqs[N];
  tandem_job_opts_t o;
  tandem_metrics_t m;
  int i;

  open_pool(2, 1);
  for (i = 0; i < N; i++) {
    memset(&o, 0, sizeof(o));
    if (i % 3 == 0)
      o.flags = TANDEM_JOB_BLOCKING;
    else if (i % 3 == 1)
      o.priority = TANDEM_PRIO_HIGH;
    else
      o.priority = TANDEM_PRIO_LOW;
    ck_assert_int_eq(tandem_queue_work_ex(&fx.tandem, &reqs[i], work_200us,
                                          after_count, &o), 0);
  }
  run_all(N);
  ck_assert_int_eq(tandem_pool_metrics(fx.pool, &m), 0);
  ck_assert_uint_eq(m.wait.count, N);
  ck_assert_uint_eq(m.run.count, N);
  ck_assert_uint_ge(m.run.sum_ns, (uint64_t)N * 200 * US);
  fixture_close(&fx);
}
END_TEST

/* ------------------------------------------------------------ off */

static void check_nothing_recorded(void) {
  enum { N = 200 };
  static tandem_work_t reqs[N];
  tandem_metrics_t m;
  tandem_loop_metrics_t lm;
  tandem_stats_t st;
  int i;

  for (i = 0; i < N; i++)
    ck_assert_int_eq(tandem_queue_work(&fx.tandem, &reqs[i], work_empty,
                                       after_count), 0);
  run_all(N);
  ck_assert_int_eq(tandem_pool_metrics(fx.pool, &m), 0);
  ck_assert_int_eq(m.enabled, 0);
  ck_assert_uint_eq(m.workers, 2);
  ck_assert_uint_eq(m.wait.count + m.run.count + m.total.jobs, 0);
  ck_assert_uint_eq(m.total.busy_ns + m.total.parked_ns + m.uptime_ns, 0);
  ck_assert_int_eq(tandem_loop_metrics(&fx.tandem, &lm), 0);
  ck_assert_int_eq(lm.enabled, 0);
  ck_assert_uint_eq(lm.lag.count + lm.idle_ns + lm.uptime_ns, 0);
  ck_assert_int_eq(tandem_pool_stats(fx.pool, &st), 0);
  ck_assert_uint_eq(st.total.jobs, N); /* the counters still count */
  ck_assert_uint_eq(st.workers_busy, 0);
}

START_TEST(off_by_option) {
  open_pool(2, -1);
  check_nothing_recorded();
  fixture_close(&fx);
}
END_TEST

START_TEST(off_by_environment) {
  setenv("TANDEM_METRICS", "off", 1);
  open_pool(2, 0);
  unsetenv("TANDEM_METRICS");
  check_nothing_recorded();
  fixture_close(&fx);
  /* The option wins over the environment. */
  setenv("TANDEM_METRICS", "0", 1);
  open_pool(2, 1);
  unsetenv("TANDEM_METRICS");
  {
    tandem_metrics_t m;

    ck_assert_int_eq(tandem_pool_metrics(fx.pool, &m), 0);
    ck_assert_int_eq(m.enabled, 1);
  }
  fixture_close(&fx);
}
END_TEST

/* ------------------------------------------------------------ errors */

static int closed;
static void on_closed(tandem_t *t) {
  (void)t;
  closed = 1;
}

START_TEST(bad_arguments) {
  static tandem_t zeroed;
  tandem_metrics_t m;
  tandem_loop_metrics_t lm;

  ck_assert_int_eq(tandem_pool_metrics(NULL, &m), UV_EINVAL);
  ck_assert_int_eq(tandem_loop_metrics(NULL, &lm), UV_EINVAL);
  ck_assert_int_eq(tandem_loop_metrics(&zeroed, &lm), UV_EINVAL);
  open_pool(1, 1);
  ck_assert_int_eq(tandem_pool_metrics(fx.pool, NULL), UV_EINVAL);
  ck_assert_int_eq(tandem_loop_metrics(&fx.tandem, NULL), UV_EINVAL);
  /* Once its close has finished, the handle has no metrics. */
  closed = 0;
  ck_assert_int_eq(tandem_close(&fx.tandem, on_closed), 0);
  while (!closed)
    uv_run(&fx.loop, UV_RUN_ONCE);
  ck_assert_int_eq(tandem_loop_metrics(&fx.tandem, &lm), UV_EINVAL);
  fixture_finish(&fx);
}
END_TEST

static Suite *metrics_suite(void) {
  Suite *s = suite_create("metrics");
  TCase *tc = tcase_create("histogram");

  tcase_add_test(tc, bucket_layout);
  tcase_add_test(tc, record_and_quantiles);
  tcase_add_test(tc, quantiles_random_and_merge);
  tcase_add_test(tc, readings_modulo_2_56);
  suite_add_tcase(s, tc);
  tc = tcase_create("pool");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, counts_exact_over_workers);
  tcase_add_test(tc, round_trip_waits_not_zero);
  tcase_add_test(tc, cancelled_not_counted);
  tcase_add_test(tc, busy_now);
  tcase_add_test(tc, parked_and_loop_idle);
  tcase_add_test(tc, io_callback_is_busy);
  tcase_add_test(tc, lag_seen);
  tcase_add_test(tc, tasks_not_counted);
  tcase_add_test(tc, blocking_and_high_counted);
  tcase_add_test(tc, off_by_option);
  tcase_add_test(tc, off_by_environment);
  tcase_add_test(tc, bad_arguments);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return suite_run(metrics_suite());
}
