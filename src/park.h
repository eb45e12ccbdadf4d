/* SPDX-License-Identifier: MIT */
/*
 * park.h: where an idle worker sleeps.  One ck_ec32 event count per
 * worker, backed by the Linux futex: a waiter snapshots the count, re-checks
 * for work, then waits only if the count has not moved since the snapshot,
 * so a wake-up between the re-check and the sleep is never lost.  Waking
 * costs a syscall only when the worker really sleeps (ck_ec's waiter flag).
 * ck_ec's own busy wait and timed waits are set in park.c: one look, one
 * futex wait that times out after a second, then one with no time-out.
 */
#ifndef TANDEM_PARK_H
#define TANDEM_PARK_H

#include <stdint.h>

#include "atomic.h"

/* Mirrors struct ck_ec32 (a single 32-bit word) so that internal headers
 * need not include ck_ec.h; park.c checks the sizes match. */
typedef struct tdm_parker_s {
  uint32_t counter;
} tdm_parker_t;

void tdm_parker_init(tdm_parker_t *p);
/* The owner, before it re-checks for work. */
uint32_t tdm_parker_snapshot(tdm_parker_t *p);
/* The owner: sleeps until the count moves past `snapshot`. */
void tdm_parker_wait(tdm_parker_t *p, uint32_t snapshot);
/* Any thread: moves the count, waking the owner if it sleeps. */
void tdm_parker_wake(tdm_parker_t *p);

#endif /* TANDEM_PARK_H */
