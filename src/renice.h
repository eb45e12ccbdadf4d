/* SPDX-License-Identifier: MIT */
/*
 * renice.h: scheduling hints for worker threads, and a look at how busy
 * the machine is.
 */
#ifndef TANDEM_RENICE_H
#define TANDEM_RENICE_H

/* Calling thread only: adds `nice` to its nice value (Linux sets it per
 * thread), so that on a busy machine the kernel prefers the loop thread
 * when it wakes.  Returns 0 or a negative libuv error code. */
int tandem__thread_renice(int nice);

/* Any thread: are more threads runnable on the machine right now than
 * the `ncpus` cores (the caller passes the CPUs it may run on), or than
 * `own` threads of ours plus a loop thread would make?  Reads
 * /proc/loadavg (host-wide: a cgroup's CPU quota is not seen here, see
 * tandem__quota_throttled); false when it cannot. */
int tandem__machine_busy(unsigned ncpus, unsigned own);

/* Calling thread: the CPU it runs on now (it may move at any time), or
 * -1 if unknown. */
int tandem__thread_cpu(void);

/* Calling thread: how many CPUs it may run on (its affinity mask); 1 if
 * unknown. */
unsigned tandem__usable_cpus(void);

#endif /* TANDEM_RENICE_H */
