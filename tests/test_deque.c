/* SPDX-License-Identifier: MIT */
/*
 * test_deque.c: the Chase-Lev deque (src/deque.c) and the injection ring
 * (src/inject.c) on their own: order and growth single-threaded, then
 * stress runs in which every item must be taken exactly once.
 */
#include <check.h>
#include <stdlib.h>

#include <uv.h>

#include "deque.h"
#include "inject.h"
#include "suite_run.h"

#define ITEM(i) ((void *)(uintptr_t)(((i) + 1) << 1)) /* never NULL or 1 */
#define INDEX(p) ((((uintptr_t)(p)) >> 1) - 1)

START_TEST(test_deque_lifo_for_owner_fifo_for_thief) {
  tdm_deque_t dq;
  uintptr_t i;

  ck_assert_int_eq(tdm_deque_init(&dq, 2), 0); /* 4 slots: forces growth */
  ck_assert_ptr_null(tdm_deque_take_owner(&dq));
  ck_assert_ptr_null(tdm_deque_steal(&dq));
  for (i = 0; i < 100; i++)
    ck_assert_int_eq(tdm_deque_push_owner(&dq, ITEM(i)), 0);
  ck_assert_uint_eq(tdm_deque_size(&dq), 100);
  ck_assert_ptr_eq(tdm_deque_steal(&dq), ITEM(0));
  ck_assert_ptr_eq(tdm_deque_steal(&dq), ITEM(1));
  ck_assert_ptr_eq(tdm_deque_take_owner(&dq), ITEM(99));
  ck_assert_ptr_eq(tdm_deque_take_owner(&dq), ITEM(98));
  for (i = 2; i < 98; i++)
    ck_assert_ptr_eq(tdm_deque_steal(&dq), ITEM(i));
  ck_assert_ptr_null(tdm_deque_take_owner(&dq));
  ck_assert_ptr_null(tdm_deque_steal(&dq));
  ck_assert_uint_eq(tdm_deque_size(&dq), 0);
  /* Reuse after empty, across the wrap of the (grown) array. */
  for (i = 0; i < 1000; i++) {
    ck_assert_int_eq(tdm_deque_push_owner(&dq, ITEM(i)), 0);
    ck_assert_ptr_eq(tdm_deque_take_owner(&dq), ITEM(i));
  }
  tdm_deque_destroy(&dq);
}
END_TEST

/* ------------------------------------------------------- deque stress */

#define STRESS_ITEMS 400000
#define THIEVES 3

typedef struct {
  tdm_deque_t dq;
  unsigned char *taken; /* per item: how many times it was taken */
  uint64_t owner_done;
  uint64_t count; /* items taken in total */
} stress_t;

static void take(stress_t *s, void *item) {
  /* Each item's byte is written by exactly one thread if the deque is
   * right; a duplicate shows up as 2 (or as a TSan report). */
  __atomic_fetch_add(&s->taken[INDEX(item)], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&s->count, 1, __ATOMIC_RELAXED);
}

static void thief_main(void *arg) {
  stress_t *s = arg;
  void *item;

  for (;;) {
    item = tdm_deque_steal(&s->dq);
    if (item == TDM_DEQUE_ABORT)
      continue;
    if (item != NULL) {
      take(s, item);
      continue;
    }
    if (__atomic_load_n(&s->owner_done, __ATOMIC_ACQUIRE) &&
        tdm_deque_size(&s->dq) == 0)
      return;
  }
}

