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

static const struct ck_ec_ops futex_ops = {
    .gettime = fx_gettime,
    .wait32 = fx_wait32,
    .wait64 = fx_wait64,
    .wake32 = fx_wake32,
    .wake64 = fx_wake64,
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
