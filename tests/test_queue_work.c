/* SPDX-License-Identifier: MIT */
/*
 * tandem_queue_work(): every job's work callback runs once on a worker and
 * its after callback runs once on the loop thread, whoever queued it: the
 * loop thread, other application threads, or a worker inside a job.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "pool.h" /* the idle word and a request's cell, for one test */
#include "run_until.h"
#include "suite_run.h"
#include "tandem.h"

/* clang-format off */
#define container_of(ptr, type, member)                                      \
  ((type *)((char *)(ptr) - offsetof(type, member)))
/* clang-format on */

static int on_thread(const uv_thread_t *thread) {
  uv_thread_t self;

  self = uv_thread_self();
  return uv_thread_equal(thread, &self);
}

/* ------------------------------------------------- a million jobs */

/* 1,000,000 jobs: 200,000 queued by the loop thread, which keeps
 * LOOP_INFLIGHT requests in flight and re-queues each from its after
 * callback, and 200,000 by each of 4 application threads, which queue
 * batches of THREAD_BATCH requests and wait for a batch's after callbacks
 * before reusing its requests. */
#define TOTAL_JOBS 1000000u
#define PRODUCERS 4u
#define THREAD_JOBS 200000u
#define LOOP_JOBS (TOTAL_JOBS - PRODUCERS * THREAD_JOBS)
#define LOOP_INFLIGHT 10000u
#define THREAD_BATCH 10000u

typedef struct producer_s producer_t;

typedef struct job_s {
  tandem_work_t req;
  uint32_t id;       /* the job it carries now: index into the counters */
  producer_t *owner; /* NULL when queued by the loop thread */
} job_t;

struct producer_s {
  uv_thread_t thread;
  tandem_t *tandem;
  uint32_t first_id;
  job_t jobs[THREAD_BATCH];
  atomic_uint outstanding; /* jobs of the current batch not yet called back */
  uv_sem_t batch_done;
  int queue_errors; /* producer thread only; read after join */
};

typedef struct million_s {
  fixture_t f;
  uv_thread_t loop_thread;
  atomic_uchar *ran;     /* per job id: work callbacks run */
  unsigned char *called; /* per job id: after callbacks run */
  job_t *loop_jobs;
  /* loop thread only */
  uint32_t next_loop_id;
  unsigned done;
  unsigned off_loop_thread;
  unsigned bad_status;
  unsigned bad_handle;
  unsigned requeue_errors;
} million_t;

static million_t *million;

static void million_work_cb(tandem_work_t *req) {
  job_t *job;

  job = container_of(req, job_t, req);
  atomic_fetch_add_explicit(&million->ran[job->id], 1, memory_order_relaxed);
}

static void million_after_cb(tandem_work_t *req, int status) {
  million_t *m;
  job_t *job;

  m = million;
  job = container_of(req, job_t, req);
  /* No ck_assert here: in fork mode each one writes to a pipe. */
  if (!on_thread(&m->loop_thread))
    m->off_loop_thread++;
  if (status != 0)
    m->bad_status++;
  if (req->tandem != &m->f.tandem)
    m->bad_handle++;
  m->called[job->id]++;
  m->done++;

  if (job->owner != NULL) {
    if (atomic_fetch_sub(&job->owner->outstanding, 1) == 1)
      uv_sem_post(&job->owner->batch_done);
    return;
  }

  if (m->next_loop_id < LOOP_JOBS) {
    job->id = m->next_loop_id++;
    if (tandem_queue_work(&m->f.tandem, &job->req, million_work_cb,
                          million_after_cb) != 0)
      m->requeue_errors++;
  }
}

static void producer_main(void *arg) {
  producer_t *p;
  uint32_t id;
  unsigned batch;
  unsigned i;

  p = arg;
  id = p->first_id;
  for (batch = 0; batch < THREAD_JOBS / THREAD_BATCH; batch++) {
    atomic_store(&p->outstanding, THREAD_BATCH);
    for (i = 0; i < THREAD_BATCH; i++) {
      p->jobs[i].id = id++;
      if (tandem_queue_work(p->tandem, &p->jobs[i].req, million_work_cb,
                            million_after_cb) != 0) {
        p->queue_errors++;
        if (atomic_fetch_sub(&p->outstanding, 1) == 1)
          uv_sem_post(&p->batch_done);
      }
    }
    uv_sem_wait(&p->batch_done);
  }
}

