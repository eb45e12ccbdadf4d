/* SPDX-License-Identifier: MIT */
/*
 * test_inject.c: the injection ring (src/inject.c) on its own, apart from
 * the deque and the pool: FIFO order, a full ring, its sizes, cancelling a
 * cell in place, the close scan (tdm_inject_cancel_owned), then stress runs
 * with producers, consumers and cancellers in which every item must be
 * consumed or cancelled exactly once, never both, never lost.
 */
#include <check.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "inject.h"
#include "suite_run.h"

#define ITEM(i) ((void *)(uintptr_t)(((i) + 1) << 1)) /* never NULL or 1 */
#define INDEX(p) ((((uintptr_t)(p)) >> 1) - 1)

/* ------------------------------------------------- single-threaded */

/* Items come out in the order they went in, across many laps of a small
 * ring. */
START_TEST(test_inject_fifo_across_laps) {
  tdm_inject_t q;
  tdm_cell_t *cell;
  uint64_t pos;
  uintptr_t next_in;
  uintptr_t next_out;
  unsigned k;
  bool more;

  ck_assert_int_eq(tdm_inject_init(&q, 8), 0);
  ck_assert_ptr_null(tdm_inject_pop_mc(&q, &more));
  next_in = 0;
  next_out = 0;
  /* Fill by 1..8, drain by 1..8 in turn, so the ends wrap at every
   * offset. */
  for (k = 0; k < 200; k++) {
    unsigned n_in = 1 + k % 8;
    unsigned n_out = 1 + (k * 5) % 8;
    unsigned i;

    for (i = 0; i < n_in && tdm_inject_size(&q) < 8; i++) {
      ck_assert(tdm_inject_push_mp(&q, ITEM(next_in), NULL, &cell, &pos));
      ck_assert_uint_eq(pos, next_in);
      ck_assert_ptr_eq(cell, &q.cells[pos & q.mask]);
      next_in++;
    }
    for (i = 0; i < n_out && next_out < next_in; i++)
      ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(next_out++));
  }
  while (next_out < next_in)
    ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(next_out++));
  ck_assert_ptr_null(tdm_inject_pop_mc(&q, &more));
  ck_assert_uint_gt(next_in, 8 * 10); /* it did lap */
  tdm_inject_destroy(&q);
}
END_TEST

/* A full ring refuses a push and changes nothing; one pop makes room for
 * exactly one.  Capacity rounds up to a power of two. */
START_TEST(test_inject_full_ring_refuses) {
  tdm_inject_t q;
  tdm_cell_t *cell;
  uint64_t pos;
  uintptr_t i;
  bool more;

  ck_assert_int_eq(tdm_inject_init(&q, 5), 0); /* 8 cells */
  ck_assert_uint_eq(q.mask + 1, 8);
  for (i = 0; i < 8; i++)
    ck_assert(tdm_inject_push_mp(&q, ITEM(i), NULL, &cell, &pos));
  cell = NULL;
  pos = 12345;
  ck_assert(!tdm_inject_push_mp(&q, ITEM(8), NULL, &cell, &pos));
  ck_assert_ptr_null(cell); /* a refused push writes nothing back */
  ck_assert_uint_eq(pos, 12345);
  ck_assert_uint_eq(tdm_inject_size(&q), 8);
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(0));
  ck_assert(more);
  ck_assert(tdm_inject_push_mp(&q, ITEM(8), NULL, &cell, &pos));
  ck_assert(!tdm_inject_push_mp(&q, ITEM(9), NULL, &cell, &pos));
  for (i = 1; i <= 8; i++)
    ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(i));
  ck_assert(!more);
  ck_assert_ptr_null(tdm_inject_pop_mc(&q, &more));
  tdm_inject_destroy(&q);
}
END_TEST

/* tdm_inject_push_n: as many as fit, from the front, at consecutive
 * positions, each cell's address written back before it is published and
 * each cell cancellable like a single push's; 0 on a full ring. */
