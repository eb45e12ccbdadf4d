/* SPDX-License-Identifier: MIT */
/*
 * Regression tests for the defects adversarial testing found (issue #10):
 *   F1  tandem_close's scan of the injection ring ran towards 2^64 when
 *       other threads moved both ends of the ring between its two reads;
 *   F2  tandem_cancel racing a request's first tandem_queue_work followed a
 *       handle that was not written yet (SIGSEGV);
 *   F6  queue_size up to 2^30 allocated 32 GiB up front.
 * (F3 and F5 are in the faults suite, F4 in the fork suite.)  Found later:
 *   F7  a job queued from an after callback was counted in flight beside
 *       the job being called back, so a sleeping loop that kept as many
 *       jobs in flight as workers never started polling (a W = 1 round
 *       trip on one worker stuck at some 50 us instead of 0.4).
 */
#include <check.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "inject.h"
#include "loop_mode.h"
#include "pool.h"
#include "run_until.h"
#include "suite_run.h"
#include "tandem.h"

/* -------------------------------------------------------------- F1 */

static int items[64];
static unsigned hook_pushes;
static unsigned hook_pops;

/* Between the scan's two reads: others push and take more than was there,
 * so the read end passes the end the scan read first. */
static void move_both_ends(tdm_inject_t *q) {
  tdm_cell_t *cell;
  uint64_t pos;
  unsigned i;
  bool more;

  for (i = 0; i < hook_pushes; i++)
    ck_assert(tdm_inject_push_mp(q, &items[10 + i], NULL, &cell, &pos));
  for (i = 0; i < hook_pops; i++)
    ck_assert_ptr_nonnull(tdm_inject_pop_mc(q, &more));
}

static unsigned taken_n;

static void count_taken(void *item, void *arg) {
  (void)item;
  (void)arg;
  taken_n++;
}

/* Without the fix this test never returns (Check's timeout fails it). */
START_TEST(test_close_scan_terminates_when_both_ends_move) {
  tdm_inject_t q;
  tdm_cell_t *cell;
  uint64_t pos;
  int owner;
  int other;

  ck_assert_int_eq(tdm_inject_init(&q, 8), 0);
  /* Two items of ours wait; the hook queues three of someone else's and
   * four are taken: the read end moves from 0 to 4, past the old write
   * end 2. */
  ck_assert(tdm_inject_push_mp(&q, &items[0], &owner, &cell, &pos));
  ck_assert(tdm_inject_push_mp(&q, &items[1], &owner, &cell, &pos));
  hook_pushes = 3;
  hook_pops = 4;
  tdm_inject_scan_hook = move_both_ends;
  taken_n = 0;
  (void)tdm_inject_cancel_owned(&q, &other, count_taken, NULL);
  tdm_inject_scan_hook = NULL;
  ck_assert_uint_eq(taken_n, 0);
  ck_assert_uint_eq(tdm_inject_size(&q), 1);
  tdm_inject_destroy(&q);
}
END_TEST

/* The scan still takes back every item of its owner that waits, whatever
 * moves around it. */
START_TEST(test_close_scan_takes_back_owned_items_while_ends_move) {
  tdm_inject_t q;
  tdm_cell_t *cell;
  uint64_t pos;
  int owner;
  int other;
  bool more;

  ck_assert_int_eq(tdm_inject_init(&q, 8), 0);
  ck_assert(tdm_inject_push_mp(&q, &items[0], &other, &cell, &pos));
  ck_assert(tdm_inject_push_mp(&q, &items[1], &owner, &cell, &pos));
  ck_assert(tdm_inject_push_mp(&q, &items[2], &owner, &cell, &pos));
  hook_pushes = 2; /* someone else's, behind ours */
  hook_pops = 1;   /* the first item, not ours */
  tdm_inject_scan_hook = move_both_ends;
  taken_n = 0;
  ck_assert_uint_eq(tdm_inject_cancel_owned(&q, &owner, count_taken, NULL),
                    2);
  tdm_inject_scan_hook = NULL;
  ck_assert_uint_eq(taken_n, 2);
  /* What is left: the two pushed by the hook; the tombstones are skipped. */
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), &items[10]);
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), &items[11]);
  ck_assert_ptr_null(tdm_inject_pop_mc(&q, &more));
  tdm_inject_destroy(&q);
}
END_TEST

