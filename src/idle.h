/* SPDX-License-Identifier: MIT */
/*
 * idle.h: the pool's idle policy -- the only place that decides whether a
 * worker that found no work searches on, yields or parks, and which parked
 * worker new work wakes.  The scheduler (pool.c) reports events; idle.c
 * answers.  The protocol and its proof sketch are at the top of idle.c.
 */
#ifndef TANDEM_IDLE_H
#define TANDEM_IDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomic.h"
#include "park.h"

/* One per worker, on a cache line of its own: other threads write it. */
typedef struct tdm_sleeper_s {
  tdm_parker_t parker;
  uint32_t sleeping; /* 1 while parked; a waker CASes it to 0 */
  uint32_t cpu;      /* CPU it last looked from while a loop streams;
                        UINT32_MAX: not known */
  uint32_t unrest;   /* 1: must not rest on its next look, as no other
                        worker can take the work (idle.c, hand_over) */
} TDM_ALIGNED tdm_sleeper_t;

/* A worker's own search state: touched by that worker only (the counters
 * are read by tandem_pool_stats). */
typedef struct tdm_search_s {
  bool searching;    /* counted in the idle word's searchers */
  bool hot;          /* just ran an item: the next is likely on its way */
  unsigned rounds;   /* looks left in this search */
  uint64_t deadline; /* the clock's ceiling on this search */
  uint64_t last;     /* the clock at the last look that read it */
  uint64_t parks;    /* times it slept */
  uint64_t wakeups;  /* times another thread woke it */
  /* While the pool records time (tdm_idle_t.timed): clock.h readings. */
  uint64_t parked_ticks; /* time asleep, finished sleeps */
  uint64_t parked_since; /* the current sleep's start; 0 awake */
} tdm_search_t;

/* Where work could be, as the pool sees it: any queue, or (own_only) the
 * worker's own deque.  Racy: the idle module calls it only after a full
 * barrier, as the re-check half of its Dekker pairs. */
typedef bool (*tdm_has_work_fn)(void *ctx, unsigned worker, bool own_only);

/* Where workers and other threads wait for a join or a group to finish:
 * the waiters of a key (a group's or a join frame's address) and its last
 * finisher use the slot the key hashes to, a parking lot in the pool's
 * memory -- which outlives every group and frame, so the finisher may move
 * the slot after its decrement let the waiter return and free the key. */
#define TDM_LOT_SLOTS 16
typedef struct tdm_lot_slot_s {
  tdm_parker_t parker;
} TDM_ALIGNED tdm_lot_slot_t;

typedef struct tdm_idle_s {
  /* Written on every search and park: a line of its own.  Low half: the
   * workers searching for work (or woken to); high half: those parked.
   * One word, so that one load answers "is anyone searching, and does
   * anyone sleep?" and the search cap reads both at one instant. */
  uint64_t counts TDM_ALIGNED;
  uint32_t wake_cursor; /* where the next wake-up starts looking */
  uint64_t contended_until; /* no searching or polling before then */
  /* Written when a loop starts or stops streaming or polling; read on
   * every look. */
  uint32_t streams TDM_ALIGNED; /* loops streaming now */
  uint32_t stop;                /* set once: workers leave */
  /* Low half: loops polling (or streaming) with jobs in flight -- threads
   * that want a CPU all the time; high half: of those, the ones with one
   * job in flight (a lone round trip).  One word: one load reads both. */
  uint64_t loops;
  /* Read-only after tdm_idle_init. */
  uint32_t *busy_on TDM_ALIGNED; /* per CPU: loops streaming on it */
  unsigned ncpu_slots;           /* entries of busy_on */
  tdm_sleeper_t *sleepers;       /* one per worker */
  unsigned nworkers;
  unsigned usable_cpus; /* the CPU budget when made (tandem__cpu_budget) */
  unsigned mask_cpus;   /* the affinity mask's CPUs when made */
  bool can_rest;        /* a worker may rest for a streaming loop */
  bool timed;           /* time parks (the pool records time; set after
                           tdm_idle_init) */
  uint64_t spin_ns;     /* ceiling of a search; 0: never search */
  tdm_has_work_fn has_work;
  void *ctx;
  tdm_lot_slot_t lot[TDM_LOT_SLOTS]; /* see tdm_lot_slot_t */
} tdm_idle_t;

