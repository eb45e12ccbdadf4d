/* SPDX-License-Identifier: MIT */
/*
 * test_sizing.c: the default pool size (src/sizing.c) -- the cgroup v2
 * quota read from fake cgroup trees made in a temporary directory, the
 * TANDEM_WORKERS variable and its refusals, the affinity mask, and, where
 * this process may make cgroups, a real cpu.max quota.
 *
 * Each test runs in a process of its own (Check's fork mode), so a
 * setenv or sched_setaffinity stays inside it; setup and teardown clear
 * TANDEM_WORKERS and restore the mask all the same, for CK_FORK=no.
 *
 * The "wired" case goes through the public API: it holds once pool.c
 * sizes its default pool with tandem__default_workers and names its
 * workers with tandem__name_thread.
 */
#define _GNU_SOURCE /* sched_setaffinity, CPU_*, pthread_*name_np */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "renice.h"
#include "sizing.h"
#include "suite_run.h"
#include "threads_named.h"
#include "tandem.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static cpu_set_t saved_mask;

static void setup(void) {
  ck_assert_int_eq(sched_getaffinity(0, sizeof(saved_mask), &saved_mask), 0);
  unsetenv("TANDEM_WORKERS");
}

static void teardown(void) {
  (void)sched_setaffinity(0, sizeof(saved_mask), &saved_mask);
  unsetenv("TANDEM_WORKERS");
}

/* ------------------------------------------------------ fake cgroup trees */

/* A temporary directory holding a fake cgroup mount, "<dir>/fs", and a
 * fake /proc/self/cgroup, "<dir>/self". */
typedef struct fake_s {
  char dir[64];
  char root[96];
  char self[96];
} fake_t;

static void write_text(const char *path, const char *text) {
  FILE *f;

  f = fopen(path, "w");
  ck_assert_msg(f != NULL, "fopen %s: %s", path, strerror(errno));
  ck_assert_int_ge(fputs(text, f), 0);
  ck_assert_int_eq(fclose(f), 0);
}

