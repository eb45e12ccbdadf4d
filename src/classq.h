/* SPDX-License-Identifier: MIT */
/*
 * classq.h: the queue of one job class other than NORMAL (HIGH or LOW)
 * through which such items enter a pool.  NORMAL items keep the injection
 * ring (inject.h) and its cost; HIGH and LOW items are rarer, so a FIFO
 * list under a mutex serves them, with its length in a word of its own
 * that workers read on every look without the lock.
 *
 * Items are tandem_work_t pointers or tagged fork-join frames (pool.h),
 * linked through tdm_item_link(); only requests are ever taken back out
 * (tdm_classq_remove, tdm_classq_take_owned).
 */
#ifndef TANDEM_CLASSQ_H
#define TANDEM_CLASSQ_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "atomic.h"

typedef struct tdm_classq_s {
  uint32_t len TDM_ALIGNED; /* items queued; written under lock, read by
                               anyone without it (a hint, or after a full
                               barrier as the re-check of idle.c) */
  uv_mutex_t lock;          /* guards head and tail */
  void *head;
  void *tail;
} tdm_classq_t;

int tdm_classq_init(tdm_classq_t *q);
void tdm_classq_destroy(tdm_classq_t *q);

/* Any thread: is anything queued?  Relaxed: a hint. */
static inline bool tdm_classq_any(const tdm_classq_t *q) {
  return tdm_load_u32(&q->len) != 0;
}

/* Any thread: appends `item`.  The length's increment is a full barrier
 * after the item is linked, as tdm_idle_notify's caller needs. */
void tdm_classq_push(tdm_classq_t *q, void *item);

/* Any thread: the oldest item, or NULL. */
void *tdm_classq_pop(tdm_classq_t *q);

/* Any thread: the oldest request (not a fork-join frame), or NULL. */
void *tdm_classq_pop_request(tdm_classq_t *q);

/* Any thread: takes request `item` out if it still waits here.  Returns
 * true if it did (then it is the caller's).  O(n). */
bool tdm_classq_remove(tdm_classq_t *q, void *item);

/* Any thread: takes out every request queued by `owner` (its tandem_t) and
 * calls taken(item, arg) for each, oldest first, outside the lock. */
void tdm_classq_take_owned(tdm_classq_t *q, const void *owner,
                           void (*taken)(void *item, void *arg), void *arg);

#endif /* TANDEM_CLASSQ_H */