_Static_assert(offsetof(tdm_idle_t, streams) - offsetof(tdm_idle_t, counts) ==
                       TDM_CACHELINE &&
                   offsetof(tdm_idle_t, busy_on) -
                           offsetof(tdm_idle_t, streams) ==
                       TDM_CACHELINE,
               "the idle word, the stream count and the read-only fields "
               "must each have a cache line");

/* Pool creation: `nworkers` workers, searching for at most `spin_ns`.
 * Returns 0 or UV_ENOMEM. */
int tdm_idle_init(tdm_idle_t *idle, unsigned nworkers, uint64_t spin_ns,
                  tdm_has_work_fn has_work, void *ctx);
void tdm_idle_destroy(tdm_idle_t *idle);

/* The `loops` word's halves. */
#define TDM_LOOPS_POLLING ((uint64_t)1)
#define TDM_LOOPS_LONE ((uint64_t)1 << 32)

/* Loop thread: adds `delta` (sums of +-TDM_LOOPS_POLLING and
 * +-TDM_LOOPS_LONE) to the loops word as its loop starts or stops polling
 * or having one job in flight (loop.c, tell_pool).  Relaxed in effect: a
 * hint for the search cap and the yield, never a guard of work. */
static inline void tdm_idle_loops_add(tdm_idle_t *idle, uint64_t delta) {
  tdm_faa_64(&idle->loops, delta);
}

/* From the loops word: do loops poll, each with one job in flight? */
static inline bool tdm_idle_lone(uint64_t loops) {
  uint32_t polling = (uint32_t)loops;

  return polling != 0 && polling == (uint32_t)(loops >> 32);
}

/* The search cap, from the idle word `c` and the loops word `loops`: may a
 * worker (`hot`: it has just run an item) start a search?  While fewer
 * than half of the workers not parked search; a hot worker may be one
 * above that, unless every loop that polls has one job in flight: one
 * searcher serves a lone round trip, and a second only takes turns with
 * it (bench/README, "Two workers at W = 1"). */
static inline bool tdm_idle_may_search(const tdm_idle_t *idle, uint64_t c,
                                       uint64_t loops, bool hot) {
  uint32_t busy = idle->nworkers - (uint32_t)(c >> 32);

  return 2 * (uint32_t)c < busy + (hot && !tdm_idle_lone(loops) ? 2u : 0u);
}

/* Should a searcher yield its CPU between looks, rather than pause?  When
 * the pool's workers and a loop thread outnumber the usable CPUs, a
 * runnable loop thread may be waiting for this one's core -- except while
 * every polling loop has one job in flight and the threads that want a
 * CPU now (the workers not parked, the loops polling) fit the CPUs: then
 * a yield would only delay the lone round trip this searcher waits for. */
static inline bool tdm_idle_crowded(const tdm_idle_t *idle, uint64_t c,
                                    uint64_t loops) {
  if (idle->nworkers + 1 <= idle->usable_cpus)
    return false;
  if (!tdm_idle_lone(loops))
    return true;
  return idle->nworkers - (uint32_t)(c >> 32) + (uint32_t)loops >
         idle->usable_cpus;
}

/* Any thread, after publishing work and a full fence: makes sure some
 * worker will look for it (wakes one if none searches and one sleeps). */
void tdm_idle_notify(tdm_idle_t *idle);

/* Any thread: are workers parked?  A relaxed hint for cheap callers. */
static inline bool tdm_idle_sleepers(tdm_idle_t *idle) {
  return (tdm_load_64(&idle->counts) >> 32) != 0;
}

