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

#include "atomic.h"

typedef struct tdm_deque_array_s tdm_deque_array_t;

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
/* Owner only.  Grows the array when full; returns 0 or UV_ENOMEM. */
int tdm_deque_push_owner(tdm_deque_t *dq, void *item);
/* Owner only.  The newest item, or NULL when empty. */
void *tdm_deque_take_owner(tdm_deque_t *dq);
/* Any thread.  The oldest item, NULL when empty, or TDM_DEQUE_ABORT when
 * another thread took it first. */
void *tdm_deque_steal(tdm_deque_t *dq);
/* Any thread: a racy estimate of how many items are in it. */
uint64_t tdm_deque_size(const tdm_deque_t *dq);

#endif /* TANDEM_DEQUE_H */
