/* SPDX-License-Identifier: MIT */
/*
 * fork(): a child either works on a fresh default pool or gets UV_ESRCH
 * from a pool (or handle) it inherited -- never a hang (defect F4: the
 * inherited workers do not exist in the child, and a job queued there
 * waited forever).
 *
 * Each test forks a child that checks itself and _exit()s with 0 or the
 * line of the first check that failed; the parent waits for it with a
 * deadline, so a hang in the child fails the test instead of stalling it.
 */
#include <check.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "suite_run.h"
#include "tandem.h"
#include "worker_gate.h"

/* In a child: on failure, say where and exit with the line number. */
#define CHILD_CHECK(cond)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "child: %s:%d: %s failed\n", __FILE__, __LINE__, #cond); \
      _exit(__LINE__ % 250 + 1);                                               \
    }                                                                          \
  } while (0)

/* Parent: waits up to `secs` for `pid`; kills it on timeout.  Returns its
 * exit status, or -1 for a hang, -2 for a signal. */
static int wait_child(pid_t pid, unsigned secs) {
  unsigned ms;
  int status;
  pid_t r;

  for (ms = 0; ms < secs * 1000; ms += 5) {
    r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status))
        return WEXITSTATUS(status);
      return -2;
    }
    uv_sleep(5);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

static void add_one(tandem_work_t *req) {
  atomic_fetch_add((atomic_int *)req->data, 1);
}

static int afters;
static int last_status;

static void count_after(tandem_work_t *req, int status) {
  (void)req;
  afters++;
  last_status = status;
}

static void add_range(size_t lo, size_t hi, void *ctx) {
  atomic_fetch_add((atomic_long *)ctx, (long)(hi - lo));
}

static void add_one_arg(void *arg) {
  atomic_fetch_add((atomic_int *)arg, 1);
}

/* The child's whole use of the default pool: a job from a new loop, a
 * join and a parallel_for from this (non-worker) thread. */
static void child_uses_default_pool(tandem_pool_t *parent_default) {
  fixture_t f;
  tandem_work_t req;
  atomic_int ran = 0;
  atomic_int joined = 0;
  atomic_long sum = 0;

  CHILD_CHECK(fixture_loop_open(&f, NULL) == 0); /* the default pool */
  CHILD_CHECK(f.tandem.pool != parent_default);
  CHILD_CHECK(tandem_pool_default() == f.tandem.pool);
  memset(&req, 0, sizeof(req));
  req.data = &ran;
  afters = 0;
  CHILD_CHECK(tandem_queue_work(&f.tandem, &req, add_one, count_after) == 0);
  CHILD_CHECK(uv_run(&f.loop, UV_RUN_DEFAULT) == 0);
  CHILD_CHECK(afters == 1 && last_status == 0 && atomic_load(&ran) == 1);
  tandem_join(add_one_arg, &joined, add_one_arg, &joined);
  CHILD_CHECK(atomic_load(&joined) == 2);
  CHILD_CHECK(tandem_parallel_for(NULL, 0, 1000, 10, add_range, &sum) == 0);
  CHILD_CHECK(atomic_load(&sum) == 1000);
  CHILD_CHECK(fixture_loop_close(&f) == 0);
}

START_TEST(test_child_gets_a_fresh_default_pool) {
  fixture_t f;
  tandem_work_t req;
  atomic_int ran = 0;
  tandem_pool_t *def;
  pid_t pid;

  /* The parent made and used the default pool before forking. */
  ck_assert_msg(fixture_loop_open(&f, NULL) == 0, "%s", f.error);
  def = f.tandem.pool;
  memset(&req, 0, sizeof(req));
  req.data = &ran;
  ck_assert_int_eq(tandem_queue_work(&f.tandem, &req, add_one, count_after),
                   0);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);

  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    child_uses_default_pool(def);
    /* A grandchild too: the default pool is made anew once more. */
    pid = fork();
    CHILD_CHECK(pid >= 0);
    if (pid == 0) {
      child_uses_default_pool(def);
      _exit(0);
    }
    CHILD_CHECK(wait_child(pid, 30) == 0);
    _exit(0);
  }
  ck_assert_int_eq(wait_child(pid, 60), 0);

  /* The parent's pool still works. */
  ck_assert_ptr_eq(tandem_pool_default(), def);
  ck_assert_int_eq(tandem_queue_work(&f.tandem, &req, add_one, count_after),
                   0);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(atomic_load(&ran), 2);
  /* The default pool stays: the fixture closes the loop only. */
  ck_assert_msg(fixture_loop_close(&f) == 0, "%s", f.error);
}
END_TEST

static int closed;

static void count_close(tandem_t *t) {
  (void)t;
  closed++;
}

static void never_task(tandem_task_t *task) {
  (void)task;
  _exit(99);
}

/* The parent forks with jobs in flight on a pool of its own: one running
 * (held by a gate), one waiting in the ring.  The child is refused every
 * use of that pool and handle, closes the handle and frees the pool; the
 * parent's jobs all come home in the parent. */