static void fake_make(fake_t *f) {
  strcpy(f->dir, "/tmp/test_sizing.XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(f->dir));
  snprintf(f->root, sizeof(f->root), "%s/fs", f->dir);
  snprintf(f->self, sizeof(f->self), "%s/self", f->dir);
  ck_assert_int_eq(mkdir(f->root, 0700), 0);
}

/* Makes the cgroup `cg` ("/a/b") in the fake mount, with cpu.max holding
 * `max` (NULL: no cpu.max), and its parents (without one, unless made
 * before). */
static void fake_cgroup(fake_t *f, const char *cg, const char *max) {
  char path[256];
  size_t i;
  int len;

  len = snprintf(path, sizeof(path), "%s%s", f->root, cg);
  ck_assert_int_lt(len, (int)sizeof(path));
  for (i = strlen(f->root) + 1; i <= (size_t)len; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    path[i] = '\0';
    ck_assert_msg(mkdir(path, 0700) == 0 || errno == EEXIST, "mkdir %s: %s",
                  path, strerror(errno));
    if (i < (size_t)len)
      path[i] = '/';
  }
  if (max != NULL) {
    ck_assert_int_lt(snprintf(path, sizeof(path), "%s%s/cpu.max", f->root,
                              strcmp(cg, "/") == 0 ? "" : cg),
                     (int)sizeof(path));
    write_text(path, max);
  }
}

/* Says the process sits in cgroup `cg`, as /proc/self/cgroup does on a
 * cgroup v2 host. */
static void fake_self(fake_t *f, const char *cg) {
  char text[256];

  snprintf(text, sizeof(text), "0::%s\n", cg);
  write_text(f->self, text);
}

static void fake_remove(fake_t *f) {
  char cmd[128];

  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
  ck_assert_int_eq(system(cmd), 0);
}

/* The quota of a process in `cg` whose cpu.max holds `max`. */
static unsigned one_level(const char *max) {
  fake_t f;
  unsigned n;

  fake_make(&f);
  fake_cgroup(&f, "/app", max);
  fake_self(&f, "/app");
  n = tandem__cgroup_cpus(f.root, f.self);
  fake_remove(&f);
  return n;
}

START_TEST(test_cgroup_max_is_no_limit) {
  ck_assert_uint_eq(one_level("max 100000\n"), 0);
}
END_TEST

START_TEST(test_cgroup_quota_rounds_up) {
  ck_assert_uint_eq(one_level("150000 100000\n"), 2);
  ck_assert_uint_eq(one_level("100000 100000\n"), 1);
  ck_assert_uint_eq(one_level("50000 100000\n"), 1);
  ck_assert_uint_eq(one_level("400000 100000"), 4); /* no newline */
}
END_TEST

/* A limit set on a parent holds its children, which may set none... */
START_TEST(test_cgroup_parent_limit_applies) {
  fake_t f;

  fake_make(&f);
  fake_cgroup(&f, "/kube", "200000 100000\n");
  fake_cgroup(&f, "/kube/pod/app", "max 100000\n");
  fake_self(&f, "/kube/pod/app");
  ck_assert_uint_eq(tandem__cgroup_cpus(f.root, f.self), 2);
  fake_remove(&f);
}
END_TEST

/* ...or a looser one: the smallest counts. */
START_TEST(test_cgroup_smallest_limit_wins) {
  fake_t f;

  fake_make(&f);
  fake_cgroup(&f, "/parent", "100000 100000\n");
  fake_cgroup(&f, "/parent/child", "400000 100000\n");
  fake_self(&f, "/parent/child");
  ck_assert_uint_eq(tandem__cgroup_cpus(f.root, f.self), 1);
  fake_remove(&f);
}
END_TEST

/* In a container's cgroup namespace the process is at "/", and its limit
 * is on the mount's top directory. */
START_TEST(test_cgroup_namespace_root_limit) {
  fake_t f;

  fake_make(&f);
  fake_cgroup(&f, "/", "300000 100000\n");
  fake_self(&f, "/");
  ck_assert_uint_eq(tandem__cgroup_cpus(f.root, f.self), 3);
  fake_remove(&f);
}
END_TEST

START_TEST(test_cgroup_missing_files) {
  fake_t f;

  fake_make(&f);
  /* No self file. */
  ck_assert_uint_eq(tandem__cgroup_cpus(f.root, f.self), 0);
  /* A self file, no cgroup directory. */
  fake_self(&f, "/gone");
  ck_assert_uint_eq(tandem__cgroup_cpus(f.root, f.self), 0);
  /* Directories without cpu.max (the cpu controller not enabled). */
  fake_cgroup(&f, "/a/b", NULL);
  fake_self(&f, "/a/b");
  ck_assert_uint_eq(tandem__cgroup_cpus(f.root, f.self), 0);
  /* No mount at all. */
  ck_assert_uint_eq(tandem__cgroup_cpus("/nonexistent/cgroup", f.self), 0);
  ck_assert_uint_eq(tandem__cgroup_cpus(NULL, f.self), 0);
  ck_assert_uint_eq(tandem__cgroup_cpus(f.root, NULL), 0);
  fake_remove(&f);
}
END_TEST

/* The contention signal under a quota (idle.c): the cpu.stat beside the
 * cpu.max that binds -- the smallest limit's -- is the one that counts
 * the periods the group was throttled. */
START_TEST(test_cgroup_limit_names_binding_cpu_stat) {
  char stat[PATH_MAX];
  char want[PATH_MAX];
  fake_t f;

  fake_make(&f);
  fake_cgroup(&f, "/parent", "100000 100000\n");
  fake_cgroup(&f, "/parent/child", "400000 100000\n");
  fake_self(&f, "/parent/child");
  stat[0] = 'x';
  ck_assert_uint_eq(tandem__cgroup_limit(f.root, f.self, stat, sizeof(stat)),
                    1);
  snprintf(want, sizeof(want), "%s/parent/cpu.stat", f.root);
  ck_assert_str_eq(stat, want);
  /* No limit: no file to watch. */
  fake_cgroup(&f, "/free", "max 100000\n");
  fake_self(&f, "/free");
  ck_assert_uint_eq(tandem__cgroup_limit(f.root, f.self, stat, sizeof(stat)),
                    0);
  ck_assert_str_eq(stat, "");
  fake_remove(&f);
}
END_TEST

/* Throttled since the last look: nr_throttled grew.  The first look only
 * learns the count (a group throttled before the pool existed is not
 * contended now); a file that is missing or does not parse says no. */
START_TEST(test_cgroup_throttled_counts_new_periods) {
  char path[PATH_MAX];
  uint64_t last = UINT64_MAX;
  fake_t f;

  fake_make(&f);
  snprintf(path, sizeof(path), "%s/cpu.stat", f.root);
  write_text(path, "usage_usec 10\nuser_usec 5\nsystem_usec 5\n"
                   "nr_periods 40\nnr_throttled 7\nthrottled_usec 900\n");
  ck_assert_int_eq(tandem__cgroup_throttled_at(path, &last), 0);
  ck_assert_uint_eq(last, 7);
  ck_assert_int_eq(tandem__cgroup_throttled_at(path, &last), 0);
  write_text(path, "nr_periods 41\nnr_throttled 8\nthrottled_usec 990\n");
  ck_assert_int_eq(tandem__cgroup_throttled_at(path, &last), 1);
  ck_assert_uint_eq(last, 8);
  ck_assert_int_eq(tandem__cgroup_throttled_at(path, &last), 0);
  write_text(path, "nr_periods 41\nthrottled_usec 990\n");
  ck_assert_int_eq(tandem__cgroup_throttled_at(path, &last), 0);
  write_text(path, "nr_throttled x\n");
  ck_assert_int_eq(tandem__cgroup_throttled_at(path, &last), 0);
  ck_assert_uint_eq(last, 8);
  ck_assert_int_eq(tandem__cgroup_throttled_at("/nonexistent/cpu.stat", &last),
                   0);
  ck_assert_int_eq(tandem__cgroup_throttled_at("", &last), 0);
  fake_remove(&f);
}
END_TEST

START_TEST(test_cgroup_garbage) {
  static const char *const bad[] = {"",
                                    "garbage\n",
                                    "banana 100000\n",
                                    "100000\n",
                                    "-5 100000",
                                    "100000 0\n",
                                    "0 100000\n",
                                    "1e5 100000\n",
                                    "100000 100000 7\n",
                                    "99999999999999999999999 100000\n"};
  fake_t f;
  size_t i;

  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(one_level(bad[i]) == 0, "cpu.max \"%s\" gave a limit",
                  bad[i]);
  /* A garbage self file. */
  fake_make(&f);
  fake_cgroup(&f, "/", "100000 100000\n");
  write_text(f.self, "garbage without colons\n");
  ck_assert_uint_eq(tandem__cgroup_cpus(f.root, f.self), 0);
  /* A path outside the cgroup namespace. */
  fake_self(&f, "/../elsewhere");
  ck_assert_uint_eq(tandem__cgroup_cpus(f.root, f.self), 0);
  fake_remove(&f);
}
END_TEST

/* cgroup v1 only: no "0::" line, so no v2 quota -- even where the fake
 * mount's top has one that a "0::/" line would find. */
START_TEST(test_cgroup_v1_only) {
  fake_t f;

  fake_make(&f);
  fake_cgroup(&f, "/", "100000 100000\n");
  fake_cgroup(&f, "/docker", "100000 100000\n");
  write_text(f.self, "12:pids:/docker\n4:memory:/docker\n"
                     "2:cpu,cpuacct:/docker\n1:name=systemd:/docker\n");
  ck_assert_uint_eq(tandem__cgroup_cpus(f.root, f.self), 0);
  fake_remove(&f);
}
END_TEST

/* The hybrid layout: v1 lines and then a "0::" line. */
START_TEST(test_cgroup_hybrid_finds_v2_line) {
  fake_t f;

  fake_make(&f);
  fake_cgroup(&f, "/svc", "250000 100000\n");
  write_text(f.self, "2:cpu,cpuacct:/other\n1:name=systemd:/other\n"
                     "0::/svc\n");
  ck_assert_uint_eq(tandem__cgroup_cpus(f.root, f.self), 3);
  fake_remove(&f);
}
END_TEST

/* ------------------------------------------------ tandem__default_workers */

/* Pins the test process to the first CPU of its mask. */
static void pin_one_cpu(void) {
  cpu_set_t one;
  int cpu;

  for (cpu = 0; cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &saved_mask); cpu++)
    ;
  ck_assert_int_lt(cpu, CPU_SETSIZE);
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
  ck_assert_uint_eq(tandem__usable_cpus(), 1);
}