/* Any thread: is a worker searching (or woken and about to)?  Relaxed: a
 * hint, or the load after the caller's full barrier (pool.c's HIGH lane
 * rule). */
static inline bool tdm_idle_searching(tdm_idle_t *idle) {
  return (uint32_t)tdm_load_64(&idle->counts) != 0;
}

/* The slow halves of the two calls below (idle.c). */
bool tdm_idle_resting_streams(tdm_idle_t *idle, unsigned i);
void tdm_idle_stop_searching(tdm_idle_t *idle, tdm_search_t *s);

/* Worker `i`, before it looks: should it rest (take only from its own
 * deque) because a loop streams on its CPU?  Not on the turn after work
 * found every worker parked or resting (idle.c, hand_over).  Inline: on
 * every look, and while no loop streams it is two loads.  Relaxed: a hint
 * (idle.c, rests()). */
static inline bool tdm_idle_resting(tdm_idle_t *idle, unsigned i) {
  if (!idle->can_rest || tdm_load_u32(&idle->streams) == 0)
    return false;
  return tdm_idle_resting_streams(idle, i);
}

/* Worker, when it found an item (before running it).  Inline: once per
 * item, and a worker that went straight on is no searcher. */
static inline void tdm_idle_found(tdm_idle_t *idle, tdm_search_t *s) {
  if (s->searching)
    tdm_idle_stop_searching(idle, s);
  s->hot = true;
}

/* Worker `i`, when a look found nothing: searches on (after a pause or a
 * yield), or parks until woken.  Returns when the worker should look
 * again; false once the pool stops. */
bool tdm_idle_none(tdm_idle_t *idle, tdm_search_t *s, unsigned i,
                   bool resting);

/* Tests only (tests/test_idle.c): called by worker `worker` in
 * tdm_idle_none right before it counts itself parked, so that a test can
 * act in the window between a worker's decision to park and its re-check.
 * NULL in every program. */
extern void (*tdm_idle__before_park)(unsigned worker);

/* Worker, as it exits. */
void tdm_idle_exit(tdm_idle_t *idle, tdm_search_t *s);

/* tandem_pool_free: makes every worker leave. */
void tdm_idle_stop(tdm_idle_t *idle, unsigned started);

/* Loop thread: its loop starts streaming (workers on its CPU rest
 * meanwhile), notes where it runs now, or stops streaming (then work the
 * resting workers left is handed on).  *slot is the loop's own record of
 * the CPU it is counted on (UINT32_MAX: none). */
void tdm_idle_stream_begin(tdm_idle_t *idle, uint32_t *slot);
void tdm_idle_stream_at(tdm_idle_t *idle, uint32_t *slot);
void tdm_idle_stream_end(tdm_idle_t *idle, uint32_t *slot);

/* Any thread waiting for *count (the count of `key`'s unfinished parts)
 * to reach zero: sleeps until the last finisher calls
 * tdm_idle_finished(key).  A worker of the pool (`helper`) does not sleep
 * while work is visible in the queues: it returns to help.  Returns at
 * once if *count is zero; may return early (the caller loops). */
void tdm_idle_wait_zero(tdm_idle_t *idle, const void *key,
                        const uint32_t *count, bool helper);

/* Any thread, right after the store or decrement that made `key`'s count
 * zero: wakes its waiters.  Touches only the pool's lot, never `key`. */
void tdm_idle_finished(tdm_idle_t *idle, const void *key);

/* Any thread: is the machine contended as of `now` (uv_hrtime()), so that
 * nobody should search or poll (idle.c's search_step says when it is)?
 * The caller's clock reading: a polling loop reads the clock once a turn.
 * Relaxed: a hint. */
static inline bool tdm_idle_contended(const tdm_idle_t *idle, uint64_t now) {
  return now < tdm_load_64(&idle->contended_until);
}

#endif /* TANDEM_IDLE_H */