START_TEST(test_deque_stress_every_item_taken_once) {
  uv_thread_t thieves[THIEVES];
  stress_t s;
  uintptr_t i;
  void *item;
  int t;

  ck_assert_int_eq(tdm_deque_init(&s.dq, 3), 0);
  s.taken = calloc(STRESS_ITEMS, 1);
  ck_assert_ptr_nonnull(s.taken);
  s.owner_done = 0;
  s.count = 0;
  for (t = 0; t < THIEVES; t++)
    ck_assert_int_eq(uv_thread_create(&thieves[t], thief_main, &s), 0);
  /* The owner pushes in bursts and pops some back, racing the thieves for
   * the last item again and again. */
  for (i = 0; i < STRESS_ITEMS; i++) {
    ck_assert_int_eq(tdm_deque_push_owner(&s.dq, ITEM(i)), 0);
    if (i % 3 == 2) {
      item = tdm_deque_take_owner(&s.dq);
      if (item != NULL)
        take(&s, item);
    }
  }
  while ((item = tdm_deque_take_owner(&s.dq)) != NULL)
    take(&s, item);
  __atomic_store_n(&s.owner_done, 1, __ATOMIC_RELEASE);
  for (t = 0; t < THIEVES; t++)
    uv_thread_join(&thieves[t]);
  ck_assert_uint_eq(s.count, STRESS_ITEMS);
  for (i = 0; i < STRESS_ITEMS; i++)
    ck_assert_msg(s.taken[i] == 1, "item %lu taken %u times", (unsigned long)i,
                  s.taken[i]);
  free(s.taken);
  tdm_deque_destroy(&s.dq);
}
END_TEST

/* ------------------------------------------------------- inject ring */

START_TEST(test_inject_fifo_full_and_cancel) {
  tdm_inject_t q;
  tdm_cell_t *cells[8];
  uint64_t pos;
  uintptr_t i;
  bool more;

  ck_assert_int_eq(tdm_inject_init(&q, 8), 0);
  ck_assert_ptr_null(tdm_inject_pop_mc(&q, &more));
  for (i = 0; i < 8; i++)
    ck_assert(tdm_inject_push_mp(&q, ITEM(i), NULL, &cells[i], &pos));
  ck_assert(!tdm_inject_push_mp(&q, ITEM(8), NULL, &cells[0], &pos)); /* full */
  ck_assert_uint_eq(tdm_inject_size(&q), 8);
  /* Cancel 1 and 5: the consumer skips them. */
  ck_assert(tdm_inject_cancel_in(&q, cells[1], ITEM(1)));
  ck_assert(tdm_inject_cancel_in(&q, cells[5], ITEM(5)));
  ck_assert(!tdm_inject_cancel_in(&q, cells[5], ITEM(5))); /* only once */
  ck_assert(!tdm_inject_cancel_in(&q, cells[2], ITEM(3))); /* wrong item */
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(0));
  ck_assert(!tdm_inject_cancel_in(&q, cells[0], ITEM(0))); /* already taken */
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(2));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(3));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(4));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(6));
  ck_assert(more); /* 7 is ready behind it */
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(7));
  ck_assert(!more);
  ck_assert_ptr_null(tdm_inject_pop_mc(&q, &more));
  tdm_inject_destroy(&q);
}
END_TEST

static void count_taken(void *item, void *arg) {
  uintptr_t *sum = arg;
  *sum += INDEX(item);
}

START_TEST(test_inject_cancel_owned_takes_only_that_owners_items) {
  tdm_inject_t q;
  tdm_cell_t *cell;
  uint64_t pos;
  uintptr_t sum;
  uintptr_t i;
  int a;
  int b;
  bool more;

  ck_assert_int_eq(tdm_inject_init(&q, 16), 0);
  for (i = 0; i < 10; i++) /* even items belong to a, odd to b */
    ck_assert(
        tdm_inject_push_mp(&q, ITEM(i), i % 2 ? (void *)&b : &a, &cell, &pos));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(0)); /* taken */
  sum = 0;
  ck_assert_uint_eq(tdm_inject_cancel_owned(&q, &a, count_taken, &sum), 4);
  ck_assert_uint_eq(sum, 2 + 4 + 6 + 8);
  for (i = 1; i < 10; i += 2)
    ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(i));
  ck_assert_ptr_null(tdm_inject_pop_mc(&q, &more));
  tdm_inject_destroy(&q);
}
END_TEST

#define RING_PRODUCERS 2
#define RING_CONSUMERS 2
#define RING_PER_PRODUCER 200000