/* End to end: a loop thread opens and closes a handle again and again
 * while foreign threads keep the same pool's ring busy through a handle of
 * their own.  Every close must return.  TANDEM_CLOSE_CYCLES raises the
 * count (the bar is 10^6). */
typedef struct busy_s {
  tandem_t *t;
  atomic_int stop;
  atomic_long queued;
  atomic_long called;
  tandem_work_t reqs[64];
  atomic_int in_use[64];
} busy_t;

static void noop_work(tandem_work_t *req) {
  (void)req;
}

static void busy_after(tandem_work_t *req, int status) {
  busy_t *b = req->data;

  (void)status;
  atomic_fetch_add(&b->called, 1);
  atomic_store(&b->in_use[req - b->reqs], 0);
}

static void busy_thread(void *arg) {
  busy_t *b = arg;
  unsigned i = 0;
  int idle;

  while (!atomic_load(&b->stop)) {
    i = (i + 1) % 64;
    idle = 0;
    if (!atomic_compare_exchange_strong(&b->in_use[i], &idle, 1))
      continue; /* in flight, or another thread's */
    b->reqs[i].data = b;
    if (tandem_queue_work(b->t, &b->reqs[i], noop_work, busy_after) == 0)
      atomic_fetch_add(&b->queued, 1);
    else
      atomic_store(&b->in_use[i], 0);
  }
}

typedef struct side_loop_s {
  uv_loop_t loop;
  tandem_t t;
  uv_async_t stop;
  uv_sem_t ready;
  tandem_pool_t *pool;
} side_loop_t;

static void side_stop_cb(uv_async_t *a) {
  side_loop_t *s = a->data;

  tandem_close(&s->t, NULL);
  uv_close((uv_handle_t *)a, NULL);
}

static void side_thread(void *arg) {
  side_loop_t *s = arg;

  ck_assert_int_eq(uv_loop_init(&s->loop), 0);
  ck_assert_int_eq(tandem_init(&s->loop, &s->t, s->pool), 0);
  ck_assert_int_eq(uv_async_init(&s->loop, &s->stop, side_stop_cb), 0);
  s->stop.data = s;
  uv_sem_post(&s->ready);
  ck_assert_int_eq(uv_run(&s->loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&s->loop), 0);
}

