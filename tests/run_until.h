/* SPDX-License-Identifier: MIT */
/*
 * run_until: runs a loop until a condition holds.
 *
 * Jobs queued from threads other than the loop's do not keep uv_run() alive,
 * so a test that waits for their after callbacks keeps the loop running with
 * a repeating timer until the condition holds or a deadline passes.
 */
#ifndef RUN_UNTIL_H
#define RUN_UNTIL_H

#include <stdint.h>

#include <uv.h>

typedef int (*run_until_pred)(void *arg);

/* Runs `loop` until pred(arg) returns non-zero, checking it every
 * millisecond, for at most `max_ms` milliseconds times the Check timeout
 * multiplier (CK_TIMEOUT_MULTIPLIER, as under the sanitizers).  Loop thread.
 * Returns 1 if pred held, 0 if the deadline passed first.  Leaves no handle
 * of its own behind. */
int run_until(uv_loop_t *loop, run_until_pred pred, void *arg, uint64_t max_ms);

/* The value of CK_TIMEOUT_MULTIPLIER, or 1. */
unsigned timeout_multiplier(void);

#endif /* RUN_UNTIL_H */