START_TEST(test_child_refuses_an_inherited_pool) {
  tandem_options_t opts;
  worker_gate_t gate;
  fixture_t f;
  tandem_work_t req;
  atomic_int ran = 0;
  pid_t pid;

  opts = fixture_options(1);
  fixture_open(&f, &opts);
  ck_assert_int_eq(worker_gate_block(&gate, &f.tandem), 0);
  memset(&req, 0, sizeof(req));
  req.data = &ran;
  afters = 0;
  ck_assert_int_eq(tandem_queue_work(&f.tandem, &req, add_one, count_after),
                   0);

  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    uv_loop_t loop2;
    tandem_t t2;
    tandem_work_t req2;
    tandem_group_t g;
    atomic_long sum = 0;

    memset(&req2, 0, sizeof(req2));
    CHILD_CHECK(uv_loop_fork(&f.loop) == 0);
    CHILD_CHECK(tandem_queue_work(&f.tandem, &req2, add_one, count_after) ==
                UV_ESRCH);
    CHILD_CHECK(tandem_parallel_for_async(&f.tandem, &req2, 0, 10, 1, add_range,
                                          &sum, count_after) == UV_ESRCH);
    CHILD_CHECK(uv_loop_init(&loop2) == 0);
    CHILD_CHECK(tandem_init(&loop2, &t2, f.pool) == UV_ESRCH);
    CHILD_CHECK(uv_loop_close(&loop2) == 0);
    CHILD_CHECK(tandem_group_init(&g, f.pool) == UV_ESRCH);
    CHILD_CHECK(tandem_parallel_for(f.pool, 0, 10, 1, add_range, &sum) ==
                UV_ESRCH);
    CHILD_CHECK(atomic_load(&sum) == 0);
    /* A pool still attached to a handle is not freed... */
    CHILD_CHECK(tandem_pool_free(f.pool) == UV_EBUSY);
    /* ...and the inherited handle closes at once: its jobs in flight were
     * the parent's. */
    closed = 0;
    tandem_close(&f.tandem, count_close);
    CHILD_CHECK(uv_run(&f.loop, UV_RUN_DEFAULT) == 0);
    CHILD_CHECK(closed == 1);
    CHILD_CHECK(afters == 0);
    CHILD_CHECK(uv_loop_close(&f.loop) == 0);
    CHILD_CHECK(tandem_pool_free(f.pool) == 0);
    _exit(0);
  }
  ck_assert_int_eq(wait_child(pid, 60), 0);

  /* Everything the parent had in flight comes home in the parent. */
  worker_gate_open(&gate);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_uint_eq(gate.finished, gate.n);
  ck_assert_int_eq(afters, 1);
  ck_assert_int_eq(last_status, 0);
  ck_assert_int_eq(atomic_load(&ran), 1);
  worker_gate_destroy(&gate);
  fixture_close(&f);
}
END_TEST

/* A group made in the parent cannot be waited on in the child: its tasks
 * are the parent's. */
START_TEST(test_child_refuses_an_inherited_group) {
  tandem_pool_t *pool;
  tandem_group_t g;
  tandem_task_t task;
  pid_t pid;

  pool = fixture_pool(1);
  ck_assert_int_eq(tandem_group_init(&g, pool), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    CHILD_CHECK(tandem_group_spawn(&g, &task, never_task) == UV_ESRCH);
    CHILD_CHECK(tandem_group_wait(&g) == UV_ESRCH);
    _exit(0);
  }
  ck_assert_int_eq(wait_child(pid, 30), 0);
  ck_assert_int_eq(tandem_group_wait(&g), 0);
  ck_assert_int_eq(tandem_pool_free(pool), 0);
}
END_TEST

/* fork() from inside a job: in the child the forking thread is no worker,
 * and fork-join calls go to a fresh default pool. */
static atomic_int fork_in_job_result;

static void fork_in_job(tandem_work_t *req) {
  atomic_int joined = 0;
  pid_t pid;

  (void)req;
  pid = fork();
  if (pid == 0) {
    tandem_join(add_one_arg, &joined, add_one_arg, &joined);
    CHILD_CHECK(atomic_load(&joined) == 2);
    _exit(0);
  }
  atomic_store(&fork_in_job_result, pid < 0 ? -3 : wait_child(pid, 30));
}

START_TEST(test_fork_from_inside_a_job) {
  tandem_options_t opts;
  fixture_t f;
  tandem_work_t req;

  opts = fixture_options(2);
  fixture_open(&f, &opts);
  memset(&req, 0, sizeof(req));
  atomic_store(&fork_in_job_result, 100);
  afters = 0;
  ck_assert_int_eq(
      tandem_queue_work(&f.tandem, &req, fork_in_job, count_after), 0);
  ck_assert_int_eq(uv_run(&f.loop, UV_RUN_DEFAULT), 0);
  ck_assert_int_eq(afters, 1);
  ck_assert_int_eq(atomic_load(&fork_in_job_result), 0);
  fixture_close(&f);
}
END_TEST

static Suite *fork_suite(void) {
  Suite *s = suite_create("fork");
  TCase *tc = tcase_create("fork");

  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_child_gets_a_fresh_default_pool);
  tcase_add_test(tc, test_child_refuses_an_inherited_pool);
  tcase_add_test(tc, test_child_refuses_an_inherited_group);
  tcase_add_test(tc, test_fork_from_inside_a_job);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  return suite_run(fork_suite());
}