static unsigned env_count(const char *name, unsigned dflt) {
  const char *v = getenv(name);
  return v != NULL && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

static void close_cb_count(tandem_t *t) {
  (*(unsigned *)t->data)++;
}

START_TEST(test_close_returns_while_others_keep_the_ring_busy) {
  tandem_options_t opts;
  side_loop_t side;
  busy_t *busy;
  uv_thread_t threads[2];
  uv_thread_t side_tid;
  uv_loop_t loop;
  tandem_t t;
  tandem_work_t req;
  unsigned cycles;
  unsigned closed;
  unsigned i;

  memset(&opts, 0, sizeof(opts));
  opts.workers = 2;
  opts.queue_size = 16; /* small: the ends lap it often */
  memset(&side, 0, sizeof(side));
  ck_assert_int_eq(tandem_pool_new(&side.pool, &opts), 0);
  ck_assert_int_eq(uv_sem_init(&side.ready, 0), 0);
  ck_assert_int_eq(uv_thread_create(&side_tid, side_thread, &side), 0);
  uv_sem_wait(&side.ready);
  busy = calloc(1, sizeof(*busy));
  busy->t = &side.t;
  for (i = 0; i < 2; i++)
    ck_assert_int_eq(uv_thread_create(&threads[i], busy_thread, busy), 0);

  ck_assert_int_eq(uv_loop_init(&loop), 0);
  cycles = env_count("TANDEM_CLOSE_CYCLES", 20000);
  closed = 0;
  t.data = &closed;
  memset(&req, 0, sizeof(req));
  for (i = 0; i < cycles; i++) {
    ck_assert_int_eq(tandem_init(&loop, &t, side.pool), 0);
    t.data = &closed;
    /* Every other cycle one job of ours waits in the ring to be taken
     * back (or has started). */
    if (i % 2 == 0)
      ck_assert_int_eq(tandem_queue_work(&t, &req, noop_work, NULL), 0);
    tandem_close(&t, close_cb_count);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_uint_eq(closed, i + 1);
  }
  ck_assert_int_eq(uv_loop_close(&loop), 0);

  atomic_store(&busy->stop, 1);
  for (i = 0; i < 2; i++)
    uv_thread_join(&threads[i]);
  /* The side loop drains what is left, then closes. */
  while (atomic_load(&busy->called) != atomic_load(&busy->queued))
    uv_sleep(1);
  uv_async_send(&side.stop);
  uv_thread_join(&side_tid);
  ck_assert_int_eq(tandem_pool_free(side.pool), 0);
  uv_sem_destroy(&side.ready);
  ck_assert_int_gt(atomic_load(&busy->queued), 0);
  free(busy);
}
END_TEST

/* -------------------------------------------------------------- F2 */

/* A foreign thread cancels whatever request the loop thread is about to
 * queue for the first time, as fast as it can.  Before the fix, a cancel
 * that saw QUEUED before req->tandem was written followed a NULL handle.
 *
 * The books must balance exactly.  A cancel that returns 0 leaves its job
 * UV_ECANCELED without running; a cancel that comes while the job runs (or
 * after a worker took it) returns UV_EBUSY and asks it to stop, and the
 * job, returning while asked, gets UV_ECANCELED though it ran (issue #13).
 * So: UV_ECANCELED without running == cancels won; UV_ECANCELED after
 * running only for a job a cancel was called on while it was in flight;
 * status 0 only for a job that ran and did not see tandem_work_cancelled().
 * A cancel counts itself in `cancellers`, then in `begun`, before it calls;
 * a queue notes `begun`, then whether a cancel is under way: a cancel that
 * acts on the job began after the first, or was under way at the second
 * (it may have begun on the request's previous job). */
typedef struct race_req_s {
  tandem_work_t req; /* first: a request is its race_req_t */
  atomic_int ran;
  atomic_int saw;        /* tandem_work_cancelled() as work returned */
  atomic_int cancellers; /* cancels under way */
  atomic_long begun;     /* cancels begun, ever */
  /* loop thread only */
  long begun_at_queue; /* `begun` as it was queued */
  int cancelling;      /* a cancel was under way as it was queued */
  int called;
} race_req_t;

typedef struct race_s {
  race_req_t *_Atomic target;
  atomic_int stop;
  atomic_long cancels_won;
  atomic_long tries;
  atomic_long bad_codes;
} race_t;

static void race_canceller(void *arg) {
  race_t *r = arg;
  race_req_t *q;
  int rc;

  while (!atomic_load(&r->stop)) {
    q = atomic_load(&r->target);
    if (q == NULL)
      continue;
    atomic_fetch_add(&q->cancellers, 1);
    atomic_fetch_add(&q->begun, 1);
    rc = tandem_cancel(&q->req);
    atomic_fetch_sub(&q->cancellers, 1);
    atomic_fetch_add(&r->tries, 1);
    if (rc == 0)
      atomic_fetch_add(&r->cancels_won, 1);
    else if (rc != UV_EBUSY && rc != UV_EINVAL)
      atomic_fetch_add(&r->bad_codes, 1);
  }
}

static void race_work(tandem_work_t *req) {
  race_req_t *q = (race_req_t *)req;

  atomic_store(&q->saw, tandem_work_cancelled(req));
  atomic_store(&q->ran, 1);
}

/* Loop thread: queues q afresh, noting the cancels so far (in this order:
 * a cancel counts itself in the reverse one). */
static int race_queue(tandem_t *t, race_req_t *q,
                      void (*after)(tandem_work_t *, int)) {
  atomic_store(&q->ran, 0);
  atomic_store(&q->saw, 0);
  q->begun_at_queue = atomic_load(&q->begun);
  q->cancelling = atomic_load(&q->cancellers) != 0;
  return tandem_queue_work(t, &q->req, race_work, after);
}

static long race_afters;
static long race_cancelled; /* UV_ECANCELED, never ran */
static long race_stopped;   /* UV_ECANCELED after it ran, asked to stop */
static long race_bad_status;

static void race_after(tandem_work_t *req, int status) {
  race_req_t *q = (race_req_t *)req;
  int asked;

  asked = q->cancelling || atomic_load(&q->begun) != q->begun_at_queue;
  race_afters++;
  q->called++;
  if (status == UV_ECANCELED && !atomic_load(&q->ran))
    race_cancelled++;
  else if (status == UV_ECANCELED && asked)
    race_stopped++;
  else if (status != 0 || !atomic_load(&q->ran) || atomic_load(&q->saw))
    race_bad_status++; /* 0 though never run or though it saw a cancel;
                          UV_ECANCELED after running, never asked; other */
}

START_TEST(test_cancel_racing_a_first_queue_never_crashes) {
  tandem_options_t opts;
  tandem_stats_t st;
  fixture_t f;
  race_t race;
  uv_thread_t tid;
  race_req_t *reqs;
  unsigned n;
  unsigned i;
  long queued;

  memset(&opts, 0, sizeof(opts));
  opts.workers = 1;
  fixture_open(&f, &opts);
  memset(&race, 0, sizeof(race));
  ck_assert_int_eq(uv_thread_create(&tid, race_canceller, &race), 0);

  /* Fresh, zeroed requests, never reused while the canceller may hold
   * one: each is queued for the first time. */
  n = env_count("TANDEM_CANCEL_RACES", 100000);
  reqs = calloc(n, sizeof(*reqs));
  ck_assert_ptr_nonnull(reqs);
  race_afters = race_cancelled = race_stopped = race_bad_status = 0;
  queued = 0;
  for (i = 0; i < n; i++) {
    /* Jobs queued from the loop thread keep uv_run() alive until called
     * back. */
    if (i % 1000 == 0) {
      ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
      ck_assert_int_eq(race_afters, queued);
    }
    atomic_store(&race.target, &reqs[i]);
    ck_assert_int_eq(race_queue(&f.tandem, &reqs[i], race_after), 0);
    queued++;
  }
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  atomic_store(&race.stop, 1);
  uv_thread_join(&tid);
  for (i = 0; i < n; i++)
    ck_assert_int_eq(reqs[i].called, 1);
  free(reqs);
  ck_assert_int_eq(race_bad_status, 0);
  ck_assert_int_eq(atomic_load(&race.bad_codes), 0);
  ck_assert_int_eq(race_cancelled, atomic_load(&race.cancels_won));
  ck_assert_int_eq(race_afters, queued);
  /* The pool counts only the cancels that won: before the job started. */
  ck_assert_int_eq(tandem_pool_stats(f.pool, &st), 0);
  ck_assert_uint_eq(st.cancelled, (uint64_t)race_cancelled);
  fixture_close(&f);
}
END_TEST

/* The same race against a request queued on another pool before: a cancel
 * in the gap must not count itself (or tombstone a cell) in the old pool. */
START_TEST(test_cancel_racing_a_requeue_on_another_pool) {
  tandem_options_t opts;
  tandem_pool_t *pools[2];
  tandem_stats_t st[2];
  uv_loop_t loop;
  tandem_t t[2];
  race_t race;
  uv_thread_t tid;
  race_req_t req;
  unsigned n;
  unsigned i;
  long queued;

  memset(&opts, 0, sizeof(opts));
  opts.workers = 1;
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  for (i = 0; i < 2; i++) {
    ck_assert_int_eq(tandem_pool_new(&pools[i], &opts), 0);
    ck_assert_int_eq(tandem_init(&loop, &t[i], pools[i]), 0);
  }
  memset(&race, 0, sizeof(race));
  memset(&req, 0, sizeof(req));
  atomic_store(&race.target, &req);
  ck_assert_int_eq(uv_thread_create(&tid, race_canceller, &race), 0);
  n = env_count("TANDEM_CANCEL_RACES", 100000) / 10;
  race_afters = race_cancelled = race_stopped = race_bad_status = 0;
  queued = 0;
  for (i = 0; i < n; i++) {
    ck_assert_int_eq(race_queue(&t[i % 2], &req, race_after), 0);
    queued++;
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(race_afters, queued);
  }
  atomic_store(&race.stop, 1);
  uv_thread_join(&tid);
  ck_assert_int_eq(race_bad_status, 0);
  ck_assert_int_eq(race_cancelled, atomic_load(&race.cancels_won));
  for (i = 0; i < 2; i++) {
    ck_assert_int_eq(tandem_pool_stats(pools[i], &st[i]), 0);
    ck_assert_uint_eq(st[i].inject_depth, 0);
  }
  /* Each cancel that won was counted once, in some pool. */
  ck_assert_uint_eq(st[0].cancelled + st[1].cancelled,
                    (uint64_t)race_cancelled);
  for (i = 0; i < 2; i++)
    tandem_close(&t[i], NULL);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  for (i = 0; i < 2; i++)
    ck_assert_int_eq(tandem_pool_free(pools[i]), 0);
}
END_TEST

/* ------------------------------------------------------ lost wake-up */

/* Found by the park model (tests/model/park.pml): notify() raised
 * nspinning on a sleeper's behalf, found nobody to wake (the sleeper had
 * just seen other work and cancelled its sleep), and lowered it again
 * without looking at the queues -- while a second submitter, seeing
 * nspinning != 0, had trusted a spinner to find its item.  Both workers
 * then slept with an item waiting until the next submit.
 *
 * Here submitters queue in lockstep and then stop until every job has
 * started, so a stranded job is never rescued by a later submit: it
 * shows as a round that does not finish.  Workers never spin, which keeps
 * every submit on the notify() path. */
#define WAKE_SUBMITTERS 4

typedef struct wake_race_s {
  tandem_t *t;
  tandem_work_t *reqs; /* [rounds][WAKE_SUBMITTERS] */
  unsigned rounds;
  uv_barrier_t start;
  atomic_uint started; /* work callbacks run */
  atomic_uint stranded; /* rounds that did not finish in time */
  atomic_uint refused;
} wake_race_t;

static wake_race_t *wake_race;

static void count_start(tandem_work_t *req) {
  (void)req;
  atomic_fetch_add(&wake_race->started, 1);
}

typedef struct wake_submitter_s {
  wake_race_t *r;
  unsigned index;
} wake_submitter_t;

static void wake_submitter(void *arg) {
  wake_submitter_t *s = arg;
  wake_race_t *r = s->r;
  unsigned round;
  unsigned want;
  uint64_t deadline;

  for (round = 0; round < r->rounds; round++) {
    uv_barrier_wait(&r->start);
    if (tandem_queue_work(r->t, &r->reqs[round * WAKE_SUBMITTERS + s->index],
                          count_start, NULL) != 0)
      atomic_fetch_add(&r->refused, 1);
    /* Nobody submits until every job of the round has started. */
    want = (round + 1) * WAKE_SUBMITTERS;
    deadline = uv_hrtime() + 2000000000ull * timeout_multiplier();
    while (atomic_load(&r->started) < want) {
      if (uv_hrtime() > deadline) {
        atomic_fetch_add(&r->stranded, 1);
        return; /* the others time out too */
      }
      sched_yield();
    }
  }
}

START_TEST(test_no_lost_wakeup_between_submitters) {
  tandem_options_t opts;
  fixture_t f;
  wake_race_t r;
  wake_submitter_t subs[WAKE_SUBMITTERS];
  uv_thread_t tids[WAKE_SUBMITTERS];
  unsigned i;

  memset(&opts, 0, sizeof(opts));
  opts.workers = 2;
  opts.worker_spin_us = -1; /* park at once: every submit must wake */
  fixture_open(&f, &opts);
  memset(&r, 0, sizeof(r));
  r.t = &f.tandem;
  r.rounds = env_count("TANDEM_WAKE_ROUNDS", 20000);
  r.reqs = calloc((size_t)r.rounds * WAKE_SUBMITTERS, sizeof(*r.reqs));
  ck_assert_ptr_nonnull(r.reqs);
  ck_assert_int_eq(uv_barrier_init(&r.start, WAKE_SUBMITTERS), 0);
  wake_race = &r;
  for (i = 0; i < WAKE_SUBMITTERS; i++) {
    subs[i].r = &r;
    subs[i].index = i;
    ck_assert_int_eq(uv_thread_create(&tids[i], wake_submitter, &subs[i]),
                     0);
  }
  for (i = 0; i < WAKE_SUBMITTERS; i++)
    uv_thread_join(&tids[i]);
  ck_assert_msg(atomic_load(&r.stranded) == 0,
                "a job waited with every worker asleep (lost wake-up) after "
                "%u of %u jobs had started",
                atomic_load(&r.started), r.rounds * WAKE_SUBMITTERS);
  ck_assert_uint_eq(atomic_load(&r.refused), 0);
  /* The after callbacks (none) come home on the loop. */
  fixture_close(&f);
  uv_barrier_destroy(&r.start);
  free(r.reqs);
}
END_TEST

/* -------------------------------------------------------------- F6 */

START_TEST(test_queue_size_limit) {
  tandem_options_t opts;
  tandem_pool_t *pool;

  memset(&opts, 0, sizeof(opts));
  opts.workers = 1;
  opts.queue_size = TANDEM_QUEUE_SIZE_MAX + 1u;
  ck_assert_int_eq(tandem_pool_new(&pool, &opts), UV_EINVAL);
  ck_assert_ptr_null(pool);
  opts.queue_size = 1u << 30; /* was accepted: 32 GiB of cells */
  ck_assert_int_eq(tandem_pool_new(&pool, &opts), UV_EINVAL);
  opts.queue_size = TANDEM_QUEUE_SIZE_MAX;
  ck_assert_int_eq(tandem_pool_new(&pool, &opts), 0);
  ck_assert_int_eq(tandem_pool_free(pool), 0);
}
END_TEST

/* -------------------------------------------------------------- F7 */

#define F7_SLOW_NS (20 * 1000 * 1000) /* well past loop_spin_us below */
#define F7_TRIES 50

static fixture_t f7;
static tandem_work_t f7_req;
static int f7_tries;
static int f7_checked;
static unsigned f7_mode_after; /* the mode right after the requeue */
static uint64_t f7_loops_after; /* the pool's loops word then */

static void f7_slow_cb(tandem_work_t *req) {
  struct timespec ts = {0, F7_SLOW_NS};

  (void)req;
  nanosleep(&ts, NULL);
}

static void f7_empty_cb(tandem_work_t *req) {
  (void)req;
}

static void f7_last_after(tandem_work_t *req, int status) {
  (void)req;
  ck_assert_int_eq(status, 0);
}

/* A slow job came home.  Once the loop slept through it (its polling ran
 * out long before), queue the next one from here: one job in flight on
 * one worker, a round trip, so the loop must start polling at once. */
static void f7_after(tandem_work_t *req, int status) {
  ck_assert_int_eq(status, 0);
  /* Private, read for the test's sake: the loop's mode. */
  if (f7.tandem.mode_ != TDM_MODE_SLEEP && ++f7_tries < F7_TRIES) {
    /* A preempted loop may not have slept yet: try another slow job. */
    ck_assert_int_eq(tandem_queue_work(&f7.tandem, req, f7_slow_cb,
                                       f7_after), 0);
    return;
  }
  ck_assert_uint_eq(f7.tandem.mode_, TDM_MODE_SLEEP);
  ck_assert_int_eq(tandem_queue_work(&f7.tandem, req, f7_empty_cb,
                                     f7_last_after), 0);
  f7_mode_after = f7.tandem.mode_;
  f7_loops_after = tdm_load_64(&f7.pool->idle.loops);
  f7_checked = 1;
}

START_TEST(test_requeue_from_after_callback_starts_polling) {
  tandem_options_t opts;

  memset(&opts, 0, sizeof(opts));
  opts.workers = 1;
  opts.loop_spin_us = 1000; /* polls 1 ms, then sleeps */
  fixture_open(&f7, &opts);
  f7_tries = f7_checked = 0;
  ck_assert_int_eq(tandem_queue_work(&f7.tandem, &f7_req, f7_slow_cb,
                                     f7_after), 0);
  ck_assert_int_eq(uv_run(&f7.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(f7_checked, 1);
  ck_assert_msg(f7_mode_after == TDM_MODE_POLL,
                "a sleeping loop that requeued its one job on one worker "
                "went on sleeping (mode %u)", f7_mode_after);
  /* The pool was told: one loop polls, with one job in flight (idle.h,
   * the loops word); and told again when the job came home. */
  ck_assert_uint_eq(f7_loops_after, TDM_LOOPS_POLLING | TDM_LOOPS_LONE);
  ck_assert_uint_eq(tdm_load_64(&f7.pool->idle.loops), 0);
  fixture_close(&f7);
}
END_TEST

static Suite *defects_suite(void) {
  Suite *s = suite_create("defects");
  TCase *tc;

  tc = tcase_create("F1 close scan");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_close_scan_terminates_when_both_ends_move);
  tcase_add_test(tc, test_close_scan_takes_back_owned_items_while_ends_move);
  tcase_add_test(tc, test_close_returns_while_others_keep_the_ring_busy);
  suite_add_tcase(s, tc);

  tc = tcase_create("F2 cancel vs first queue");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_cancel_racing_a_first_queue_never_crashes);
  tcase_add_test(tc, test_cancel_racing_a_requeue_on_another_pool);
  suite_add_tcase(s, tc);

  tc = tcase_create("lost wake-up");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_no_lost_wakeup_between_submitters);
  suite_add_tcase(s, tc);

  tc = tcase_create("F6 queue size");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_queue_size_limit);
  suite_add_tcase(s, tc);

  tc = tcase_create("F7 requeue counts");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_requeue_from_after_callback_starts_polling);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return suite_run(defects_suite());
}
