/* SPDX-License-Identifier: MIT */
/*
 * sizing.h: how many workers a pool gets by default -- sized to its
 * container, not to the machine -- and the names its threads carry.
 */
#ifndef TANDEM_SIZING_H
#define TANDEM_SIZING_H

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

/* Any thread: the worker count of a pool made with
 * tandem_options_t.workers == 0.  TANDEM_WORKERS from the environment if
 * it holds only decimal digits worth 1 to TDM_WORKERS_MAX (as libuv reads
 * UV_THREADPOOL_SIZE).  Any other value set ("banana", "0", "-3", "5000",
 * "", "3x") is ignored, with one line on stderr each time it is seen --
 * pools are made rarely, and each one made with the bad value deserves
 * the word.  Otherwise the CPUs of the affinity mask
 * (tandem__usable_cpus), or the cgroup v2 quota where it is fewer; at
 * least 1, at most TDM_WORKERS_MAX. */
unsigned tandem__default_workers(void);

/* Calling thread: names it "<prefix><i>" (e.g. "tandem-w3"), cut to the
 * 15 characters Linux keeps; shows in top -H, ps -L, gdb and
 * /proc/self/task/TID/comm.  A hint: errors are ignored. */
void tandem__name_thread(const char *prefix, unsigned i);

#endif /* TANDEM_SIZING_H */
