/* SPDX-License-Identifier: MIT */
/*
 * sizing.c: the default worker count and thread names (see sizing.h).
 *
 * A container is usually limited in one of two ways: a cpuset (the
 * affinity mask shows it: tandem__usable_cpus) or a CPU quota (cgroup v2
 * cpu.max: "200000 100000" lets the group run 2 CPUs' worth of time per
 * period, on any of the machine's CPUs).  A pool with a worker per CPU of
 * the machine under a quota of 2 gets throttled: its workers run a slice
 * of each period and then all wait out the rest of it, so the default
 * takes whichever limit is smaller.  A quota of 1.5 CPUs counts as 2:
 * one worker would leave half a CPU unused.
 */
#define _GNU_SOURCE /* syscall(), pthread_setname_np */
#include "sizing.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "renice.h"

/* Reads up to size - 1 bytes of the file at `path` into buf and ends them
 * with a NUL.  Returns the length, or -1.  Raw syscalls, as renice.c's
 * /proc/loadavg: ThreadSanitizer, seeing our open() reuse a descriptor
 * whose raw close in libuv it never saw, would report a race on it. */
static ssize_t read_small(const char *path, char *buf, size_t size) {
  size_t len = 0;
  ssize_t n;
  int fd;

  fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  /* /proc files may come a piece at a time. */
  while (len < size - 1) {
    n = (ssize_t)syscall(SYS_read, fd, buf + len, size - 1 - len);
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  (void)syscall(SYS_close, fd);
  buf[len] = '\0';
  return (ssize_t)len;
}

/* Parses one or more decimal digits at *s into *out and moves *s past
 * them.  Returns 0, or -1 for no digit or a number past 64 bits. */
static int parse_u64(const char **s, uint64_t *out) {
  const char *p = *s;
  uint64_t v = 0;

  if (*p < '0' || *p > '9')
    return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
      return -1;
    v = v * 10 + (uint64_t)(*p - '0');
  }
  *s = p;
  *out = v;
  return 0;
}

/* The limit set by the cpu.max file at `path` in CPUs rounded up; 0 for
 * none ("max ..."), a missing file or one that does not parse. */
static unsigned quota_cpus(const char *path) {
  const char *p;
  uint64_t quota;
  uint64_t period;
  uint64_t cpus;
  char buf[64];

  if (read_small(path, buf, sizeof(buf)) <= 0)
    return 0;
  p = buf;
  if (parse_u64(&p, &quota) != 0 || *p++ != ' ' ||
      parse_u64(&p, &period) != 0 || (*p != '\n' && *p != '\0'))
    return 0; /* "max 100000" ends here too */
  if (quota == 0 || period == 0)
    return 0;
  cpus = quota / period + (quota % period != 0);
  return cpus > UINT_MAX ? UINT_MAX : (unsigned)cpus;
}

/* The cgroup path on the "0::" line of a /proc/PID/cgroup text (cut off
 * at its newline), or NULL if there is none. */
static const char *v2_path(char *text) {
  char *line = text;
  char *end;

  while (*line != '\0') {
    end = strchr(line, '\n');
    if (end != NULL)
      *end = '\0';
    if (strncmp(line, "0::", 3) == 0)
      return line + 3;
    if (end == NULL)
      break;
    line = end + 1;
  }
  return NULL;
}

unsigned tandem__cgroup_limit(const char *root, const char *self_cgroup,
                              char *stat, size_t stat_size) {
  char text[4096];
  char dir[PATH_MAX];
  char file[PATH_MAX];
  const char *path;
  unsigned best = 0;
  unsigned n;
  size_t rootlen;
  size_t len;
  int w;

  if (stat != NULL && stat_size != 0)
    stat[0] = '\0';
  if (root == NULL || self_cgroup == NULL ||
      read_small(self_cgroup, text, sizeof(text)) <= 0)
    return 0;
  path = v2_path(text);
  /* "/../x": a process moved out of its cgroup namespace's root; the
   * limits over it are not under this mount. */
  if (path == NULL || path[0] != '/' || strstr(path, "/..") != NULL)
    return 0;
  rootlen = strlen(root);
  w = snprintf(dir, sizeof(dir), "%s%s", root, path);
  if (w < 0 || (size_t)w >= sizeof(dir))
    return 0;
  len = (size_t)w;
  while (len > rootlen && dir[len - 1] == '/')
    dir[--len] = '\0';
  /* From the process's own cgroup up to the mount itself: the root of a
   * container's cgroup namespace (its mount's top) may carry its limit. */
  for (;;) {
    w = snprintf(file, sizeof(file), "%s/cpu.max", dir);
    if (w > 0 && (size_t)w < sizeof(file)) {
      n = quota_cpus(file);
      if (n != 0 && (best == 0 || n < best)) {
        best = n;
        /* The periods this limit throttled are counted beside it. */
        if (stat != NULL && stat_size != 0 &&
            (size_t)snprintf(stat, stat_size, "%s/cpu.stat", dir) >=
                stat_size)
          stat[0] = '\0';
      }
    }
    if (len <= rootlen)
      break;
    while (len > rootlen && dir[len - 1] != '/')
      len--;
    while (len > rootlen && dir[len - 1] == '/')
      len--;
    dir[len] = '\0';
  }
  return best;
}