static int million_all_done(void *arg) {
  million_t *m;

  m = arg;
  return m->done == TOTAL_JOBS;
}

/* The loop thread and 4 application threads queue 1,000,000 jobs in all:
 * each work callback runs once, each after callback runs once, on the loop
 * thread, with status 0. */
START_TEST(test_million_jobs_from_loop_and_four_threads) {
  producer_t *producers;
  million_t *m;
  uint32_t i;
  uint32_t j;
  unsigned bad_ran;
  unsigned bad_called;
  int held;

  m = calloc(1, sizeof(*m));
  ck_assert_ptr_nonnull(m);
  million = m;
  m->ran = calloc(TOTAL_JOBS, sizeof(*m->ran));
  m->called = calloc(TOTAL_JOBS, sizeof(*m->called));
  m->loop_jobs = calloc(LOOP_INFLIGHT, sizeof(*m->loop_jobs));
  producers = calloc(PRODUCERS, sizeof(*producers));
  ck_assert_ptr_nonnull(m->ran);
  ck_assert_ptr_nonnull(m->called);
  ck_assert_ptr_nonnull(m->loop_jobs);
  ck_assert_ptr_nonnull(producers);

  fixture_open(&m->f, NULL);
  m->loop_thread = uv_thread_self();

  /* Count errors: each ck_assert that passes writes to Check's pipe. */
  for (i = 0; i < LOOP_INFLIGHT; i++) {
    m->loop_jobs[i].id = m->next_loop_id++;
    if (tandem_queue_work(&m->f.tandem, &m->loop_jobs[i].req, million_work_cb,
                          million_after_cb) != 0)
      m->requeue_errors++;
  }
  ck_assert_uint_eq(m->requeue_errors, 0);

  for (i = 0; i < PRODUCERS; i++) {
    producers[i].tandem = &m->f.tandem;
    producers[i].first_id = LOOP_JOBS + i * THREAD_JOBS;
    for (j = 0; j < THREAD_BATCH; j++)
      producers[i].jobs[j].owner = &producers[i];
    ck_assert_int_eq(uv_sem_init(&producers[i].batch_done, 0), 0);
    ck_assert_int_eq(
        uv_thread_create(&producers[i].thread, producer_main, &producers[i]),
        0);
  }

  held = run_until(&m->f.loop, million_all_done, m, 50000);

  for (i = 0; i < PRODUCERS; i++) {
    ck_assert_int_eq(uv_thread_join(&producers[i].thread), 0);
    ck_assert_int_eq(producers[i].queue_errors, 0);
    uv_sem_destroy(&producers[i].batch_done);
  }
  ck_assert_msg(held, "only %u of %u after callbacks ran", m->done, TOTAL_JOBS);
  ck_assert_uint_eq(m->done, TOTAL_JOBS);
  ck_assert_uint_eq(m->next_loop_id, LOOP_JOBS);
  ck_assert_uint_eq(m->requeue_errors, 0);
  ck_assert_uint_eq(m->off_loop_thread, 0);
  ck_assert_uint_eq(m->bad_status, 0);
  ck_assert_uint_eq(m->bad_handle, 0);

  bad_ran = 0;
  bad_called = 0;
  for (i = 0; i < TOTAL_JOBS; i++) {
    if (atomic_load_explicit(&m->ran[i], memory_order_relaxed) != 1)
      bad_ran++;
    if (m->called[i] != 1)
      bad_called++;
  }
  ck_assert_msg(bad_ran == 0, "%u jobs did not run exactly once", bad_ran);
  ck_assert_msg(bad_called == 0, "%u jobs not called back exactly once",
                bad_called);

  fixture_close(&m->f);

  free(producers);
  free(m->loop_jobs);
  free(m->called);
  free(m->ran);
  free(m);
  million = NULL;
}
END_TEST

/* ---------------------------------------- jobs queued from a worker */

#define CHILDREN 8u
#define GRANDCHILDREN 4u

typedef struct nest_s nest_t;