START_TEST(test_inject_push_n_fills_what_fits) {
  tdm_inject_t q;
  tdm_cell_t *cells[6];
  void **cellps[6];
  void *items[6];
  uint64_t pos;
  uintptr_t i;
  bool more;

  ck_assert_int_eq(tdm_inject_init(&q, 8), 0);
  for (i = 0; i < 6; i++) {
    items[i] = ITEM(i);
    cells[i] = NULL;
    cellps[i] = (void **)&cells[i];
  }
  ck_assert_uint_eq(tdm_inject_push_n(&q, items, NULL, cellps, 3, &pos), 3);
  ck_assert_uint_eq(pos, 0);
  for (i = 0; i < 3; i++)
    ck_assert_ptr_eq(cells[i], &q.cells[i]);
  /* Five cells left: of the next six, the first five go in. */
  ck_assert_uint_eq(tdm_inject_push_n(&q, items, NULL, cellps, 6, &pos), 5);
  ck_assert_uint_eq(pos, 3);
  ck_assert_uint_eq(tdm_inject_push_n(&q, items, NULL, cellps, 1, &pos), 0);
  ck_assert_uint_eq(tdm_inject_size(&q), 8);
  ck_assert(tdm_inject_cancel_in(&q, cells[1], ITEM(1))); /* position 4 */
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(0));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(1));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(2));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(0));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(2)); /* 1 cancelled */
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(3));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(4));
  ck_assert_ptr_null(tdm_inject_pop_mc(&q, &more));
  tdm_inject_destroy(&q);
}
END_TEST

/* tdm_inject_size counts every position in use, tombstones included;
 * tdm_inject_live only the items a consumer would get. */
START_TEST(test_inject_size_and_live) {
  tdm_inject_t q;
  tdm_cell_t *cells[6];
  uint64_t pos;
  uintptr_t i;
  bool more;

  ck_assert_int_eq(tdm_inject_init(&q, 16), 0);
  ck_assert_uint_eq(tdm_inject_size(&q), 0);
  ck_assert_uint_eq(tdm_inject_live(&q), 0);
  for (i = 0; i < 6; i++)
    ck_assert(tdm_inject_push_mp(&q, ITEM(i), NULL, &cells[i], &pos));
  ck_assert_uint_eq(tdm_inject_size(&q), 6);
  ck_assert_uint_eq(tdm_inject_live(&q), 6);
  ck_assert(tdm_inject_cancel_in(&q, cells[1], ITEM(1)));
  ck_assert(tdm_inject_cancel_in(&q, cells[2], ITEM(2)));
  ck_assert_uint_eq(tdm_inject_size(&q), 6);
  ck_assert_uint_eq(tdm_inject_live(&q), 4);
  /* Popping 0 and skipping the two tombstones on the way to 3. */
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(0));
  ck_assert_uint_eq(tdm_inject_size(&q), 5);
  ck_assert_uint_eq(tdm_inject_live(&q), 3);
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(3));
  ck_assert_uint_eq(tdm_inject_size(&q), 2);
  ck_assert_uint_eq(tdm_inject_live(&q), 2);
  ck_assert(tdm_inject_ahead(&q, pos)); /* 4 still waits ahead of 5 */
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(4));
  ck_assert(!tdm_inject_ahead(&q, pos));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(5));
  ck_assert_uint_eq(tdm_inject_size(&q), 0);
  ck_assert_uint_eq(tdm_inject_live(&q), 0);
  tdm_inject_destroy(&q);
}
END_TEST

/* Cancelling takes an item back out of its cell in place: once, only the
 * item the cell holds, never one already consumed; the consumer skips the
 * tombstone and the cell serves the next lap. */
START_TEST(test_inject_cancel_in_place) {
  tdm_inject_t q;
  tdm_cell_t *cells[8];
  tdm_cell_t *cell;
  uint64_t pos;
  uintptr_t i;
  bool more;

  ck_assert_int_eq(tdm_inject_init(&q, 8), 0);
  for (i = 0; i < 8; i++)
    ck_assert(tdm_inject_push_mp(&q, ITEM(i), NULL, &cells[i], &pos));
  ck_assert(!tdm_inject_push_mp(&q, ITEM(8), NULL, &cell, &pos)); /* full */
  ck_assert(tdm_inject_cancel_in(&q, cells[1], ITEM(1)));
  ck_assert(tdm_inject_cancel_in(&q, cells[5], ITEM(5)));
  ck_assert(!tdm_inject_cancel_in(&q, cells[5], ITEM(5))); /* only once */
  ck_assert(!tdm_inject_cancel_in(&q, cells[2], ITEM(3))); /* wrong item */
  ck_assert(!tdm_inject_cancel_in(&q, NULL, ITEM(3)));     /* no cell */
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(0));
  ck_assert(!tdm_inject_cancel_in(&q, cells[0], ITEM(0))); /* consumed */
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(2));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(3));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(4));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(6));
  ck_assert(more); /* 7 is ready behind it */
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(7));
  ck_assert(!more);
  ck_assert_ptr_null(tdm_inject_pop_mc(&q, &more));
  /* A tombstone's cell is free again: the next lap fills all 8. */
  for (i = 10; i < 18; i++)
    ck_assert(tdm_inject_push_mp(&q, ITEM(i), NULL, &cell, &pos));
  ck_assert(!tdm_inject_cancel_in(&q, cells[1], ITEM(1))); /* old lap */
  for (i = 10; i < 18; i++)
    ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(i));
  /* The two-step form: claim the cell, then count the tombstone. */
  ck_assert(tdm_inject_push_mp(&q, ITEM(20), NULL, &cell, &pos));
  ck_assert(tdm_inject_cancel_cell(cell, ITEM(20)));
  tdm_inject_tombstoned(&q);
  ck_assert_uint_eq(tdm_inject_live(&q), 0);
  ck_assert_ptr_null(tdm_inject_pop_mc(&q, &more));
  ck_assert_uint_eq(tdm_inject_size(&q), 0);
  tdm_inject_destroy(&q);
}
END_TEST

