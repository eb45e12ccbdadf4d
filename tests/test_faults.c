/* SPDX-License-Identifier: MIT */
/*
 * Faults: every call a constructor makes that can fail -- an allocation, a
 * thread start, an eventfd, a poll watcher -- made to fail in turn
 * (fault_inject.h says how).  A failure must come back as the documented
 * error and leave nothing behind: no memory, no thread, no descriptor, no
 * half-made default pool.  Then the same call, with the fault gone, must
 * succeed and give an object that works.
 *
 * main() first counts, in a child process per constructor, the fallible
 * calls a successful construction makes; then call N fails in test N, for
 * every N.  Check forks every test, so each starts without a default pool
 * (main never makes one: a process keeps it until it exits).
 */
#include <check.h>
#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_inject.h"
#include "run_until.h"
#include "suite_run.h"
#include "tandem.h"

#ifdef TANDEM_TSAN
/* Every test's process exits with the default pool's workers running, and
 * ThreadSanitizer then sleeps atexit_sleep_ms (1 s) in each: 30 s of
 * nothing.  TSAN_OPTIONS from the environment still win.  (Exported:
 * the runtime, a shared library, looks it up.) */
__attribute__((visibility("default"))) const char *
__tsan_default_options(void) {
  return "atexit_sleep_ms=0";
}
#endif

/* tandem_pool_default()'s NULL, as a return code. */
#define RC_NULL 1

static const char *rc_name(int rc) {
  if (rc == 0)
    return "0";
  if (rc == RC_NULL)
    return "NULL";
  return uv_err_name(rc);
}

/* ------------------------------------------------- what the process holds */

typedef struct holding_s {
  long live;   /* allocations tandem made in windows and still holds */
  int threads; /* entries of /proc/self/task */
  int fds;     /* open descriptors */
} holding_t;