typedef struct {
  tdm_inject_t q;
  unsigned char *taken;
  uint64_t cancelled;
  uint64_t consumed;
  uint64_t producers_left;
  uintptr_t base;
} ring_t;

typedef struct {
  ring_t *r;
  uintptr_t first;
} producer_arg_t;

static void producer_main(void *arg) {
  producer_arg_t *pa = arg;
  ring_t *r = pa->r;
  tdm_cell_t *cell;
  uint64_t pos;
  uintptr_t i;

  for (i = pa->first; i < pa->first + RING_PER_PRODUCER; i++) {
    while (!tdm_inject_push_mp(&r->q, ITEM(i), NULL, &cell, &pos))
      ;
    /* Every 7th item: try to take it back, as tandem_cancel does. */
    if (i % 7 == 0 && tdm_inject_cancel_in(&r->q, cell, ITEM(i))) {
      __atomic_fetch_add(&r->taken[i], 1, __ATOMIC_RELAXED);
      __atomic_fetch_add(&r->cancelled, 1, __ATOMIC_RELAXED);
    }
  }
  __atomic_fetch_sub(&r->producers_left, 1, __ATOMIC_RELEASE);
}

static void consumer_main(void *arg) {
  ring_t *r = arg;
  void *item;
  bool more;

  for (;;) {
    item = tdm_inject_pop_mc(&r->q, &more);
    if (item != NULL) {
      __atomic_fetch_add(&r->taken[INDEX(item)], 1, __ATOMIC_RELAXED);
      __atomic_fetch_add(&r->consumed, 1, __ATOMIC_RELAXED);
      continue;
    }
    if (__atomic_load_n(&r->producers_left, __ATOMIC_ACQUIRE) == 0 &&
        tdm_inject_size(&r->q) == 0)
      return;
  }
}

START_TEST(test_inject_stress_cancel_races_consumers) {
  uv_thread_t prod[RING_PRODUCERS];
  uv_thread_t cons[RING_CONSUMERS];
  producer_arg_t pa[RING_PRODUCERS];
  ring_t r;
  uintptr_t i;
  int k;

  ck_assert_int_eq(tdm_inject_init(&r.q, 1024), 0);
  r.taken = calloc(RING_PRODUCERS * RING_PER_PRODUCER, 1);
  r.cancelled = 0;
  r.consumed = 0;
  r.producers_left = RING_PRODUCERS;
  for (k = 0; k < RING_CONSUMERS; k++)
    ck_assert_int_eq(uv_thread_create(&cons[k], consumer_main, &r), 0);
  for (k = 0; k < RING_PRODUCERS; k++) {
    pa[k].r = &r;
    pa[k].first = (uintptr_t)k * RING_PER_PRODUCER;
    ck_assert_int_eq(uv_thread_create(&prod[k], producer_main, &pa[k]), 0);
  }
  for (k = 0; k < RING_PRODUCERS; k++)
    uv_thread_join(&prod[k]);
  for (k = 0; k < RING_CONSUMERS; k++)
    uv_thread_join(&cons[k]);
  ck_assert_uint_eq(r.cancelled + r.consumed,
                    RING_PRODUCERS * RING_PER_PRODUCER);
  for (i = 0; i < RING_PRODUCERS * RING_PER_PRODUCER; i++)
    ck_assert_msg(r.taken[i] == 1, "item %lu taken %u times", (unsigned long)i,
                  r.taken[i]);
  free(r.taken);
  tdm_inject_destroy(&r.q);
}
END_TEST

int main(void) {
  Suite *s;
  TCase *tc;

  s = suite_create("deque");
  tc = tcase_create("deque");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_deque_lifo_for_owner_fifo_for_thief);
  tcase_add_test(tc, test_deque_stress_every_item_taken_once);
  suite_add_tcase(s, tc);
  tc = tcase_create("inject");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_inject_fifo_full_and_cancel);
  tcase_add_test(tc, test_inject_cancel_owned_takes_only_that_owners_items);
  tcase_add_test(tc, test_inject_stress_cancel_races_consumers);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
