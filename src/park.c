/* SPDX-License-Identifier: MIT */
/*
 * park.c: ck_ec32 operations on the Linux futex (see park.h).
 */
#define _GNU_SOURCE /* syscall() */
#include "park.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <ck_ec.h>

_Static_assert(sizeof(struct ck_ec32) == sizeof(tdm_parker_t),
               "tdm_parker_t must mirror struct ck_ec32");

static int fx_gettime(const struct ck_ec_ops *ops, struct timespec *out) {
  (void)ops;
  return clock_gettime(CLOCK_MONOTONIC, out);
}

/* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, the clock
 * fx_gettime reports, as ck_ec expects. */
static void fx_wait32(const struct ck_ec_wait_state *state,
                      const uint32_t *addr, uint32_t expected,
                      const struct timespec *deadline) {
  (void)state;
  syscall(SYS_futex, addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected,
          deadline, NULL, FUTEX_BITSET_MATCH_ANY);
}

static void fx_wait64(const struct ck_ec_wait_state *state,
                      const uint64_t *addr, uint64_t expected,
                      const struct timespec *deadline) {
  (void)state;
  (void)addr;
  (void)expected;
  (void)deadline; /* tandem uses 32-bit event counts only */
}

static void fx_wake32(const struct ck_ec_ops *ops, const uint32_t *addr) {
  (void)ops;
  syscall(SYS_futex, addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL, NULL,
          0);
}

static void fx_wake64(const struct ck_ec_ops *ops, const uint64_t *addr) {
  (void)ops;
  (void)addr;
}

/* ck_ec's policy, set explicitly (0 would mean its defaults: a
 * 100-iteration busy wait before every sleep, then futex waits that time
 * out after 2, 16, 128 and 1024 ms to look again).  The idle policy
 * (idle.c) has already searched before a worker parks, so ck spins the
 * least it can (1 look), and the timed waits do not grow: ck clamps a
 * partial wait to one second, and after a second it waits with no
 * deadline, so a parked worker looks once after 1 s and then sleeps until
 * woken.  A wake-up never depends on these timeouts: the futex word is the
 * event count itself. */
#define BUSY_LOOP_ITER 1
#define INITIAL_WAIT_NS UINT32_MAX /* clamped by ck to 1 s */

static const struct ck_ec_ops futex_ops = {
    .gettime = fx_gettime,
    .wait32 = fx_wait32,
    .wait64 = fx_wait64,
    .wake32 = fx_wake32,
    .wake64 = fx_wake64,
    .busy_loop_iter = BUSY_LOOP_ITER,
    .initial_wait_ns = INITIAL_WAIT_NS,
    .wait_scale_factor = 1,
    .wait_shift_count = 0,
};

/* Several threads may wake one worker. */
static const struct ck_ec_mode park_mode = {
    .ops = &futex_ops,
    .single_producer = false,
};

static struct ck_ec32 *ec(tdm_parker_t *p) {
  return (struct ck_ec32 *)(void *)p;
}

void tdm_parker_init(tdm_parker_t *p) {
  ck_ec32_init(ec(p), 0);
}

uint32_t tdm_parker_snapshot(tdm_parker_t *p) {
  return ck_ec32_value(ec(p));
}

void tdm_parker_wait(tdm_parker_t *p, uint32_t snapshot) {
  (void)ck_ec32_wait(ec(p), &park_mode, snapshot, NULL);
}

void tdm_parker_wake(tdm_parker_t *p) {
  ck_ec32_inc(ec(p), &park_mode);
}