static void sum_taken(void *item, void *arg) {
  uintptr_t *sum = arg;
  *sum += INDEX(item);
}

/* The close scan takes back exactly the waiting items of one owner: not
 * another owner's, not one consumed, not one cancelled already. */
START_TEST(test_inject_cancel_owned_takes_only_that_owners_items) {
  tdm_inject_t q;
  tdm_cell_t *cells[10];
  uint64_t pos;
  uintptr_t sum;
  uintptr_t i;
  int a;
  int b;
  bool more;

  ck_assert_int_eq(tdm_inject_init(&q, 16), 0);
  for (i = 0; i < 10; i++) /* even items belong to a, odd to b */
    ck_assert(tdm_inject_push_mp(&q, ITEM(i), i % 2 ? (void *)&b : &a,
                                 &cells[i], &pos));
  ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(0)); /* consumed */
  ck_assert(tdm_inject_cancel_in(&q, cells[4], ITEM(4)));  /* cancelled */
  sum = 0;
  ck_assert_uint_eq(tdm_inject_cancel_owned(&q, &a, sum_taken, &sum), 3);
  ck_assert_uint_eq(sum, 2 + 6 + 8);
  ck_assert_uint_eq(tdm_inject_live(&q), 5);
  /* A second scan finds nothing more of a's. */
  ck_assert_uint_eq(tdm_inject_cancel_owned(&q, &a, sum_taken, &sum), 0);
  for (i = 1; i < 10; i += 2)
    ck_assert_ptr_eq(tdm_inject_pop_mc(&q, &more), ITEM(i));
  ck_assert_ptr_null(tdm_inject_pop_mc(&q, &more));
  ck_assert_uint_eq(tdm_inject_live(&q), 0);
  tdm_inject_destroy(&q);
}
END_TEST

/* ------------------------------------------------------- stress runs */

#define PRODUCERS 3
#define CONSUMERS 3
#define CANCELLERS 3

/* The shared state of a run: `taken[i]` counts how often item i was
 * consumed or cancelled (exactly once each if the ring is right), `cells`
 * publishes where each item was pushed, for cancellers. */
typedef struct ring_s {
  tdm_inject_t q;
  unsigned n_items;
  unsigned producers;
  unsigned char *taken;
  tdm_cell_t **cells;
  uint64_t consumed;
  uint64_t cancelled;
  uint64_t cancelled_by_scan;
  uint64_t wrong_owner; /* items the scan took that were not its owner's */
  uint64_t producers_left;
  int self_cancel; /* producers take every 7th item back at once */
  unsigned batch;  /* > 1: producers push that many at once (push_n) */
  const void *owner_a;
  const void *owner_b;
} ring_t;

typedef struct worker_arg_s {
  ring_t *r;
  unsigned index;
} worker_arg_t;

static void mark_taken(ring_t *r, void *item) {
  __atomic_fetch_add(&r->taken[INDEX(item)], 1, __ATOMIC_RELAXED);
}

