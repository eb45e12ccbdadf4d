/*
 * renice.c: scheduling hints for worker threads (see renice.h).
 */
#define _GNU_SOURCE /* syscall(), SYS_gettid */
#include "renice.h"

#include <errno.h>
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
