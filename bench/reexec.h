/* SPDX-License-Identifier: MIT */
/*
 * reexec: runs this program again as a child with one environment variable
 * set and captures its standard output.  For settings a library reads once
 * per process, such as libuv's UV_THREADPOOL_SIZE, so that one benchmark run
 * can measure several of them.  Linux only (/proc/self/exe).
 */
#ifndef BENCH_REEXEC_H
#define BENCH_REEXEC_H

#include <stddef.h>

/* Runs /proc/self/exe with `argv` (argv[0] first, NULL-terminated) and this
 * process's environment in which `name` is set to `value`.  The child's
 * stdout goes to buf (NUL-terminated), its stderr is ours.  A child still
 * running after timeout_ms is killed.  Sets *exit_code to the child's exit
 * status, or 128 + the signal that ended it, or -1 if it did not run.
 * Returns 0 when the child exited with status 0, UV_EIO when it exited
 * otherwise, UV_ETIMEDOUT, UV_ENOBUFS when its output does not fit in
 * cap - 1 bytes, UV_ENOMEM, or the error of pipe() or posix_spawn(). */
int reexec_capture(char *const argv[], const char *name, const char *value,
                   char *buf, size_t cap, int timeout_ms, int *exit_code);

#endif /* BENCH_REEXEC_H */
