/* SPDX-License-Identifier: MIT */
/*
 * test_deque.c: the Chase-Lev deque (src/deque.c) on its own: order and
 * growth single-threaded, then a stress run in which every item must be
 * taken exactly once.  The injection ring has its own suite
 * (test_inject.c).
 */
#include <check.h>
#include <stdlib.h>

#include <uv.h>

#include "deque.h"
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

int main(void) {
  Suite *s;
  TCase *tc;

  s = suite_create("deque");
  tc = tcase_create("deque");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_deque_lifo_for_owner_fifo_for_thief);
  tcase_add_test(tc, test_deque_stress_every_item_taken_once);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