unsigned tandem__cgroup_cpus(const char *root, const char *self_cgroup) {
  return tandem__cgroup_limit(root, self_cgroup, NULL, 0);
}

int tandem__cgroup_throttled_at(const char *stat, uint64_t *last) {
  char text[1024];
  const char *p;
  uint64_t n;

  if (stat[0] == '\0' || read_small(stat, text, sizeof(text)) <= 0)
    return 0;
  p = strstr(text, "nr_throttled ");
  if (p == NULL || (p != text && p[-1] != '\n'))
    return 0;
  p += strlen("nr_throttled ");
  if (parse_u64(&p, &n) != 0)
    return 0;
  if (*last == UINT64_MAX || n <= *last) {
    *last = n; /* the first look only learns the count */
    return 0;
  }
  *last = n;
  return 1;
}

/* ------------------------------------------------------- the CPU budget */

static pthread_once_t budget_once = PTHREAD_ONCE_INIT;
static unsigned quota_limit;             /* 0: none */
static char throttle_stat[PATH_MAX];     /* "" when there is no quota */
static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t throttle_last = UINT64_MAX;

static void find_budget(void) {
  quota_limit = tandem__cgroup_limit("/sys/fs/cgroup", "/proc/self/cgroup",
                                     throttle_stat, sizeof(throttle_stat));
  (void)tandem__cgroup_throttled_at(throttle_stat, &throttle_last);
}

unsigned tandem__cpu_budget(void) {
  unsigned n = tandem__usable_cpus();

  pthread_once(&budget_once, find_budget);
  if (quota_limit != 0 && quota_limit < n)
    n = quota_limit;
  return n == 0 ? 1 : n;
}

int tandem__quota_throttled(void) {
  int r;

  pthread_once(&budget_once, find_budget);
  if (throttle_stat[0] == '\0')
    return 0;
  /* Rare (a searcher that lost its core for long): a lock is cheap here. */
  pthread_mutex_lock(&throttle_lock);
  r = tandem__cgroup_throttled_at(throttle_stat, &throttle_last);
  pthread_mutex_unlock(&throttle_lock);
  return r;
}

/* TANDEM_WORKERS's value as a count, or 0 if it is not only digits worth
 * 1 to TDM_WORKERS_MAX. */
static unsigned parse_workers(const char *s) {
  unsigned v = 0;

  if (*s == '\0')
    return 0;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9')
      return 0;
    v = v * 10 + (unsigned)(*s - '0');
    if (v > TDM_WORKERS_MAX)
      return 0;
  }
  return v;
}

/* One line on stderr, whatever the value holds: control characters show
 * as '?', and a long value is cut. */
static void warn_workers(const char *value) {
  char shown[48];
  size_t i;

  for (i = 0; value[i] != '\0' && i < sizeof(shown) - 4; i++)
    shown[i] = value[i] >= 0x20 && value[i] < 0x7f ? value[i] : '?';
  if (value[i] != '\0') {
    memcpy(shown + i, "...", 3);
    i += 3;
  }
  shown[i] = '\0';
  fprintf(stderr,
          "tandem: ignoring TANDEM_WORKERS=%s (want a number from 1 to %u)\n",
          shown, TDM_WORKERS_MAX);
}

unsigned tandem__default_workers(void) {
  const char *env;
  unsigned n;

  env = getenv("TANDEM_WORKERS");
  if (env != NULL) {
    n = parse_workers(env);
    if (n != 0)
      return n;
    warn_workers(env);
  }
  n = tandem__cpu_budget();
  return n > TDM_WORKERS_MAX ? TDM_WORKERS_MAX : n;
}

void tandem__name_thread(const char *prefix, unsigned i) {
  char name[16]; /* Linux keeps 15 characters and the NUL */

  (void)snprintf(name, sizeof(name), "%s%u", prefix != NULL ? prefix : "", i);
  (void)pthread_setname_np(pthread_self(), name);
}
