/* SPDX-License-Identifier: MIT */
/*
 * inject.h: the injection queue, through which items enter a pool from
 * outside it (a loop thread, an application thread).
 *
 * A bounded multi-producer multi-consumer ring of cells, each with its own
 * sequence number (D. Vyukov's bounded MPMC queue), written on atomic.h.
 * It is not ck_ring because tandem_cancel() must be able to take one queued
 * item back out in place: a cell's item is claimed by exactly one swap --
 * the consumer's fas or the canceller's cas -- so a cancelled item becomes a
 * tombstone the consumer skips, and the pool never touches it again.
 */
#ifndef TANDEM_INJECT_H
#define TANDEM_INJECT_H

#include <stdbool.h>
#include <stdint.h>

#include "atomic.h"

typedef struct tdm_cell_s {
  uint64_t seq; /* pos: free for the producer of pos; pos+1: holds item */
  void *item;   /* the item, NULL once claimed, tombstone once cancelled */
  void *owner;  /* who queued it (a tandem_t), for tdm_inject_cancel_owned */
  void *pad;
} tdm_cell_t;

typedef struct tdm_inject_s {
  uint64_t enq TDM_ALIGNED; /* next position to fill (producers CAS) */
  uint64_t deq TDM_ALIGNED; /* next position to drain (consumers CAS) */
  uint64_t tombs;           /* cancelled items not yet skipped */
  tdm_cell_t *cells TDM_ALIGNED;
  uint64_t mask;
} tdm_inject_t;

/* capacity is rounded up to a power of two.  Returns 0 or UV_ENOMEM. */
int tdm_inject_init(tdm_inject_t *q, uint64_t capacity);
void tdm_inject_destroy(tdm_inject_t *q);

/* Any thread.  Stores the cell's address in *cellp before the item becomes
 * visible to consumers, and its position in *posp.  Returns false when the
 * ring is full. */
bool tdm_inject_push_mp(tdm_inject_t *q, void *item, void *owner,
                        tdm_cell_t **cellp, uint64_t *posp);

/* Any thread: tdm_inject_push_mp for items[0..n) at consecutive positions,
 * claimed with one CAS, each cell's address stored in *cellps[i] before its
 * item becomes visible.  Returns how many were pushed from the front (all,
 * or fewer where the ring is full: 0 when it is), the first at *posp. */
unsigned tdm_inject_push_n(tdm_inject_t *q, void *const *items, void *owner,
                           void **const *cellps, unsigned n, uint64_t *posp);

/* Any thread: were items still waiting ahead of position `pos` (racy; use
 * after a full barrier)? */
static inline bool tdm_inject_ahead(const tdm_inject_t *q, uint64_t pos) {
  return (int64_t)(pos - tdm_load_64(&q->deq)) > 0;
}

/* Any thread: are at least k + 1 items published?  Racy, a hint for when to
 * pop (the acquire matches the producer's release of seq; the pop checks
 * again). */
static inline bool tdm_inject_ready_at(const tdm_inject_t *q, uint64_t k) {
  uint64_t pos = tdm_load_64(&q->deq) + k;
  return tdm_load_acq_64(&q->cells[pos & q->mask].seq) == pos + 1;
}

/* Any thread.  The oldest live item, or NULL when none is ready; cancelled
 * items are skipped.  *more tells whether the next item was ready too. */
void *tdm_inject_pop_mc(tdm_inject_t *q, bool *more);

/* Any thread.  Takes `item` back out of `cell` (of ring `q`) if no
 * consumer has claimed it yet.  Returns true when the caller now owns the
 * item. */
bool tdm_inject_cancel_in(tdm_inject_t *q, tdm_cell_t *cell, void *item);

/* Any thread: tdm_inject_cancel_in() for a caller that learns which ring
 * the cell is in only once it owns the item.  Returns true when the caller
 * now owns it; it must then call tdm_inject_tombstoned() on that ring. */
bool tdm_inject_cancel_cell(tdm_cell_t *cell, void *item);
void tdm_inject_tombstoned(tdm_inject_t *q);

/* Any thread.  Takes back every item still waiting that was queued with
 * `owner`, calling taken(item, arg) for each; the caller owns those items
 * from then on.  Returns how many. */
unsigned tdm_inject_cancel_owned(tdm_inject_t *q, const void *owner,
                                 void (*taken)(void *item, void *arg),
                                 void *arg);

/* Tests only: called by tdm_inject_cancel_owned() between its reads of the
 * two ends of the ring, so a test can move them there (the race of defect
 * F1).  NULL, and never called, otherwise. */
extern void (*tdm_inject_scan_hook)(tdm_inject_t *q);

/* Any thread: a racy estimate of the positions in use, cancelled ones
 * included (the right test for "might a consumer find something"). */
uint64_t tdm_inject_size(const tdm_inject_t *q);

/* Any thread: a racy estimate of the live items waiting (for stats). */
uint64_t tdm_inject_live(const tdm_inject_t *q);

#endif /* TANDEM_INJECT_H */