/* The default with TANDEM_WORKERS unset. */
static unsigned expected_default(void) {
  unsigned n;
  unsigned quota;

  n = tandem__usable_cpus();
  quota = tandem__cgroup_cpus("/sys/fs/cgroup", "/proc/self/cgroup");
  if (quota != 0 && quota < n)
    n = quota;
  return n;
}

/* taskset -c 0 gives 1. */
START_TEST(test_default_one_cpu_mask) {
  pin_one_cpu();
  ck_assert_uint_eq(tandem__default_workers(), 1);
}
END_TEST

START_TEST(test_default_no_env_follows_cpus) {
  ck_assert_uint_eq(tandem__default_workers(), expected_default());
  ck_assert_uint_ge(tandem__default_workers(), 1);
}
END_TEST

START_TEST(test_env_sets_count) {
  ck_assert_int_eq(setenv("TANDEM_WORKERS", "3", 1), 0);
  ck_assert_uint_eq(tandem__default_workers(), 3);
  pin_one_cpu(); /* the variable wins over the mask */
  ck_assert_uint_eq(tandem__default_workers(), 3);
  ck_assert_int_eq(setenv("TANDEM_WORKERS", "1", 1), 0);
  ck_assert_uint_eq(tandem__default_workers(), 1);
  ck_assert_int_eq(setenv("TANDEM_WORKERS", "4096", 1), 0);
  ck_assert_uint_eq(tandem__default_workers(), 4096);
}
END_TEST

