/* SPDX-License-Identifier: MIT */
/*
 * renice.c: scheduling hints for worker threads (see renice.h).
 */
#define _GNU_SOURCE /* syscall(), SYS_gettid */
#include "renice.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <uv.h>

int tandem__thread_renice(int nice) {
  pid_t tid;
  int now;

  if (nice == 0)
    return 0;
  tid = (pid_t)syscall(SYS_gettid);
  errno = 0;
  now = getpriority(PRIO_PROCESS, (id_t)tid);
  if (now == -1 && errno != 0)
    return -errno;
  /* On Linux, PRIO_PROCESS with a thread id changes that thread only. */
  if (setpriority(PRIO_PROCESS, (id_t)tid, now + nice) != 0)
    return -errno;
  return 0;
}

int tandem__machine_busy(unsigned ncpus, unsigned own) {
  char buf[128];
  unsigned running;
  unsigned limit;
  ssize_t n;
  int fd;

  /* "0.42 0.31 0.25 3/214 12345": the fourth field counts the runnable
   * threads (this one included).  Raw syscalls: libuv closes its fds with
   * raw syscalls too, and ThreadSanitizer, seeing our open() reuse a number
   * whose close it never saw, would report a race on the descriptor. */
  fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/loadavg",
                    O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  n = (ssize_t)syscall(SYS_read, fd, buf, sizeof(buf) - 1);
  (void)syscall(SYS_close, fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  if (sscanf(buf, "%*s %*s %*s %u/", &running) != 1)
    return 0;
  limit = ncpus > own + 1 ? ncpus : own + 1;
  return running > limit;
}

int tandem__thread_cpu(void) {
  return sched_getcpu(); /* the vDSO: a few nanoseconds */
}

unsigned tandem__usable_cpus(void) {
  cpu_set_t set;

  if (sched_getaffinity(0, sizeof(set), &set) != 0)
    return 1;
  return (unsigned)CPU_COUNT(&set);
}