typedef struct nest_job_s {
  tandem_work_t req;
  nest_t *nest;
  unsigned index; /* children: 0..CHILDREN-1; grandchildren below */
} nest_job_t;

struct nest_s {
  fixture_t f;
  uv_thread_t loop_thread;
  nest_job_t parent;
  nest_job_t children[CHILDREN];
  nest_job_t grandchildren[CHILDREN * GRANDCHILDREN];
  atomic_uint ran;
  atomic_uint queue_errors;
  /* loop thread only */
  unsigned called;
  unsigned off_loop_thread;
  unsigned bad_status;
};

static void nest_after_cb(tandem_work_t *req, int status) {
  nest_job_t *job;
  nest_t *n;

  job = container_of(req, nest_job_t, req);
  n = job->nest;
  if (!on_thread(&n->loop_thread))
    n->off_loop_thread++;
  if (status != 0)
    n->bad_status++;
  n->called++;
}

static void nest_grandchild_work_cb(tandem_work_t *req) {
  nest_job_t *job;

  job = container_of(req, nest_job_t, req);
  atomic_fetch_add(&job->nest->ran, 1);
}

static void nest_child_work_cb(tandem_work_t *req) {
  nest_job_t *job;
  nest_job_t *g;
  unsigned i;

  job = container_of(req, nest_job_t, req);
  atomic_fetch_add(&job->nest->ran, 1);
  for (i = 0; i < GRANDCHILDREN; i++) {
    g = &job->nest->grandchildren[job->index * GRANDCHILDREN + i];
    if (tandem_queue_work(&job->nest->f.tandem, &g->req,
                          nest_grandchild_work_cb, nest_after_cb) != 0)
      atomic_fetch_add(&job->nest->queue_errors, 1);
  }
}

static void nest_parent_work_cb(tandem_work_t *req) {
  nest_job_t *job;
  unsigned i;

  job = container_of(req, nest_job_t, req);
  atomic_fetch_add(&job->nest->ran, 1);
  for (i = 0; i < CHILDREN; i++) {
    if (tandem_queue_work(&job->nest->f.tandem, &job->nest->children[i].req,
                          nest_child_work_cb, nest_after_cb) != 0)
      atomic_fetch_add(&job->nest->queue_errors, 1);
  }
}

static int nest_all_called(void *arg) {
  nest_t *n;

  n = arg;
  return n->called == 1 + CHILDREN + CHILDREN * GRANDCHILDREN;
}

/* A job queues 8 jobs from its work callback, each of which queues 4 more:
 * all 41 complete, called back on the loop thread with status 0. */
START_TEST(test_jobs_queued_from_worker_complete) {
  unsigned total;
  unsigned i;
  nest_t *n;

  total = 1 + CHILDREN + CHILDREN * GRANDCHILDREN;
  n = calloc(1, sizeof(*n));
  ck_assert_ptr_nonnull(n);
  n->parent.nest = n;
  for (i = 0; i < CHILDREN; i++) {
    n->children[i].nest = n;
    n->children[i].index = i;
  }
  for (i = 0; i < CHILDREN * GRANDCHILDREN; i++)
    n->grandchildren[i].nest = n;

  fixture_open(&n->f, NULL);
  n->loop_thread = uv_thread_self();

  ck_assert_int_eq(tandem_queue_work(&n->f.tandem, &n->parent.req,
                                     nest_parent_work_cb, nest_after_cb),
                   0);
  ck_assert(run_until(&n->f.loop, nest_all_called, n, 10000));

  ck_assert_uint_eq(atomic_load(&n->queue_errors), 0);
  ck_assert_uint_eq(atomic_load(&n->ran), total);
  ck_assert_uint_eq(n->called, total);
  ck_assert_uint_eq(n->off_loop_thread, 0);
  ck_assert_uint_eq(n->bad_status, 0);

  fixture_close(&n->f);
  free(n);
}
END_TEST

/* ---------------------------------- re-queued from its after callback */

#define REQUEUES 1000u

typedef struct requeue_s {
  tandem_work_t req;
  tandem_t *tandem;
  atomic_uint ran;
  unsigned called;
  unsigned bad_status;
  int requeue_error;
} requeue_t;

