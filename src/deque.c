/* SPDX-License-Identifier: MIT */
/*
 * deque.c: the Chase-Lev deque (see deque.h).
 *
 * top and bottom only grow (as int64, never wrapping in practice); the live
 * items are [top, bottom).  The owner's take and a thief's steal race only
 * for the last item, and both settle it with a CAS on top.  Slots are read
 * and written with atomic (relaxed) operations: a thief holding a stale top
 * may read a slot the owner is overwriting, but its CAS on top then fails
 * and the value it read is dropped.
 */
#include "deque.h"

#include <stdlib.h>

#include <uv.h>

static tdm_deque_array_t *array_new(uint64_t capacity) {
  tdm_deque_array_t *a;

  a = malloc(sizeof(*a) + capacity * sizeof(void *));
  if (a == NULL)
    return NULL;
  a->mask = capacity - 1;
  a->prev = NULL;
  return a;
}

int tdm_deque_init(tdm_deque_t *dq, unsigned log2_capacity) {
  dq->top = 0;
  dq->bottom = 0;
  dq->retired = NULL;
  dq->array = array_new((uint64_t)1 << log2_capacity);
  return dq->array == NULL ? UV_ENOMEM : 0;
}

void tdm_deque_destroy(tdm_deque_t *dq) {
  tdm_deque_array_t *a;
  tdm_deque_array_t *prev;

  free(dq->array);
  for (a = dq->retired; a != NULL; a = prev) {
    prev = a->prev;
    free(a);
  }
  dq->array = NULL;
  dq->retired = NULL;
}

/* Owner only (tdm_deque_push_owner's slow path, deque.h): copies the live
 * items into an array twice as large. */
tdm_deque_array_t *tdm_deque__grow(tdm_deque_t *dq, tdm_deque_array_t *a,
                                   uint64_t t, uint64_t b) {
  tdm_deque_array_t *n;
  uint64_t i;

  n = array_new((a->mask + 1) * 2);
  if (n == NULL)
    return NULL;
  for (i = t; i != b; i++)
    tdm_store_ptr(&n->slot[i & n->mask], tdm_load_ptr(&a->slot[i & a->mask]));
  /* Release: a thief that loads the new array sees the copied slots. */
  tdm_store_rel_ptr((void **)&dq->array, n);
  a->prev = dq->retired;
  dq->retired = a;
  return n;
}

void *tdm_deque_steal(tdm_deque_t *dq) {
  tdm_deque_array_t *a;
  uint64_t t;
  uint64_t b;
  void *item;

  t = tdm_load_acq_64(&dq->top);
  /* The paper's seq_cst fence between reading top and bottom; on x86-64
   * loads stay in order and the CAS below settles any race for the last
   * item, so it costs only a compiler barrier there. */
  tdm_fence_sc_loads();
  b = tdm_load_acq_64(&dq->bottom);
  if ((int64_t)(b - t) <= 0)
    return NULL;
  a = tdm_load_acq_ptr((void **)&dq->array);
  item = tdm_load_ptr(&a->slot[t & a->mask]);
  /* The CAS is the claim: whoever moves top from t owns slot t's item. */
  if (!tdm_cas_64(&dq->top, t, t + 1))
    return TDM_DEQUE_ABORT;
  return item;
}

uint64_t tdm_deque_size(const tdm_deque_t *dq) {
  int64_t n;

  n = (int64_t)(tdm_load_64(&dq->bottom) - tdm_load_64(&dq->top));
  return n > 0 ? (uint64_t)n : 0;
}