/* Calls tandem__default_workers with fd 2 sent to a temporary file, and
 * returns what it wrote there in `out`. */
static unsigned default_with_stderr(char *out, size_t size) {
  char path[] = "/tmp/test_sizing_err.XXXXXX";
  unsigned n;
  ssize_t len;
  int saved;
  int fd;

  fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  unlink(path);
  fflush(stderr);
  saved = dup(2);
  ck_assert_int_ge(saved, 0);
  ck_assert_int_eq(dup2(fd, 2), 2);
  n = tandem__default_workers();
  fflush(stderr);
  ck_assert_int_eq(dup2(saved, 2), 2);
  close(saved);
  len = pread(fd, out, size - 1, 0);
  close(fd);
  ck_assert_int_ge(len, 0);
  out[len] = '\0';
  return n;
}

/* Each refused value: the default, and one line on stderr naming it. */
START_TEST(test_env_bad_values_ignored_with_message) {
  static const char *const bad[] = {
      "banana", "0", "-3", "5000", "", "3x", " 3", "+3", "4097", "99999999999"};
  char err[512];
  char want[128];
  unsigned expect;
  size_t i;

  expect = expected_default();
  for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ck_assert_int_eq(setenv("TANDEM_WORKERS", bad[i], 1), 0);
    ck_assert_msg(default_with_stderr(err, sizeof(err)) == expect,
                  "TANDEM_WORKERS=\"%s\" was not ignored", bad[i]);
    snprintf(want, sizeof(want),
             "tandem: ignoring TANDEM_WORKERS=%s (want a number from 1 to "
             "4096)\n",
             bad[i]);
    ck_assert_str_eq(err, want);
  }
}
END_TEST

/* A value that would break the line is shown cut and cleaned: still one
 * line. */
START_TEST(test_env_message_is_one_line) {
  char err[512];
  char *nl;

  ck_assert_int_eq(setenv("TANDEM_WORKERS",
                          "3\nforged line\n0123456789012345678901234567890"
                          "123456789012345678901234567890",
                          1),
                   0);
  ck_assert_uint_eq(default_with_stderr(err, sizeof(err)), expected_default());
  nl = strchr(err, '\n');
  ck_assert_ptr_nonnull(nl);
  ck_assert_str_eq(nl + 1, "");
  ck_assert_ptr_nonnull(strstr(err, "TANDEM_WORKERS=3?forged line?"));
  ck_assert_ptr_nonnull(strstr(err, "... (want"));
}
END_TEST

/* A good value prints nothing. */
START_TEST(test_env_good_value_is_silent) {
  char err[512];

  ck_assert_int_eq(setenv("TANDEM_WORKERS", "7", 1), 0);
  ck_assert_uint_eq(default_with_stderr(err, sizeof(err)), 7);
  ck_assert_str_eq(err, "");
  unsetenv("TANDEM_WORKERS");
  ck_assert_uint_eq(default_with_stderr(err, sizeof(err)), expected_default());
  ck_assert_str_eq(err, "");
}
END_TEST

/* ---------------------------------------------------------- thread names */

static int comm_of_self_is(const char *want) {
  char buf[32];
  FILE *f;
  int same;

  f = fopen("/proc/thread-self/comm", "r");
  if (f == NULL)
    return 0;
  same = fgets(buf, sizeof(buf), f) != NULL;
  fclose(f);
  buf[strcspn(buf, "\n")] = '\0';
  return same && strcmp(buf, want) == 0;
}