static void requeue_work_cb(tandem_work_t *req) {
  requeue_t *r;

  r = req->data;
  atomic_fetch_add(&r->ran, 1);
}

static void requeue_after_cb(tandem_work_t *req, int status) {
  requeue_t *r;
  int rc;

  r = req->data;
  if (status != 0)
    r->bad_status++;
  r->called++;
  if (r->called < REQUEUES) {
    rc = tandem_queue_work(r->tandem, req, requeue_work_cb, requeue_after_cb);
    if (rc != 0)
      r->requeue_error = rc;
  }
}

/* One request queued 1,000 times in a row, each time from its own after
 * callback: uv_run() keeps going until the last one is called back. */
START_TEST(test_request_requeued_from_its_after_callback) {
  fixture_t f;
  requeue_t r;

  fixture_open(&f, NULL);

  memset(&r, 0, sizeof(r));
  r.tandem = &f.tandem;
  r.req.data = &r;
  ck_assert_int_eq(
      tandem_queue_work(&f.tandem, &r.req, requeue_work_cb, requeue_after_cb),
      0);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);

  ck_assert_int_eq(r.requeue_error, 0);
  ck_assert_uint_eq(r.called, REQUEUES);
  ck_assert_uint_eq(atomic_load(&r.ran), REQUEUES);
  ck_assert_uint_eq(r.bad_status, 0);
  ck_assert_ptr_eq(r.req.data, &r);
  ck_assert_ptr_eq(r.req.tandem, &f.tandem);

  fixture_close(&f);
}
END_TEST

/* ------------------------------------ uv_run() and the loop's lifetime */

#define LOOP_BATCH 100u

typedef struct alive_s {
  tandem_work_t reqs[LOOP_BATCH];
  uv_thread_t loop_thread;
  atomic_uint ran;
  atomic_uint on_loop_thread; /* work callbacks run on the loop thread */
  unsigned called;
  unsigned bad_status;
} alive_t;

static void alive_work_cb(tandem_work_t *req) {
  alive_t *a;

  a = req->data;
  if (on_thread(&a->loop_thread))
    atomic_fetch_add(&a->on_loop_thread, 1);
  /* The last job is slow, so uv_run() has something to wait for. */
  if (req == &a->reqs[LOOP_BATCH - 1])
    uv_sleep(50);
  atomic_fetch_add(&a->ran, 1);
}

static void alive_after_cb(tandem_work_t *req, int status) {
  alive_t *a;

  a = req->data;
  if (status != 0)
    a->bad_status++;
  a->called++;
}

/* uv_run(UV_RUN_DEFAULT) returns only once every job queued from the loop
 * thread has been called back, then the loop is no longer alive. */
START_TEST(test_run_returns_after_every_loop_job_is_called_back) {
  fixture_t f;
  alive_t *a;
  unsigned i;

  a = calloc(1, sizeof(*a));
  ck_assert_ptr_nonnull(a);
  fixture_open(&f, NULL);
  a->loop_thread = uv_thread_self();

  for (i = 0; i < LOOP_BATCH; i++) {
    a->reqs[i].data = a;
    ck_assert_int_eq(tandem_queue_work(&f.tandem, &a->reqs[i], alive_work_cb,
                                       alive_after_cb),
                     0);
  }
  ck_assert(uv_loop_alive(&f.loop));
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);

  ck_assert_uint_eq(a->called, LOOP_BATCH);
  ck_assert_uint_eq(atomic_load(&a->ran), LOOP_BATCH);
  ck_assert_uint_eq(a->bad_status, 0);
  ck_assert_uint_eq(atomic_load(&a->on_loop_thread), 0);
  ck_assert(!uv_loop_alive(&f.loop));

  fixture_close(&f);
  free(a);
}
END_TEST

/* An idle tandem_t does not keep uv_run() alive: it returns at once. */
START_TEST(test_idle_tandem_does_not_keep_loop_alive) {
  fixture_t f;

  fixture_open(&f, NULL);
  ck_assert_ptr_eq(f.tandem.loop, &f.loop);
  ck_assert_ptr_eq(f.tandem.pool, f.pool);

  ck_assert(!uv_loop_alive(&f.loop));
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_ONCE), 0);

  fixture_close(&f);
}
END_TEST

