/* SPDX-License-Identifier: MIT */
/*
 * inject.c: the injection ring (see inject.h).
 *
 * A producer claims position pos by CAS on enq when cell[pos].seq == pos,
 * writes the item, then releases seq = pos + 1.  A consumer claims pos by
 * CAS on deq when cell[pos].seq == pos + 1, swaps the item out, then
 * releases seq = pos + capacity, handing the cell to the producer of the
 * next lap.  Cancel races only with that swap, on the item word.
 */
#include "inject.h"

#include <stdlib.h>

#include <uv.h>

void (*tdm_inject_scan_hook)(tdm_inject_t *q);

static char tombstone;
#define TOMB ((void *)&tombstone)

/* How far ahead a consumer prefetches (docs/tuning.md). */
#define PREFETCH_AHEAD 8

int tdm_inject_init(tdm_inject_t *q, uint64_t capacity) {
  uint64_t n;
  uint64_t i;

  for (n = 2; n < capacity; n <<= 1)
    ;
  q->cells = malloc(n * sizeof(*q->cells));
  if (q->cells == NULL)
    return UV_ENOMEM;
  for (i = 0; i < n; i++) {
    q->cells[i].seq = i;
    q->cells[i].item = NULL;
  }
  q->mask = n - 1;
  q->enq = 0;
  q->deq = 0;
  q->tombs = 0;
  return 0;
}

void tdm_inject_destroy(tdm_inject_t *q) {
  free(q->cells);
  q->cells = NULL;
}

/* A producer that claimed position pos fills its cell. */
static void fill(tdm_inject_t *q, uint64_t pos, void *item, void *owner,
                 void **cellp) {
  tdm_cell_t *c = &q->cells[pos & q->mask];

  tdm_store_ptr(cellp, c);
  tdm_store_ptr(&c->owner, owner);
  /* Release: a canceller whose CAS finds the item sees what was written
   * before the push (the request's handle, its cell). */
  tdm_store_rel_ptr(&c->item, item);
  /* Release: a consumer that sees seq == pos + 1 sees the item. */
  tdm_store_rel_64(&c->seq, pos + 1);
}

bool tdm_inject_push_mp(tdm_inject_t *q, void *item, void *owner,
                        tdm_cell_t **cellp, uint64_t *posp) {
  tdm_cell_t *c;
  uint64_t pos;
  int64_t dif;

  pos = tdm_load_64(&q->enq);
  for (;;) {
    c = &q->cells[pos & q->mask];
    /* Acquire: the consumer of the previous lap is done with the cell. */
    dif = (int64_t)(tdm_load_acq_64(&c->seq) - pos);
    if (dif == 0) {
      if (tdm_cas_64(&q->enq, pos, pos + 1))
        break;
      pos = tdm_load_64(&q->enq);
    } else if (dif < 0) {
      return false; /* a full lap behind: the ring is full */
    } else {
      pos = tdm_load_64(&q->enq);
    }
  }
  *posp = pos;
  fill(q, pos, item, owner, (void **)cellp);
  return true;
}

/* How many cells from pos on, up to n, are free for this lap. */
static unsigned free_run(const tdm_inject_t *q, uint64_t pos, unsigned n) {
  unsigned k;

  /* Acquire, as in the single push: each cell's last consumer is done. */
  for (k = 0; k < n; k++)
    if (tdm_load_acq_64(&q->cells[(pos + k) & q->mask].seq) != pos + k)
      break;
  return k;
}

unsigned tdm_inject_push_n(tdm_inject_t *q, void *const *items, void *owner,
                           void **const *cellps, unsigned n, uint64_t *posp) {
  uint64_t pos;
  unsigned k;
  unsigned i;

  pos = tdm_load_64(&q->enq);
  for (;;) {
    k = free_run(q, pos, n);
    if (k == 0 &&
        (int64_t)(tdm_load_acq_64(&q->cells[pos & q->mask].seq) - pos) < 0)
      return 0; /* a full lap behind: the ring is full */
    if (k != 0 && tdm_cas_64(&q->enq, pos, pos + k))
      break;
    pos = tdm_load_64(&q->enq);
  }
  *posp = pos;
  for (i = 0; i < k; i++)
    fill(q, pos + i, items[i], owner, cellps[i]);
  return k;
}

/* A consumer that took position pos, with more behind it: asks for the
 * request PREFETCH_AHEAD positions on, if it is published, so that its
 * miss overlaps the jobs before it.  A request a worker takes from the
 * ring is a line the loop wrote last; in array order the hardware
 * prefetcher fetches the next ones anyway, in any other order each is a
 * miss that a lone worker would wait for in turn.  Relaxed loads: a hint;
 * another consumer may take or a canceller tombstone that item
 * meanwhile. */