START_TEST(test_name_thread) {
  char was[16];

  ck_assert_int_eq(pthread_getname_np(pthread_self(), was, sizeof(was)), 0);
  tandem__name_thread("tandem-w", 3);
  ck_assert(comm_of_self_is("tandem-w3"));
  /* Cut to 15 characters. */
  tandem__name_thread("tandem-blocking-", 12);
  ck_assert(comm_of_self_is("tandem-blocking"));
  tandem__name_thread(NULL, 4000000000u);
  ck_assert(comm_of_self_is("4000000000"));
  pthread_setname_np(pthread_self(), was);
}
END_TEST

/* ---------------------------------------------------- a real cgroup quota */

static void cg_skip(const char *why, const char *detail) {
  fprintf(stderr, "test_sizing: cgroup test skipped: %s%s%s\n", why,
          detail != NULL ? ": " : "", detail != NULL ? detail : "");
}

/* Writes `text` to an existing file; 0 or an errno. */
static int cg_write(const char *path, const char *text) {
  size_t len = strlen(text);
  int err = 0;
  int fd;

  fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return errno;
  if (write(fd, text, len) != (ssize_t)len)
    err = errno != 0 ? errno : EIO;
  close(fd);
  return err;
}

/* The forked child: joins the cgroup and reports through its exit status:
 * 0 = both counts 1, 1 = could not join (it said why), 10 + the default
 * (at most 200) = a wrong default, 9 = a wrong quota. */
static void cg_child(const char *procs) {
  unsigned n;
  int err;

  err = cg_write(procs, "0"); /* "0": the writing process */
  if (err != 0) {
    cg_skip("cannot move a process into the new cgroup", strerror(err));
    _exit(1);
  }
  if (tandem__cgroup_cpus("/sys/fs/cgroup", "/proc/self/cgroup") != 1)
    _exit(9);
  n = tandem__default_workers();
  _exit(n == 1 ? 0 : 10 + (int)(n > 200 ? 200 : n));
}

/* The result, once the cgroup is gone: 0 passed, 1 skipped, or the
 * child's failing status (>= 2). */
static int cg_run(const char *dir) {
  char path[256];
  int status;
  pid_t pid;
  int err;

  snprintf(path, sizeof(path), "%s/cpu.max", dir);
  if (access(path, F_OK) != 0) {
    cg_skip("the new cgroup has no cpu.max", strerror(errno));
    return 1;
  }
  err = cg_write(path, "100000 100000");
  if (err != 0) {
    cg_skip("cannot write cpu.max", strerror(err));
    return 1;
  }
  snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
  pid = fork();
  if (pid < 0) {
    cg_skip("fork", strerror(errno));
    return 1;
  }
  if (pid == 0)
    cg_child(path);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED(status))
    return 255;
  return WEXITSTATUS(status) == 0 ? 0 : WEXITSTATUS(status);
}

/* The forked child is reaped, yet the cgroup may report it a moment
 * longer: rmdir retries on EBUSY for up to a second. */
static int cg_remove(const char *dir) {
  int i;

  for (i = 0; i < 100; i++) {
    if (rmdir(dir) == 0)
      return 0;
    if (errno != EBUSY)
      return errno;
    usleep(10000);
  }
  return EBUSY;
}

/* A real cgroup v2 quota of one CPU: a process in it gets one worker
 * whatever its mask.  Needs a writable cgroup2 mount at /sys/fs/cgroup
 * (root, no read-only /sys); elsewhere it says why it is skipped. */