/* The default pool serves a tandem_t initialised with a NULL pool. */
START_TEST(test_null_pool_means_default_pool) {
  uv_loop_t loop;
  tandem_t t;
  alive_t *a;

  a = calloc(1, sizeof(*a));
  ck_assert_ptr_nonnull(a);
  ck_assert_int_eq(uv_loop_init(&loop), 0);
  ck_assert_int_eq(tandem_init(&loop, &t, NULL), 0);
  ck_assert_ptr_nonnull(t.pool);
  ck_assert_ptr_eq(t.pool, tandem_pool_default());
  a->loop_thread = uv_thread_self();

  a->reqs[0].data = a;
  ck_assert_int_eq(
      tandem_queue_work(&t, &a->reqs[0], alive_work_cb, alive_after_cb), 0);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(a->called, 1);
  ck_assert_uint_eq(atomic_load(&a->ran), 1);
  ck_assert_uint_eq(a->bad_status, 0);

  tandem_close(&t, NULL);
  ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(uv_loop_close(&loop), 0);
  free(a);
}
END_TEST

/* after_cb may be NULL: the job still runs, and still keeps uv_run() alive
 * until it has completed. */
START_TEST(test_null_after_callback_runs_work) {
  fixture_t f;
  alive_t *a;
  unsigned i;

  a = calloc(1, sizeof(*a));
  ck_assert_ptr_nonnull(a);
  fixture_open(&f, NULL);
  a->loop_thread = uv_thread_self();

  for (i = 0; i < LOOP_BATCH; i++) {
    a->reqs[i].data = a;
    ck_assert_int_eq(
        tandem_queue_work(&f.tandem, &a->reqs[i], alive_work_cb, NULL), 0);
  }
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(atomic_load(&a->ran), LOOP_BATCH);
  ck_assert(!uv_loop_alive(&f.loop));

  /* Completed, so each request can be queued again. */
  for (i = 0; i < LOOP_BATCH; i++)
    ck_assert_int_eq(tandem_queue_work(&f.tandem, &a->reqs[i], alive_work_cb,
                                       alive_after_cb),
                     0);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(a->called, LOOP_BATCH);
  ck_assert_uint_eq(atomic_load(&a->ran), 2 * LOOP_BATCH);

  fixture_close(&f);
  free(a);
}
END_TEST

/* ---------------------------------------- freed in the after callback */

#define FREED 1000

typedef struct owned_s {
  tandem_work_t req;
  char payload[64];
} owned_t;

static unsigned freed; /* loop thread only */
static atomic_uint freed_ran;

static void owned_work_cb(tandem_work_t *req) {
  owned_t *o;

  o = container_of(req, owned_t, req);
  o->payload[0]++;
  atomic_fetch_add(&freed_ran, 1);
}

static void owned_after_cb(tandem_work_t *req, int status) {
  (void)status;
  free(container_of(req, owned_t, req));
  freed++;
}

typedef struct owned_producer_s {
  tandem_t *tandem;
  int queue_errors;
} owned_producer_t;

static void owned_producer_main(void *arg) {
  owned_producer_t *p;
  owned_t *o;
  int i;

  p = arg;
  for (i = 0; i < FREED; i++) {
    o = calloc(1, sizeof(*o));
    if (o == NULL || tandem_queue_work(p->tandem, &o->req, owned_work_cb,
                                       owned_after_cb) != 0) {
      free(o);
      p->queue_errors++;
    }
  }
}

static int all_freed(void *arg) {
  (void)arg;
  return freed == 2 * FREED;
}

/* Like a uv_work_t, a request may be freed in its after callback: the
 * library touches it no more (ASan checks), whoever queued it. */
