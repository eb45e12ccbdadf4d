/* SPDX-License-Identifier: MIT */
/*
 * deque.h: a growable Chase-Lev work-stealing deque of pointers.
 *
 * One owner thread pushes and takes at the bottom (LIFO); any thread steals
 * at the top (FIFO).  Orderings follow Le, Pop, Cohen and Zappa Nardelli,
 * "Correct and Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013);
 * each fence is commented where it stands in deque.c.  Arrays outgrown by
 * the owner are kept until tdm_deque_destroy(), since a thief may still be
 * reading one: no reclamation scheme is needed.
 */
#ifndef TANDEM_DEQUE_H
#define TANDEM_DEQUE_H

#include <stdint.h>

#include <uv.h>

#include "atomic.h"

typedef struct tdm_deque_array_s tdm_deque_array_t;

struct tdm_deque_array_s {
  uint64_t mask;           /* capacity - 1, capacity a power of two */
  tdm_deque_array_t *prev; /* next older retired array */
  void *slot[];
};

typedef struct tdm_deque_s {
  uint64_t top TDM_ALIGNED;    /* thieves CAS it: its own cache line */
  uint64_t bottom TDM_ALIGNED; /* written by the owner only */
  tdm_deque_array_t *array;    /* current array; owner writes, all read */
  tdm_deque_array_t *retired;  /* outgrown arrays, freed at destroy */
} tdm_deque_t;

/* Returned by tdm_deque_steal when it lost a race: retry elsewhere. */
#define TDM_DEQUE_ABORT ((void *)1)

/* Any thread, before use.  Returns 0 or UV_ENOMEM. */
int tdm_deque_init(tdm_deque_t *dq, unsigned log2_capacity);
/* Once no thread uses it any more. */
void tdm_deque_destroy(tdm_deque_t *dq);
/* Any thread.  The oldest item, NULL when empty, or TDM_DEQUE_ABORT when
 * another thread took it first. */
void *tdm_deque_steal(tdm_deque_t *dq);
/* Any thread: a racy estimate of how many items are in it. */
uint64_t tdm_deque_size(const tdm_deque_t *dq);

/* The owner's two operations are inline: a join does one of each, and a
 * call apiece (with the registers the rare grow path saves) was a fifth
 * of a join's instructions.  The grow path stays out of line, cold. */
__attribute__((cold, noinline)) tdm_deque_array_t *
tdm_deque__grow(tdm_deque_t *dq, tdm_deque_array_t *a, uint64_t t, uint64_t b);

/* Owner only.  Grows the array when full; returns 0 or UV_ENOMEM. */
static inline int tdm_deque_push_owner(tdm_deque_t *dq, void *item) {
  tdm_deque_array_t *a;
  uint64_t b;
  uint64_t t;

  b = tdm_load_64(&dq->bottom);
  t = tdm_load_acq_64(&dq->top);
  a = tdm_load_ptr((void **)&dq->array);
  if (__builtin_expect((int64_t)(b - t) > (int64_t)a->mask, 0)) {
    a = tdm_deque__grow(dq, a, t, b);
    if (a == NULL)
      return UV_ENOMEM;
  }
  tdm_store_ptr(&a->slot[b & a->mask], item);
  /* Release: a thief that sees the new bottom sees the item in its slot. */
  tdm_store_rel_64(&dq->bottom, b + 1);
  return 0;
}

/* Owner only.  The newest item, or NULL when empty. */
static inline void *tdm_deque_take_owner(tdm_deque_t *dq) {
  tdm_deque_array_t *a;
  uint64_t b;
  uint64_t t;
  void *item;

  /* Fast path: only the owner adds items and top only grows, so an empty
   * look is final for the owner -- no need for the fence below. */
  b = tdm_load_64(&dq->bottom);
  if ((int64_t)(b - tdm_load_64(&dq->top)) <= 0)
    return NULL;
  b--;
  a = tdm_load_ptr((void **)&dq->array);
  tdm_store_64(&dq->bottom, b);
  /* Store-load: the claim on slot b must be visible before we read top, or
   * a thief and we could both take the last item (mfence on x86-64). */
  tdm_fence_sc();
  t = tdm_load_64(&dq->top);
  if ((int64_t)(t - b) > 0) {
    /* Empty: undo the claim. */
    tdm_store_64(&dq->bottom, b + 1);
    return NULL;
  }
  item = tdm_load_ptr(&a->slot[b & a->mask]);
  if (t != b)
    return item; /* more than one item left: no thief can reach slot b */
  /* The last item: race the thieves for it with a CAS on top. */
  if (!tdm_cas_64(&dq->top, t, t + 1))
    item = NULL;
  tdm_store_64(&dq->bottom, b + 1);
  return item;
}

#endif /* TANDEM_DEQUE_H */