START_TEST(test_real_cgroup_quota) {
  static const char *const root = "/sys/fs/cgroup";
  char control[128];
  char path[256];
  char dir[128];
  struct statfs fs;
  int enabled = 0;
  int result;
  ssize_t len;
  int err;
  int fd;

  if (statfs(root, &fs) != 0) {
    cg_skip("no /sys/fs/cgroup", strerror(errno));
    return;
  }
  if (fs.f_type != CGROUP2_SUPER_MAGIC) {
    cg_skip("/sys/fs/cgroup is not a cgroup2 mount (cgroup v1 or hybrid)",
            NULL);
    return;
  }
  /* The cpu controller must be on for the mount's children. */
  snprintf(path, sizeof(path), "%s/cgroup.subtree_control", root);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  len = fd < 0 ? -1 : read(fd, control, sizeof(control) - 1);
  if (fd >= 0)
    close(fd);
  if (len < 0) {
    cg_skip("cannot read cgroup.subtree_control", strerror(errno));
    return;
  }
  control[len] = '\0';
  if (strstr(control, "cpu ") == NULL && strstr(control, "cpu\n") == NULL) {
    err = cg_write(path, "+cpu");
    if (err != 0) {
      cg_skip("cannot enable the cpu controller", strerror(err));
      return;
    }
    enabled = 1;
  }
  snprintf(dir, sizeof(dir), "%s/tandem-test-%ld", root, (long)getpid());
  if (mkdir(dir, 0755) != 0) {
    cg_skip("cannot make a cgroup", strerror(errno));
    result = 1;
  } else {
    result = cg_run(dir);
    err = cg_remove(dir);
    if (err != 0)
      fprintf(stderr, "test_sizing: cannot remove %s: %s\n", dir,
              strerror(err));
  }
  if (enabled)
    (void)cg_write(path, "-cpu"); /* as it was; EBUSY if others use it */
  ck_assert_msg(result < 2,
                "in a cgroup with cpu.max \"100000 100000\": %s (status %d)",
                result == 9    ? "tandem__cgroup_cpus is not 1"
                : result >= 10 ? "tandem__default_workers is not 1"
                               : "the child died",
                result);
  if (result == 0)
    fprintf(stderr, "test_sizing: cgroup test ran in %s\n", dir);
}
END_TEST

/* ------------------------------------------ wired: through the public API */

START_TEST(test_pool_default_size_from_env) {
  tandem_options_t opts;
  tandem_pool_t *p;

  memset(&opts, 0, sizeof(opts));
  ck_assert_int_eq(setenv("TANDEM_WORKERS", "3", 1), 0);
  ck_assert_int_eq(tandem_pool_new(&p, &opts), 0);
  ck_assert_uint_eq(tandem_pool_workers(p), 3);
  ck_assert_int_eq(tandem_pool_free(p), 0);
}
END_TEST

START_TEST(test_pool_names_workers) {
  tandem_options_t opts;
  tandem_pool_t *p;
  int named = 0;
  int i;

  memset(&opts, 0, sizeof(opts));
  opts.workers = 2;
  ck_assert_int_eq(tandem_pool_new(&p, &opts), 0);
  /* A worker names itself when it starts: poll for up to 3 s. */
  for (i = 0; i < 300 && !named; i++) {
    named = threads_named("tandem-w0") >= 1 && threads_named("tandem-w1") >= 1;
    if (!named)
      usleep(10000);
  }
  ck_assert_int_eq(tandem_pool_free(p), 0);
  ck_assert_msg(named, "no threads named tandem-w0 and tandem-w1");
}
END_TEST

int main(void) {
  Suite *s;
  TCase *tc;

  s = suite_create("sizing");
  tc = tcase_create("cgroup");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_cgroup_max_is_no_limit);
  tcase_add_test(tc, test_cgroup_quota_rounds_up);
  tcase_add_test(tc, test_cgroup_parent_limit_applies);
  tcase_add_test(tc, test_cgroup_smallest_limit_wins);
  tcase_add_test(tc, test_cgroup_namespace_root_limit);
  tcase_add_test(tc, test_cgroup_missing_files);
  tcase_add_test(tc, test_cgroup_garbage);
  tcase_add_test(tc, test_cgroup_limit_names_binding_cpu_stat);
  tcase_add_test(tc, test_cgroup_throttled_counts_new_periods);
  tcase_add_test(tc, test_cgroup_v1_only);
  tcase_add_test(tc, test_cgroup_hybrid_finds_v2_line);
  tcase_add_test(tc, test_real_cgroup_quota);
  suite_add_tcase(s, tc);

  tc = tcase_create("default");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_default_one_cpu_mask);
  tcase_add_test(tc, test_default_no_env_follows_cpus);
  tcase_add_test(tc, test_env_sets_count);
  tcase_add_test(tc, test_env_bad_values_ignored_with_message);
  tcase_add_test(tc, test_env_message_is_one_line);
  tcase_add_test(tc, test_env_good_value_is_silent);
  tcase_add_test(tc, test_name_thread);
  suite_add_tcase(s, tc);

  /* Holds once pool.c uses tandem__default_workers and
   * tandem__name_thread. */
  tc = tcase_create("wired");
  tcase_set_timeout(tc, 10);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_pool_default_size_from_env);
  tcase_add_test(tc, test_pool_names_workers);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