static void prefetch_ahead(const tdm_inject_t *q, uint64_t pos) {
  const tdm_cell_t *c = &q->cells[(pos + PREFETCH_AHEAD) & q->mask];
  void *item;

  if (tdm_load_64(&c->seq) != pos + PREFETCH_AHEAD + 1)
    return;
  item = tdm_load_ptr(&c->item);
  if (item != NULL)
    tdm_prefetch_w(item);
}

void *tdm_inject_pop_mc(tdm_inject_t *q, bool *more) {
  tdm_cell_t *c;
  uint64_t pos;
  int64_t dif;
  void *item;

  pos = tdm_load_64(&q->deq);
  for (;;) {
    c = &q->cells[pos & q->mask];
    dif = (int64_t)(tdm_load_acq_64(&c->seq) - (pos + 1));
    if (dif == 0) {
      if (tdm_cas_64(&q->deq, pos, pos + 1)) {
        /* The swap is the claim; a canceller's cas can no longer win. */
        item = tdm_fas_ptr(&c->item, NULL);
        tdm_store_rel_64(&c->seq, pos + q->mask + 1);
        if (item == TOMB) {
          tdm_faa_64(&q->tombs, (uint64_t)-1);
        } else {
          /* Peek at the next cell, not at enq: enq's line stays with the
           * producers. */
          c = &q->cells[(pos + 1) & q->mask];
          *more = tdm_load_64(&c->seq) == pos + 2;
          if (*more)
            prefetch_ahead(q, pos);
          return item;
        }
      }
      pos = tdm_load_64(&q->deq);
    } else if (dif < 0) {
      return NULL; /* empty, or its producer has not published yet */
    } else {
      pos = tdm_load_64(&q->deq);
    }
  }
}

bool tdm_inject_cancel_cell(tdm_cell_t *cell, void *item) {
  return cell != NULL && tdm_cas_ptr(&cell->item, item, TOMB);
}

void tdm_inject_tombstoned(tdm_inject_t *q) {
  tdm_faa_64(&q->tombs, 1);
}

bool tdm_inject_cancel_in(tdm_inject_t *q, tdm_cell_t *cell, void *item) {
  if (!tdm_inject_cancel_cell(cell, item))
    return false;
  tdm_inject_tombstoned(q);
  return true;
}

unsigned tdm_inject_cancel_owned(tdm_inject_t *q, const void *owner,
                                 void (*taken)(void *item, void *arg),
                                 void *arg) {
  tdm_cell_t *c;
  uint64_t pos;
  uint64_t end;
  uint64_t seq;
  unsigned n;
  void *item;

  n = 0;
  /* The read end first: deq never passes enq, so a deq read before enq is
   * at or behind it however far other threads move both in between.  (Read
   * the other way round, deq could already be past `end`, and a scan to
   * `end` ran towards 2^64: defect F1.)  Acquire: the consumer that moved
   * deq to `pos` saw the producer's enq move past pos - 1 first. */
  pos = tdm_load_acq_64(&q->deq);
  if (tdm_inject_scan_hook != NULL)
    tdm_inject_scan_hook(q);
  end = tdm_load_64(&q->enq);
  for (; (int64_t)(end - pos) > 0; pos++) {
    c = &q->cells[pos & q->mask];
    /* Read owner and item between two reads of seq, like a seqlock, so
     * that both belong to the same lap of the cell. */
    seq = tdm_load_acq_64(&c->seq);
    if (seq != pos + 1)
      continue; /* taken already, or not published yet */
    if (tdm_load_ptr(&c->owner) != owner)
      continue;
    item = tdm_load_ptr(&c->item);
    tdm_fence_acquire();
    if (tdm_load_64(&c->seq) != seq || item == NULL || item == TOMB)
      continue;
    if (tdm_inject_cancel_in(q, c, item)) {
      taken(item, arg);
      n++;
    }
  }
  return n;
}

uint64_t tdm_inject_size(const tdm_inject_t *q) {
  int64_t n;

  n = (int64_t)(tdm_load_64(&q->enq) - tdm_load_64(&q->deq));
  return n > 0 ? (uint64_t)n : 0;
}

uint64_t tdm_inject_live(const tdm_inject_t *q) {
  uint64_t n = tdm_inject_size(q);
  uint64_t t = tdm_load_64(&q->tombs);
  return n > t ? n - t : 0;
}