static unsigned env_count(const char *name, unsigned dflt) {
  const char *v = getenv(name);
  return v != NULL && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

static void ring_init(ring_t *r, unsigned capacity, unsigned producers,
                      unsigned per_producer) {
  memset(r, 0, sizeof(*r));
  ck_assert_int_eq(tdm_inject_init(&r->q, capacity), 0);
  r->producers = producers;
  r->n_items = producers * per_producer;
  r->producers_left = producers;
  r->taken = calloc(r->n_items, 1);
  r->cells = calloc(r->n_items, sizeof(*r->cells));
  ck_assert_ptr_nonnull(r->taken);
  ck_assert_ptr_nonnull(r->cells);
}

/* Every item taken exactly once; counters add up. */
static void ring_check_and_free(ring_t *r) {
  unsigned bad;
  unsigned first_bad;
  unsigned i;

  bad = 0;
  first_bad = 0;
  for (i = 0; i < r->n_items; i++)
    if (r->taken[i] != 1 && bad++ == 0)
      first_bad = i;
  ck_assert_msg(bad == 0, "%u items not taken exactly once (item %u: %u times)",
                bad, first_bad, r->taken[first_bad]);
  ck_assert_uint_eq(r->consumed + r->cancelled + r->cancelled_by_scan,
                    r->n_items);
  ck_assert_uint_eq(tdm_inject_size(&r->q), 0);
  ck_assert_uint_eq(tdm_inject_live(&r->q), 0);
  free(r->taken);
  free(r->cells);
  tdm_inject_destroy(&r->q);
}

/* A producer has pushed item i into `cell`: publishes the cell for the
 * cancellers, and takes every 7th item back at once when asked to (as
 * tandem_cancel right after tandem_queue_work). */
static void pushed(ring_t *r, uintptr_t i, tdm_cell_t *cell) {
  __atomic_store_n(&r->cells[i], cell, __ATOMIC_RELEASE);
  if (r->self_cancel && i % 7 == 0 &&
      tdm_inject_cancel_in(&r->q, cell, ITEM(i))) {
    mark_taken(r, ITEM(i));
    __atomic_fetch_add(&r->cancelled, 1, __ATOMIC_RELAXED);
  }
}

#define MAX_BATCH 8

/* Items i, i + P, ... (up to r->batch of them, below n_items) with one
 * tdm_inject_push_n at a time, retrying the rest while the ring is full,
 * as a drain pushes its batch.  Returns the next item of this producer. */
static uintptr_t push_batch(ring_t *r, uintptr_t i) {
  tdm_cell_t *cells[MAX_BATCH];
  void **cellps[MAX_BATCH];
  void *items[MAX_BATCH];
  uintptr_t idx[MAX_BATCH];
  unsigned n;
  unsigned done;
  unsigned k;
  uint64_t pos;

  for (n = 0; n < r->batch && n < MAX_BATCH && i < r->n_items;
       n++, i += r->producers) {
    idx[n] = i;
    items[n] = ITEM(i);
    cellps[n] = (void **)&cells[n];
  }
  for (done = 0; done < n; done += k) {
    k = tdm_inject_push_n(&r->q, items + done, NULL, cellps + done, n - done,
                          &pos);
    if (k == 0)
      sched_yield();
  }
  for (k = 0; k < n; k++)
    pushed(r, idx[k], cells[k]);
  return i;
}

/* Producer k pushes items k, k + P, k + 2P, ... (so they interleave),
 * retrying while the ring is full, and publishes each one's cell. */
static void producer_main(void *arg) {
  worker_arg_t *wa = arg;
  ring_t *r = wa->r;
  tdm_cell_t *cell;
  uint64_t pos;
  uintptr_t i;
  const void *owner;

  for (i = wa->index; i < r->n_items;) {
    if (r->batch > 1) {
      i = push_batch(r, i);
      continue;
    }
    owner = i % 2 ? r->owner_b : r->owner_a;
    while (!tdm_inject_push_mp(&r->q, ITEM(i), (void *)owner, &cell, &pos))
      sched_yield();
    pushed(r, i, cell);
    i += r->producers;
  }
  __atomic_fetch_sub(&r->producers_left, 1, __ATOMIC_RELEASE);
}

/* Consumes until every producer is done and the ring is empty. */
static void consumer_main(void *arg) {
  worker_arg_t *wa = arg;
  ring_t *r = wa->r;
  void *item;
  bool more;

  for (;;) {
    item = tdm_inject_pop_mc(&r->q, &more);
    if (item != NULL) {
      mark_taken(r, item);
      __atomic_fetch_add(&r->consumed, 1, __ATOMIC_RELAXED);
      continue;
    }
    if (__atomic_load_n(&r->producers_left, __ATOMIC_ACQUIRE) == 0 &&
        tdm_inject_size(&r->q) == 0)
      return;
    sched_yield();
  }
}

/* Tries to cancel every item it is given, as tandem_cancel would: a
 * cancel that wins owns the item. */
static void canceller_main(void *arg) {
  worker_arg_t *wa = arg;
  ring_t *r = wa->r;
  tdm_cell_t *cell;
  uintptr_t i;

  /* Canceller k tries items k, k + CANCELLERS, ... in the order they are
   * pushed, racing the consumers for each. */
  for (i = wa->index; i < r->n_items; i += CANCELLERS) {
    while ((cell = __atomic_load_n(&r->cells[i], __ATOMIC_ACQUIRE)) == NULL)
      sched_yield();
    if (tdm_inject_cancel_in(&r->q, cell, ITEM(i))) {
      mark_taken(r, ITEM(i));
      __atomic_fetch_add(&r->cancelled, 1, __ATOMIC_RELAXED);
    }
  }
}

static void start_threads(uv_thread_t *tids, worker_arg_t *args, unsigned n,
                          ring_t *r, uv_thread_cb fn) {
  unsigned k;

  for (k = 0; k < n; k++) {
    args[k].r = r;
    args[k].index = k;
    ck_assert_int_eq(uv_thread_create(&tids[k], fn, &args[k]), 0);
  }
}

static void join_threads(uv_thread_t *tids, unsigned n) {
  unsigned k;

  for (k = 0; k < n; k++)
    ck_assert_int_eq(uv_thread_join(&tids[k]), 0);
}

/* Producers and consumers only: every item consumed exactly once. */
START_TEST(test_inject_mpmc_every_item_exactly_once) {
  uv_thread_t prod[PRODUCERS];
  uv_thread_t cons[CONSUMERS];
  worker_arg_t pa[PRODUCERS];
  worker_arg_t ca[CONSUMERS];
  ring_t r;

  ring_init(&r, 64, PRODUCERS, env_count("TANDEM_INJECT_ITEMS", 100000));
  start_threads(cons, ca, CONSUMERS, &r, consumer_main);
  start_threads(prod, pa, PRODUCERS, &r, producer_main);
  join_threads(prod, PRODUCERS);
  join_threads(cons, CONSUMERS);
  ck_assert_uint_eq(r.consumed, r.n_items);
  ck_assert_uint_eq(r.cancelled, 0);
  ring_check_and_free(&r);
}
END_TEST

/* Cancellers race the consumers for every item, and each producer takes
 * every 7th item back right after pushing it, `batch` items at a push
 * (1: tdm_inject_push_mp): each item is either consumed or cancelled,
 * never both, never lost. */
static void cancel_race(unsigned batch) {
  uv_thread_t prod[PRODUCERS];
  uv_thread_t cons[CONSUMERS];
  uv_thread_t canc[CANCELLERS];
  worker_arg_t pa[PRODUCERS];
  worker_arg_t ca[CONSUMERS];
  worker_arg_t xa[CANCELLERS];
  ring_t r;

  ring_init(&r, 64, PRODUCERS, env_count("TANDEM_INJECT_ITEMS", 100000));
  r.self_cancel = 1;
  r.batch = batch;
  start_threads(cons, ca, CONSUMERS, &r, consumer_main);
  start_threads(canc, xa, CANCELLERS, &r, canceller_main);
  start_threads(prod, pa, PRODUCERS, &r, producer_main);
  join_threads(prod, PRODUCERS);
  join_threads(canc, CANCELLERS);
  join_threads(cons, CONSUMERS);
  /* Both sides won some: the race was run. */
  ck_assert_uint_gt(r.cancelled, 0);
  ck_assert_uint_gt(r.consumed, 0);
  ring_check_and_free(&r);
}

START_TEST(test_inject_cancel_races_consumers) {
  cancel_race(1);
}
END_TEST

/* The same race, with producers that push 5 items at a time
 * (tdm_inject_push_n, as a drain does) into a ring of 64: batches straddle
 * the ring's end and find it full. */
START_TEST(test_inject_push_n_races_consumers_and_cancels) {
  cancel_race(5);
}
END_TEST

/* The close scan's callback: the scanner owns `item` now. */
static void scan_taken(void *item, void *arg) {
  ring_t *r = arg;

  mark_taken(r, item);
  if (INDEX(item) % 2 != 0) /* owner b's: the scan must not take it */
    __atomic_fetch_add(&r->wrong_owner, 1, __ATOMIC_RELAXED);
}

/* Scans the ring for owner a's items, again and again, while producers
 * push and consumers drain; then once more once the producers are done. */
static void scanner_main(void *arg) {
  worker_arg_t *wa = arg;
  ring_t *r = wa->r;
  unsigned n;
  int last;

  do {
    last = __atomic_load_n(&r->producers_left, __ATOMIC_ACQUIRE) == 0;
    n = tdm_inject_cancel_owned(&r->q, r->owner_a, scan_taken, r);
    __atomic_fetch_add(&r->cancelled_by_scan, n, __ATOMIC_RELAXED);
    sched_yield();
  } while (!last);
}

/* The close scan for one owner races producers (of two owners' items) and
 * consumers: each of owner a's items is consumed or taken back by the
 * scan, never both; owner b's are never taken by the scan; none is lost. */
START_TEST(test_inject_cancel_owned_races_consumers) {
  uv_thread_t prod[PRODUCERS];
  uv_thread_t cons[CONSUMERS];
  uv_thread_t scanner;
  worker_arg_t pa[PRODUCERS];
  worker_arg_t ca[CONSUMERS];
  worker_arg_t sa;
  ring_t r;
  int a;
  int b;

  ring_init(&r, 64, PRODUCERS, env_count("TANDEM_INJECT_ITEMS", 100000));
  r.owner_a = &a;
  r.owner_b = &b;
  start_threads(cons, ca, CONSUMERS, &r, consumer_main);
  start_threads(&scanner, &sa, 1, &r, scanner_main);
  start_threads(prod, pa, PRODUCERS, &r, producer_main);
  join_threads(prod, PRODUCERS);
  join_threads(&scanner, 1);
  join_threads(cons, CONSUMERS);
  ck_assert_uint_eq(r.wrong_owner, 0);
  ck_assert_uint_eq(r.cancelled, 0);
  ring_check_and_free(&r);
}
END_TEST

/* The close scan with nobody else consuming: a ring holding both owners'
 * items, some consumed, gives back exactly owner a's waiting ones. */
START_TEST(test_inject_cancel_owned_after_producers) {
  uv_thread_t prod[PRODUCERS];
  worker_arg_t pa[PRODUCERS];
  ring_t r;
  unsigned n;
  void *item;
  bool more;
  int a;
  int b;

  ring_init(&r, 4096, PRODUCERS, 1000);
  r.owner_a = &a;
  r.owner_b = &b;
  start_threads(prod, pa, PRODUCERS, &r, producer_main);
  join_threads(prod, PRODUCERS);
  /* Consume the oldest hundred, then scan. */
  for (n = 0; n < 100; n++) {
    item = tdm_inject_pop_mc(&r.q, &more);
    ck_assert_ptr_nonnull(item);
    mark_taken(&r, item);
    r.consumed++;
  }
  r.cancelled_by_scan = tdm_inject_cancel_owned(&r.q, &a, scan_taken, &r);
  ck_assert_uint_eq(r.wrong_owner, 0);
  /* Every one of a's (the even items) that was not consumed. */
  n = 0;
  for (unsigned i = 0; i < r.n_items; i += 2)
    n += r.taken[i] == 0 ? 0 : 1;
  ck_assert_uint_eq(n, r.n_items / 2);
  ck_assert_uint_eq(tdm_inject_live(&r.q),
                    r.n_items - r.consumed - r.cancelled_by_scan);
  while ((item = tdm_inject_pop_mc(&r.q, &more)) != NULL) {
    ck_assert_uint_eq(INDEX(item) % 2, 1); /* only b's are left */
    mark_taken(&r, item);
    r.consumed++;
  }
  ring_check_and_free(&r);
}
END_TEST

int main(void) {
  Suite *s;
  TCase *tc;

  s = suite_create("inject");
  tc = tcase_create("single_thread");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, test_inject_fifo_across_laps);
  tcase_add_test(tc, test_inject_full_ring_refuses);
  tcase_add_test(tc, test_inject_push_n_fills_what_fits);
  tcase_add_test(tc, test_inject_size_and_live);
  tcase_add_test(tc, test_inject_cancel_in_place);
  tcase_add_test(tc, test_inject_cancel_owned_takes_only_that_owners_items);
  suite_add_tcase(s, tc);
  tc = tcase_create("threads");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_inject_mpmc_every_item_exactly_once);
  tcase_add_test(tc, test_inject_cancel_races_consumers);
  tcase_add_test(tc, test_inject_push_n_races_consumers_and_cancels);
  tcase_add_test(tc, test_inject_cancel_owned_races_consumers);
  tcase_add_test(tc, test_inject_cancel_owned_after_producers);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
