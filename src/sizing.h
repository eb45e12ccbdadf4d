/* SPDX-License-Identifier: MIT */
/*
 * sizing.h: how many workers a pool gets by default -- sized to its
 * container, not to the machine -- and the names its threads carry.
 */
#ifndef TANDEM_SIZING_H
#define TANDEM_SIZING_H

#include <stddef.h>
#include <stdint.h>

/* The most workers a pool may have (tandem_options_t.workers, and the
 * TANDEM_WORKERS environment variable). */
#define TDM_WORKERS_MAX 4096u

/* Any thread: this process's cgroup v2 CPU quota, as CPUs rounded up.
 * For the cgroup named on the "0::/path" line of `self_cgroup` (normally
 * "/proc/self/cgroup") and each of its ancestors up to the mount `root`
 * (normally "/sys/fs/cgroup") itself, reads cpu.max -- "max PERIOD" (no
 * limit) or "QUOTA PERIOD" -- and returns the smallest ceil(QUOTA/PERIOD).
 * A level whose cpu.max is missing or does not parse sets no limit.
 * Returns 0 when no level sets one, or when the cgroup cannot be told:
 * `self_cgroup` unreadable, no "0::" line (cgroup v1 only), a path
 * outside the cgroup namespace ("/.."), a path too long.  Never prints. */
unsigned tandem__cgroup_cpus(const char *root, const char *self_cgroup);

/* Any thread: tandem__cgroup_cpus, and the path of the cpu.stat file
 * beside the cpu.max that set the returned limit into `stat` ("" when
 * there is none or it does not fit in `stat_size`; `stat` may be NULL). */
unsigned tandem__cgroup_limit(const char *root, const char *self_cgroup,
                              char *stat, size_t stat_size);

/* Any thread (the caller serialises calls on one `last`): has the cpu.stat
 * file at `stat` counted a throttled period since *last?  Reads its
 * "nr_throttled N" line and keeps N in *last.  A *last of UINT64_MAX
 * (never looked) only learns N.  0, or 1 when N grew; 0 for "" or a file
 * that is missing or does not parse. */
int tandem__cgroup_throttled_at(const char *stat, uint64_t *last);

/* Any thread: the CPUs this process may use -- its affinity mask's, or the
 * cgroup v2 quota's (/sys/fs/cgroup) where that is fewer; at least 1.  The
 * quota is read once per process. */
unsigned tandem__cpu_budget(void);

/* Any thread: was this process's cgroup throttled -- its CPU quota used up
 * before the period ended -- since the last call that said so (or since
 * the quota was first read)?  0 when there is no quota.  The contention
 * signal's second half (idle.c): /proc/loadavg does not see a quota. */
int tandem__quota_throttled(void);

/* Any thread: the worker count of a pool made with
 * tandem_options_t.workers == 0.  TANDEM_WORKERS from the environment if
 * it holds only decimal digits worth 1 to TDM_WORKERS_MAX (as libuv reads
 * UV_THREADPOOL_SIZE).  Any other value set ("banana", "0", "-3", "5000",
 * "", "3x") is ignored, with one line on stderr each time it is seen --
 * pools are made rarely, and each one made with the bad value deserves
 * the word.  Otherwise tandem__cpu_budget(): the CPUs of the affinity
 * mask, or the cgroup v2 quota where it is fewer; at least 1, at most
 * TDM_WORKERS_MAX. */
unsigned tandem__default_workers(void);

/* Calling thread: names it "<prefix><i>" (e.g. "tandem-w3"), cut to the
 * 15 characters Linux keeps; shows in top -H, ps -L, gdb and
 * /proc/self/task/TID/comm.  A hint: errors are ignored. */
void tandem__name_thread(const char *prefix, unsigned i);

#endif /* TANDEM_SIZING_H */