static int count_entries(const char *path) {
  struct dirent *e;
  DIR *dir;
  int n;

  dir = opendir(path);
  if (dir == NULL)
    abort();
  n = 0;
  while ((e = readdir(dir)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(dir);
  return n;
}

static int count_threads(void) {
  return count_entries("/proc/self/task");
}

static int count_fds(void) {
  return count_entries("/proc/self/fd") - 1; /* opendir's own */
}

/* The count once it has stopped falling for 10 ms: threads joined just
 * before (by the previous case) and a descriptor a worker holds for a
 * moment must not be counted in a reference (seen in the chaos build:
 * "at the end, 1 threads, want 2"). */
static int lowest(int (*count)(void)) {
  int n = count(), m, quiet = 0;
  unsigned i;

  for (i = 0; i < 1000 && quiet < 10; i++) {
    uv_sleep(1);
    m = count();
    quiet = m < n ? 0 : quiet + 1;
    if (m < n)
      n = m;
  }
  return n;
}

static void holding(holding_t *h) {
  h->live = fault_live();
  h->threads = lowest(count_threads);
  h->fds = lowest(count_fds);
}

/* Counts until the count is `want` or a deadline passes.  A joined thread
 * leaves /proc/self/task a moment after pthread_join returns, and a worker
 * may hold /proc/loadavg open for a moment (renice.c). */
static int settle(int (*count)(void), int want) {
  uint64_t deadline;
  int n;

  deadline = uv_hrtime() + (uint64_t)2000 * 1000 * 1000 * timeout_multiplier();
  while ((n = count()) != want && uv_hrtime() < deadline)
    uv_sleep(1);
  return n;
}

/* ----------------------------------------------------------- fixtures */

typedef struct fixture_s {
  uv_loop_t loop;
  tandem_t t;
  tandem_pool_t *pool;
  tandem_group_t g;
  tandem_work_t req;
  tandem_task_t tasks[2];
  atomic_int ran;   /* work callbacks and tasks run */
  int after_calls;  /* loop thread only */
  int after_status; /* loop thread only */
  int closed;       /* loop thread only */
} fixture_t;

static void noop(void *arg) {
  (void)arg;
}

static void fixture_init(fixture_t *f) {
  uv_thread_t thread;

  memset(f, 0, sizeof(*f));
  f->t.data = f;
  f->req.data = f;
  /* Start and join a thread before anything is counted: ThreadSanitizer
   * starts a thread of its own at a process's first thread start, which
   * would look like one tandem left behind. */
  if (uv_thread_create(&thread, noop, NULL) != 0 || uv_thread_join(&thread))
    abort();
  if (uv_loop_init(&f->loop) != 0)
    abort();
}

static void work_cb(tandem_work_t *req) {
  fixture_t *f = req->data;
  atomic_fetch_add(&f->ran, 1);
}

/* No Check assertion in callbacks: they run inside fault windows. */
static void after_cb(tandem_work_t *req, int status) {
  fixture_t *f = req->data;
  f->after_calls++;
  f->after_status = status;
}

static void task_cb(tandem_task_t *task) {
  fixture_t *f = task->data;
  atomic_fetch_add(&f->ran, 1);
}

static void on_closed(tandem_t *t) {
  fixture_t *f = t->data;
  f->closed = 1;
}

/* One job on f->t: its after callback must run once, with status 0. */
static const char *run_job(fixture_t *f) {
  if (tandem_queue_work(&f->t, &f->req, work_cb, after_cb) != 0)
    return "tandem_queue_work failed";
  (void)uv_run(&f->loop, UV_RUN_DEFAULT); /* the job keeps it running */
  if (f->after_calls != 1 || f->after_status != 0 || atomic_load(&f->ran) != 1)
    return "the job's after callback did not run once with status 0";
  return NULL;
}

/* Two tasks in f->g: both must run. */
static const char *run_group(fixture_t *f) {
  unsigned i;

  for (i = 0; i < 2; i++) {
    f->tasks[i].data = f;
    if (tandem_group_spawn(&f->g, &f->tasks[i], task_cb) != 0)
      return "tandem_group_spawn failed";
  }
  if (tandem_group_wait(&f->g) != 0)
    return "tandem_group_wait failed";
  if (atomic_load(&f->ran) != 2)
    return "the group's tasks did not both run";
  return NULL;
}

static int close_handle(fixture_t *f) {
  tandem_close(&f->t, on_closed);
  (void)uv_run(&f->loop, UV_RUN_DEFAULT);
  return f->closed ? 0 : UV_EBUSY;
}

/* ------------------------------------------------------ the constructors */

typedef struct path_s path_t;

typedef struct probe_s {
  int reported; /* the counting child wrote this */
  int rc;       /* what the constructor returned there */
  unsigned calls;
  unsigned kinds[FAULT_NKINDS];
  holding_t made; /* what a construction added (live, threads) */
} probe_t;

struct path_s {
  const char *case_name;
  const char *call;
  const tandem_options_t *opts; /* tandem_pool_new's options */
  int on_default;               /* makes the default pool */
  int null_on_error;            /* reports failure as NULL */
  /* before (may be NULL), the constructor, whether the object works, and
   * what frees everything (may be NULL) */
  int (*setup)(fixture_t *f, const path_t *p);
  int (*make)(fixture_t *f, const path_t *p);
  const char *(*use)(fixture_t *f);
  int (*undo)(fixture_t *f);
  probe_t probe; /* main's count */
  int probe_status;
};

static const tandem_options_t one_worker = {.workers = 1};
static const tandem_options_t three_parking_workers = {
    .workers = 3, .worker_spin_us = -1, .loop_spin_us = -1, .queue_size = 16};

static int make_pool(fixture_t *f, const path_t *p) {
  return tandem_pool_new(&f->pool, p->opts);
}

static const char *use_pool(fixture_t *f) {
  if (tandem_init(&f->loop, &f->t, f->pool) != 0)
    return "tandem_init on the new pool failed";
  return run_job(f);
}

static int undo_pool(fixture_t *f) {
  int err;

  err = close_handle(f);
  return err != 0 ? err : tandem_pool_free(f->pool);
}

static int make_init(fixture_t *f, const path_t *p) {
  return tandem_init(&f->loop, &f->t, p->on_default ? NULL : f->pool);
}

static int undo_init(fixture_t *f) {
  return close_handle(f);
}

static int undo_init_given(fixture_t *f) {
  int err;

  err = close_handle(f);
  /* UV_EBUSY here: a failed tandem_init left the pool counted as in use. */
  return err != 0 ? err : tandem_pool_free(f->pool);
}

static int make_group(fixture_t *f, const path_t *p) {
  (void)p;
  return tandem_group_init(&f->g, NULL);
}

static int make_default(fixture_t *f, const path_t *p) {
  (void)p;
  f->pool = tandem_pool_default();
  return f->pool != NULL ? 0 : RC_NULL;
}

static const char *use_default(fixture_t *f) {
  if (tandem_group_init(&f->g, f->pool) != 0)
    return "tandem_group_init on the default pool failed";
  return run_group(f);
}

enum {
  P_POOL_NEW_DEFAULTS,
  P_POOL_NEW_1,
  P_POOL_NEW_3,
  P_INIT_GIVEN,
  P_INIT_DEFAULT,
  P_GROUP_DEFAULT,
  P_POOL_DEFAULT,
  NPATHS
};

static path_t paths[NPATHS] = {
    [P_POOL_NEW_DEFAULTS] = {.case_name = "pool_new_defaults",
                             .call = "tandem_pool_new(&pool, NULL)",
                             .make = make_pool,
                             .use = use_pool,
                             .undo = undo_pool},
    [P_POOL_NEW_1] = {.case_name = "pool_new_one_worker",
                      .call = "tandem_pool_new(&pool, {.workers = 1})",
                      .opts = &one_worker,
                      .make = make_pool,
                      .use = use_pool,
                      .undo = undo_pool},
    [P_POOL_NEW_3] = {.case_name = "pool_new_three_workers",
                      .call = "tandem_pool_new(&pool, {.workers = 3, ...})",
                      .opts = &three_parking_workers,
                      .make = make_pool,
                      .use = use_pool,
                      .undo = undo_pool},
    [P_INIT_GIVEN] = {.case_name = "init_given_pool",
                      .call = "tandem_init(loop, t, pool)",
                      .opts = &one_worker,
                      .setup = make_pool,
                      .make = make_init,
                      .use = run_job,
                      .undo = undo_init_given},
    [P_INIT_DEFAULT] = {.case_name = "init_default_pool",
                        .call = "tandem_init(loop, t, NULL)",
                        .on_default = 1,
                        .make = make_init,
                        .use = run_job,
                        .undo = undo_init},
    [P_GROUP_DEFAULT] = {.case_name = "group_init_default_pool",
                         .call = "tandem_group_init(g, NULL)",
                         .on_default = 1,
                         .make = make_group,
                         .use = run_group},
    [P_POOL_DEFAULT] = {.case_name = "pool_default",
                        .call = "tandem_pool_default()",
                        .on_default = 1,
                        .null_on_error = 1,
                        .make = make_default,
                        .use = use_default},
};

/* What the default pool holds once made: counted by main (a child). */
static holding_t default_pool;

/* The error `p` documents when a call of `kind` fails. */
static int wanted(const path_t *p, int kind) {
  if (p->null_on_error)
    return RC_NULL;
  switch (kind) {
  case FAULT_THREAD:
    return UV_EAGAIN; /* the thread start's own error, passed on */
  case FAULT_EVENTFD:
    return UV_EMFILE;
  case FAULT_POLL_INIT:
    return UV_ENOSPC;
  default:
    return UV_ENOMEM;
  }
}

/* The process holds what it held at `ref`, plus the default pool if
 * `with_default`: nothing else.  `what` names the fault. */
static void expect_holding(const char *what, const char *when,
                           const holding_t *ref, int with_default) {
  long live;
  int threads;
  int now;

  live = ref->live + (with_default ? default_pool.live : 0);
  ck_assert_msg(fault_live() == live,
                "%s: %s, tandem holds %ld allocation(s), want %ld", what, when,
                fault_live(), live);
  threads = ref->threads + (with_default ? default_pool.threads : 0);
  now = settle(count_threads, threads);
  ck_assert_msg(now == threads, "%s: %s, %d threads, want %d", what, when, now,
                threads);
  now = settle(count_fds, ref->fds);
  ck_assert_msg(now == ref->fds, "%s: %s, %d descriptors, want %d", what, when,
                now, ref->fds);
}

/* Fails call n of p's constructor, then checks the error, what is left,
 * and that the same call then succeeds and works. */
static void run_fault(const path_t *p, unsigned n) {
  const char *broken;
  holding_t base;
  holding_t pre;
  fixture_t f;
  char what[160];
  unsigned calls;
  int made;
  int kind;
  int rc;

  fixture_init(&f);
  fault_reset();
  holding(&base);
  if (p->setup != NULL) {
    fault_start(0);
    rc = p->setup(&f, p);
    fault_stop();
    ck_assert_msg(rc == 0, "%s: setup failed: %s", p->call, rc_name(rc));
  }
  holding(&pre);

  fault_start(n);
  rc = p->make(&f, p);
  calls = fault_stop();
  kind = fault_injected();
  ck_assert_msg(kind >= 0, "%s: call %u never came (%u calls, %s)", p->call, n,
                calls, rc_name(rc));
  snprintf(what, sizeof(what), "%s, call %u (%s) failed", p->call, n,
           fault_kind_name(kind));
  ck_assert_msg(rc == wanted(p, kind), "%s: returned %s, want %s", what,
                rc_name(rc), rc_name(wanted(p, kind)));
  /* The default pool may stay, if it was made before the failed call. */
  made = p->on_default && fault_live() - pre.live == default_pool.live;
  expect_holding(what, "after the failure", &pre, made);

  fault_start(0);
  rc = p->make(&f, p);
  fault_stop();
  ck_assert_msg(rc == 0, "%s: the next call, with no fault, returned %s", what,
                rc_name(rc));
  fault_start(0);
  broken = p->use(&f);
  rc = broken == NULL && p->undo != NULL ? p->undo(&f) : 0;
  fault_stop();
  ck_assert_msg(broken == NULL, "%s: the next call's object fails: %s", what,
                broken);
  ck_assert_msg(rc == 0, "%s: cannot undo the next call: %s", what,
                rc_name(rc));
  expect_holding(what, "at the end", &base, p->on_default);
  ck_assert_int_eq(uv_loop_close(&f.loop), 0);
}

/* clang-format off */
#define FAULT_TEST(name, path)                                                 \
  START_TEST(name) {                                                           \
    run_fault(&paths[path], (unsigned)_i);                                     \
  }                                                                            \
  END_TEST
/* clang-format on */

FAULT_TEST(test_pool_new_defaults_fails_cleanly, P_POOL_NEW_DEFAULTS)
FAULT_TEST(test_pool_new_one_worker_fails_cleanly, P_POOL_NEW_1)
FAULT_TEST(test_pool_new_three_workers_fails_cleanly, P_POOL_NEW_3)
FAULT_TEST(test_init_given_pool_fails_cleanly, P_INIT_GIVEN)
FAULT_TEST(test_init_default_pool_fails_cleanly_and_retries, P_INIT_DEFAULT)
FAULT_TEST(test_group_default_pool_fails_cleanly_and_retries, P_GROUP_DEFAULT)
FAULT_TEST(test_pool_default_fails_cleanly_and_retries, P_POOL_DEFAULT)

/* ------------------------------------------------------------ counting */

/* In a child: makes p's object with no fault, reports what it took. */
static void probe_child(const path_t *p, int fd) {
  holding_t pre;
  holding_t now;
  fixture_t f;
  probe_t r;
  unsigned k;

  memset(&r, 0, sizeof(r));
  fixture_init(&f);
  fault_reset();
  if (p->setup != NULL) {
    fault_start(0);
    r.rc = p->setup(&f, p);
    fault_stop();
  }
  if (r.rc == 0) {
    holding(&pre);
    fault_start(0);
    r.rc = p->make(&f, p);
    r.calls = fault_stop();
    holding(&now);
    for (k = 0; k < FAULT_NKINDS; k++)
      r.kinds[k] = fault_calls(k);
    r.made.live = now.live - pre.live;
    r.made.threads = now.threads - pre.threads;
  }
  r.reported = 1;
  if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
    _exit(1);
  _exit(0); /* no exit handlers: the default pool may be running */
}

/* Counts p's fallible calls in a child process, so that this one never
 * makes the default pool (each test's fork would inherit it). */
static void probe(path_t *p) {
  ssize_t got;
  pid_t pid;
  int fds[2];

  memset(&p->probe, 0, sizeof(p->probe));
  if (pipe(fds) != 0)
    abort();
  fflush(NULL);
  pid = fork();
  if (pid < 0)
    abort();
  if (pid == 0) {
    close(fds[0]);
    probe_child(p, fds[1]);
  }
  close(fds[1]);
  got = read(fds[0], &p->probe, sizeof(p->probe));
  if (got != (ssize_t)sizeof(p->probe))
    memset(&p->probe, 0, sizeof(p->probe));
  close(fds[0]);
  if (waitpid(pid, &p->probe_status, 0) != pid)
    abort();
}

static unsigned online_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

/* Every constructor was counted, and the wrappers saw the calls that
 * tandem makes: if --wrap stopped reaching tandem's objects, the suite
 * would inject nothing and pass. */
START_TEST(test_wrappers_see_every_constructor) {
  const path_t *p;
  unsigned allocs;
  unsigned i;

  for (i = 0; i < NPATHS; i++) {
    p = &paths[i];
    ck_assert_msg(p->probe.reported,
                  "%s: the counting child died (wait status %#x)", p->call,
                  (unsigned)p->probe_status);
    ck_assert_msg(p->probe.rc == 0, "%s failed with no fault: %s", p->call,
                  rc_name(p->probe.rc));
    ck_assert_msg(p->probe.calls > 0, "%s: no call seen", p->call);
  }
  for (i = P_POOL_NEW_DEFAULTS; i <= P_POOL_NEW_3; i++) {
    p = &paths[i];
    allocs = p->probe.kinds[FAULT_MALLOC] + p->probe.kinds[FAULT_CALLOC] +
             p->probe.kinds[FAULT_MEMALIGN];
    ck_assert_msg(allocs > 0, "%s: no allocation seen", p->call);
    ck_assert_uint_eq(p->probe.kinds[FAULT_THREAD],
                      p->opts != NULL ? p->opts->workers : online_cpus());
    ck_assert_uint_eq((unsigned)p->probe.made.threads,
                      p->probe.kinds[FAULT_THREAD]);
  }
  ck_assert_uint_eq(paths[P_INIT_GIVEN].probe.kinds[FAULT_EVENTFD], 1);
  ck_assert_uint_eq(paths[P_INIT_DEFAULT].probe.kinds[FAULT_EVENTFD], 1);
  ck_assert_int_gt(default_pool.live, 0);
  ck_assert_int_eq(default_pool.threads, (int)online_cpus());
}
END_TEST

/* ---------------------------------------------------------------- main */

static int forking(void) {
  const char *s = getenv("CK_FORK");
  return s == NULL || strcmp(s, "no") != 0;
}

static Suite *faults_suite(unsigned *total) {
  const TTest *tests[NPATHS];
  const path_t *p;
  TCase *tc;
  Suite *s;
  unsigned i;

  tests[P_POOL_NEW_DEFAULTS] = test_pool_new_defaults_fails_cleanly;
  tests[P_POOL_NEW_1] = test_pool_new_one_worker_fails_cleanly;
  tests[P_POOL_NEW_3] = test_pool_new_three_workers_fails_cleanly;
  tests[P_INIT_GIVEN] = test_init_given_pool_fails_cleanly;
  tests[P_INIT_DEFAULT] = test_init_default_pool_fails_cleanly_and_retries;
  tests[P_GROUP_DEFAULT] = test_group_default_pool_fails_cleanly_and_retries;
  tests[P_POOL_DEFAULT] = test_pool_default_fails_cleanly_and_retries;

  s = suite_create("faults");

  tc = tcase_create("counts");
  tcase_add_test(tc, test_wrappers_see_every_constructor);
  suite_add_tcase(s, tc);

  *total = 0;
  for (i = 0; i < NPATHS; i++) {
    p = &paths[i];
    if (p->on_default && !forking())
      continue; /* each needs a process of its own */
    tc = tcase_create(p->case_name);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, tests[i], 1, (int)p->probe.calls + 1);
    suite_add_tcase(s, tc);
    *total += p->probe.calls;
  }
  return s;
}

int main(void) {
  const path_t *p;
  unsigned total;
  unsigned i;
  Suite *s;
  int k;

  for (i = 0; i < NPATHS; i++)
    probe(&paths[i]);
  default_pool = paths[P_POOL_DEFAULT].probe.made;
  s = faults_suite(&total);
  for (i = 0; i < NPATHS; i++) {
    p = &paths[i];
    printf("faults: %-44s %2u calls:", p->call, p->probe.calls);
    for (k = 0; k < FAULT_NKINDS; k++)
      if (p->probe.kinds[k] != 0)
        printf(" %s %u", fault_kind_name(k), p->probe.kinds[k]);
    if (p->on_default && !forking())
      printf(" (skipped: CK_FORK=no)");
    printf("\n");
  }
  printf("faults: %u faults to inject\n", total);
  fflush(stdout);
  return suite_run(s);
}