START_TEST(test_request_freed_in_its_after_callback) {
  owned_producer_t producer;
  fixture_t f;
  uv_thread_t thread;
  owned_t *o;
  int errors;
  int i;

  freed = 0;
  atomic_store(&freed_ran, 0);
  fixture_open(&f, NULL);

  producer.tandem = &f.tandem;
  producer.queue_errors = 0;
  ck_assert_int_eq(uv_thread_create(&thread, owned_producer_main, &producer),
                   0);
  errors = 0;
  for (i = 0; i < FREED; i++) {
    o = calloc(1, sizeof(*o));
    if (o == NULL || tandem_queue_work(&f.tandem, &o->req, owned_work_cb,
                                       owned_after_cb) != 0) {
      free(o);
      errors++;
    }
  }
  ck_assert_int_eq(errors, 0);
  ck_assert(run_until(&f.loop, all_freed, NULL, 10000));
  ck_assert_int_eq(uv_thread_join(&thread), 0);
  ck_assert_int_eq(producer.queue_errors, 0);
  ck_assert_uint_eq(atomic_load(&freed_ran), 2 * FREED);

  fixture_close(&f);
}
END_TEST

/* ---------------------------------- the loop hears of a job at once */

typedef struct chain_s {
  tandem_work_t a;
  tandem_work_t b;
  uv_sem_t b_queued;
  uv_mutex_t mutex;
  uv_cond_t cond;
  int a_called; /* under mutex */
  atomic_int b_timed_out;
  /* loop thread only */
  int a_status;
  int b_status;
  int b_called;
} chain_t;

static void chain_a_work_cb(tandem_work_t *req) {
  chain_t *c;

  c = req->data;
  uv_sem_wait(&c->b_queued); /* so the worker finds B as soon as A ends */
}

static void chain_a_after_cb(tandem_work_t *req, int status) {
  chain_t *c;

  c = req->data;
  c->a_status = status;
  uv_mutex_lock(&c->mutex);
  c->a_called = 1;
  uv_cond_signal(&c->cond);
  uv_mutex_unlock(&c->mutex);
}

static void chain_b_work_cb(tandem_work_t *req) {
  uint64_t deadline;
  uint64_t now;
  chain_t *c;

  c = req->data;
  deadline = uv_hrtime() + (uint64_t)2000000000u * timeout_multiplier();
  uv_mutex_lock(&c->mutex);
  while (!c->a_called) {
    now = uv_hrtime();
    if (now >= deadline) {
      atomic_store(&c->b_timed_out, 1);
      break;
    }
    uv_cond_timedwait(&c->cond, &c->mutex, deadline - now);
  }
  uv_mutex_unlock(&c->mutex);
}

static void chain_b_after_cb(tandem_work_t *req, int status) {
  chain_t *c;

  c = req->data;
  c->b_status = status;
  c->b_called++;
}

/* A finishes, then the same (only) worker starts B, which waits for A's
 * after callback: the loop must hear of A while B runs, not once B is
 * done -- else any job that waits for the loop deadlocks, and every job
 * delays the after callbacks of the jobs before it. */
START_TEST(test_after_callback_not_held_back_by_next_job) {
  tandem_options_t opts;
  fixture_t f;
  chain_t c;

  memset(&c, 0, sizeof(c));
  atomic_init(&c.b_timed_out, 0);
  c.a.data = &c;
  c.b.data = &c;
  ck_assert_int_eq(uv_sem_init(&c.b_queued, 0), 0);
  ck_assert_int_eq(uv_mutex_init(&c.mutex), 0);
  ck_assert_int_eq(uv_cond_init(&c.cond), 0);

  memset(&opts, 0, sizeof(opts));
  opts.workers = 1;
  opts.loop_spin_us = -1; /* the loop sleeps in epoll: it must be woken */
  fixture_open(&f, &opts);

  ck_assert_int_eq(
      tandem_queue_work(&f.tandem, &c.a, chain_a_work_cb, chain_a_after_cb), 0);
  ck_assert_int_eq(
      tandem_queue_work(&f.tandem, &c.b, chain_b_work_cb, chain_b_after_cb), 0);
  uv_sem_post(&c.b_queued);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);

  ck_assert_msg(!atomic_load(&c.b_timed_out),
                "A's after callback did not run while B was running");
  ck_assert_int_eq(c.a_called, 1);
  ck_assert_int_eq(c.a_status, 0);
  ck_assert_int_eq(c.b_called, 1);
  ck_assert_int_eq(c.b_status, 0);

  fixture_close(&f);
  uv_sem_destroy(&c.b_queued);
  uv_cond_destroy(&c.cond);
  uv_mutex_destroy(&c.mutex);
}
END_TEST

/* A job queued by an after callback while a worker searches goes to the
 * injection ring at once, so that the searcher starts it beside the rest
 * of that callback -- as a pipeline of "queue the next chunk, then handle
 * this result" needs -- and it is not held back until the drain ends
 * (loop.c, "deferred submits": only jobs nobody is looking for wait for
 * the drain's kick).  Whether a real worker still searches when the
 * callback runs is up to the machine, so the callback counts one searcher
 * more in the pool's idle word itself, around the queueing: then the job
 * must have a ring cell when tandem_queue_work returns.  The drain's kick
 * wakes a worker for it after. */
typedef struct beside_s {
  tandem_pool_t *pool;
  tandem_t *t;
  tandem_work_t first; /* empty; its after callback queues `next` */
  tandem_work_t next;
  atomic_int ran;
  int in_ring; /* `next` had a cell as tandem_queue_work returned */
  int next_called;
  int next_status;
} beside_t;

static void beside_empty_cb(tandem_work_t *req) {
  (void)req;
}

static void beside_next_cb(tandem_work_t *req) {
  atomic_fetch_add(&((beside_t *)req->data)->ran, 1);
}

static void beside_next_after_cb(tandem_work_t *req, int status) {
  beside_t *b = req->data;

  b->next_called++;
  b->next_status = status;
}

static void beside_first_after_cb(tandem_work_t *req, int status) {
  beside_t *b = req->data;
  uint64_t *counts = &b->pool->idle.counts;

  ck_assert_int_eq(status, 0);
  __atomic_fetch_add(counts, 1, __ATOMIC_SEQ_CST); /* a searcher */
  ck_assert_int_eq(tandem_queue_work(b->t, &b->next, beside_next_cb,
                                     beside_next_after_cb),
                   0);
  b->in_ring = __atomic_load_n(&b->next.cell_, __ATOMIC_RELAXED) != NULL;
  __atomic_fetch_sub(counts, 1, __ATOMIC_SEQ_CST);
}

START_TEST(test_job_from_after_callback_not_held_while_a_worker_searches) {
  tandem_options_t opts;
  fixture_t f;
  beside_t b;

  memset(&b, 0, sizeof(b));
  atomic_init(&b.ran, 0);
  memset(&opts, 0, sizeof(opts));
  opts.workers = 1;
  fixture_open(&f, &opts);
  b.pool = f.pool;
  b.t = &f.tandem;
  b.first.data = &b;
  b.next.data = &b;
  ck_assert_int_eq(tandem_queue_work(&f.tandem, &b.first, beside_empty_cb,
                                     beside_first_after_cb),
                   0);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_msg(b.in_ring, "a job queued by an after callback while a "
                           "worker searched was held back in the drain");
  ck_assert_int_eq(atomic_load(&b.ran), 1);
  ck_assert_int_eq(b.next_called, 1);
  ck_assert_int_eq(b.next_status, 0);
  fixture_close(&f);
}
END_TEST

static Suite *queue_work_suite(void) {
  TCase *tc;
  Suite *s;

  s = suite_create("queue_work");

  tc = tcase_create("million");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_million_jobs_from_loop_and_four_threads);
  suite_add_tcase(s, tc);

  tc = tcase_create("nested");
  tcase_set_timeout(tc, 15);
  tcase_add_test(tc, test_jobs_queued_from_worker_complete);
  tcase_add_test(tc, test_request_requeued_from_its_after_callback);
  tcase_add_test(tc, test_request_freed_in_its_after_callback);
  suite_add_tcase(s, tc);

  tc = tcase_create("lifetime");
  tcase_set_timeout(tc, 15);
  tcase_add_test(tc, test_run_returns_after_every_loop_job_is_called_back);
  tcase_add_test(tc, test_idle_tandem_does_not_keep_loop_alive);
  tcase_add_test(tc, test_null_pool_means_default_pool);
  tcase_add_test(tc, test_null_after_callback_runs_work);
  tcase_add_test(tc, test_after_callback_not_held_back_by_next_job);
  tcase_add_test(tc,
                 test_job_from_after_callback_not_held_while_a_worker_searches);
  suite_add_tcase(s, tc);

  return s;
}

int main(void) {
  return suite_run(queue_work_suite());
}
