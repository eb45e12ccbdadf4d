/* SPDX-License-Identifier: MIT */
/*
 * idle.c: when a worker searches, yields or parks, and whom new work wakes.
 *
 * STATES.  A worker is running an item, searching (counted in the low half
 * of `counts`), or parked (counted in the high half, with its sleeper's
 * `sleeping` flag set).  A parked worker is woken by a thread that first
 * counts it as a searcher: a woken worker is a searcher until it finds
 * work or gives up.
 *
 * HOW MANY SEARCH.  Searching burns a CPU, so it is bounded by structure,
 * not by a clock (as Go's proc.go and Tokio's idle.rs bound it): a worker
 * may start a search only while fewer than half of the workers not parked
 * search -- a worker that has just run an item (hot: the next item of a
 * round trip is likely on its way) may be one above that cap, unless every
 * polling loop has just one job in flight, which one searcher serves
 * (tdm_idle_may_search).  A search is at most SEARCH_ROUNDS looks over
 * every queue, a woken worker's at most WOKEN_ROUNDS, and the clock
 * (spin_ns) is only a ceiling.  Between looks a searcher pauses; it calls
 * sched_yield() when the workers and a loop thread outnumber the usable
 * CPUs, so that a runnable loop thread gets the core at once instead of
 * after a time slice -- but not while it waits for a lone round trip and
 * the threads that want a CPU now fit them (tdm_idle_crowded).  The loops
 * tell the pool when they poll, and with how many jobs (the `loops` word,
 * idle.h).
 *
 * NO LOST WAKE-UP: the proof sketch.  Two Dekker pairs, each a store, a
 * full barrier, then a load of the other side's store.
 *   Submitter (any thread): publish the item; full fence; load `counts`
 * (tdm_idle_notify).  If it sees a searcher, it leaves the item to it; if
 * it sees no searcher and a sleeper, it counts one searcher (CAS on the
 * whole word) and wakes a sleeper, handing it that count.
 *   Worker going to sleep: set sleeping; counts += 1 << 32 (a full
 * barrier); re-check every queue; wait on the event count only if they are
 * empty and the count has not moved since the snapshot taken before.
 *   Worker ending a search: counts -= 1 (a full barrier); if it was the
 * last searcher and work is visible, notify (it becomes the submitter).
 * Claim: an item published while every worker is about to park is found.
 * Take the submitter's load L and the worker's barrier B (its increment of
 * the sleepers, or the decrement of the searchers of the last one).  If L
 * follows B in the barriers' total order, the submitter sees the worker
 * parked (it then wakes one: the CAS of sleeping picks exactly one waker
 * per sleeper, and the event count makes a wake between re-check and wait
 * return at once) or sees a searcher, whose own later decrement is again a
 * B with the same argument.  If B follows the submitter's fence, the
 * worker's re-check after B sees the item.  A notify that counted a
 * searcher but found nobody to wake gives the count back with a full
 * barrier and re-checks like a searcher that stops, else an item published
 * in between waited with every worker asleep (found by the spin model,
 * tests/model/park.pml).
 *   Resting workers (a loop streams on their CPU, tdm_idle_resting) look at
 * their own deque only, and notify passes them over -- unless every worker
 * is parked: then it wakes a resting one anyway, told not to rest on its
 * next look (wake_for_work).  A resting worker decides to rest before it
 * parks, so its re-check after B looks at every queue -- like any other
 * worker's, which the argument above needs -- whenever the stream ended
 * since, or B made it the last worker parked with nobody searching
 * (recheck; tests/test_idle.c replays both windows).  A resting worker that goes to park hands the
 * queues over (notify), and if that left every other worker parked with
 * work visible, it does not rest on its next look either (hand_over).  So
 * work never waits with every worker asleep.  When a stream ends,
 * tdm_idle_stream_end decrements `streams` (a full barrier) and notifies:
 * a resting sleeper either saw the stream end in its re-check or is
 * counted for that notify, which no longer passes it over.
 */
#define _GNU_SOURCE /* sched_yield */
#include "idle.h"
#include "clock.h"
#include "renice.h"
#include "sizing.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#define SEARCHER ((uint64_t)1)
#define SLEEPER ((uint64_t)1 << 32)
#define SEARCHERS(c) ((uint32_t)(c))
#define SLEEPERS(c) ((uint32_t)((c) >> 32))

/* The policy's constants: docs/tuning.md says what each is for and what
 * chose it. */
#define SEARCH_ROUNDS 256
#define WOKEN_ROUNDS 16
#define WOKEN_SPIN_NS (4 * 1000)
#define CLOCK_EVERY 16
/* Contention (search_step): searching pays only while our threads have
 * the cores to themselves. */
#define GAP_NS (500 * 1000)
#define CONTENDED_NS (20 * 1000 * 1000)

/* ---------------------------------------------------------------- set-up */

static unsigned cpu_slots(void) {
  long n = sysconf(_SC_NPROCESSORS_CONF);
  return n > 0 ? (unsigned)n : 1;
}

int tdm_idle_init(tdm_idle_t *idle, unsigned nworkers, uint64_t spin_ns,
                  tdm_has_work_fn has_work, void *ctx) {
  unsigned i;

  memset(idle, 0, sizeof(*idle));
  idle->nworkers = nworkers;
  idle->spin_ns = spin_ns;
  idle->has_work = has_work;
  idle->ctx = ctx;
  /* The affinity mask's CPUs, or the cgroup quota's where fewer: more
   * threads than that take turns, whichever limit it is. */
  idle->usable_cpus = tandem__cpu_budget();
  idle->mask_cpus = tandem__usable_cpus();
  /* Resting needs another worker, and another CPU it may run on. */
  idle->can_rest = nworkers >= 2 && idle->usable_cpus >= 2;
  idle->ncpu_slots = cpu_slots();
  idle->busy_on = calloc(idle->ncpu_slots, sizeof(*idle->busy_on));
  if (idle->busy_on == NULL ||
      posix_memalign((void **)&idle->sleepers, TDM_CACHELINE,
                     nworkers * sizeof(*idle->sleepers)) != 0) {
    free(idle->busy_on);
    idle->busy_on = NULL;
    idle->sleepers = NULL;
    return UV_ENOMEM;
  }
  memset(idle->sleepers, 0, nworkers * sizeof(*idle->sleepers));
  for (i = 0; i < nworkers; i++) {
    tdm_parker_init(&idle->sleepers[i].parker);
    idle->sleepers[i].cpu = UINT32_MAX;
  }
  for (i = 0; i < TDM_LOT_SLOTS; i++)
    tdm_parker_init(&idle->lot[i].parker);
  return 0;
}

void tdm_idle_destroy(tdm_idle_t *idle) {
  free(idle->busy_on);
  free(idle->sleepers);
  idle->busy_on = NULL;
  idle->sleepers = NULL;
}

/* ---------------------------------------------------------------- waking */

/* Relaxed loads: a hint.  A stale answer rests or wakes a worker a little
 * late; what prevents lost work is park()'s barrier and re-check,
 * tdm_idle_stream_end()'s notify, and wake_for_work() / hand_over(). */
static bool rests(tdm_idle_t *idle, const tdm_sleeper_t *sl) {
  uint32_t cpu;

  if (!idle->can_rest || tdm_load_u32(&idle->streams) == 0)
    return false;
  cpu = tdm_load_u32(&sl->cpu);
  return cpu < idle->ncpu_slots && tdm_load_u32(&idle->busy_on[cpu]) != 0;
}

/* Wakes one parked worker, handing it the searcher the caller counted.
 * Returns false if none sleeps; *rested: it passed over a resting one.
 * With `force`, a resting one will do, told not to rest (unrest): every
 * worker is parked, so no other would take the work. */
static bool wake_one(tdm_idle_t *idle, bool *rested, bool force) {
  unsigned start, i;
  tdm_sleeper_t *sl;

  *rested = false;
  start = tdm_faa_u32(&idle->wake_cursor, 1);
  for (i = 0; i < idle->nworkers; i++) {
    sl = &idle->sleepers[(start + i) % idle->nworkers];
    if (tdm_load_u32(&sl->sleeping) == 0)
      continue;
    if (!force && rests(idle, sl)) {
      *rested = true;
      continue;
    }
    /* Relaxed: the CAS below is a full barrier, and the worker reads
     * unrest only after its wait returns.  Left set if the CAS loses, it
     * costs one look without resting. */
    if (force)
      tdm_store_u32(&sl->unrest, 1);
    if (!tdm_cas_u32(&sl->sleeping, 1, 0))
      continue;
    tdm_faa_64(&idle->counts, -SLEEPER);
    tdm_parker_wake(&sl->parker);
    return true;
  }
  return false;
}

/* Wakes a worker for new work: one that may take it, or, when every
 * worker is parked and all of them rest, a resting one anyway -- else the
 * work would wait with everyone asleep until the stream ends. */
static bool wake_for_work(tdm_idle_t *idle, bool *rested) {
  if (wake_one(idle, rested, false))
    return true;
  if (!*rested || SLEEPERS(tdm_load_64(&idle->counts)) < idle->nworkers)
    return false;
  return wake_one(idle, rested, true);
}

void tdm_idle_notify(tdm_idle_t *idle) {
  uint64_t c;
  bool rested;

  for (;;) {
    c = tdm_load_64(&idle->counts);
    if (SEARCHERS(c) != 0 || SLEEPERS(c) == 0)
      return; /* a searcher will find it, or everyone is busy */
    if (!tdm_cas_64(&idle->counts, c, c + SEARCHER))
      continue; /* the word moved: decide again */
    if (wake_for_work(idle, &rested))
      return;
    /* Nobody to wake: give the count back (a full barrier) and re-check
     * like a searcher that stops -- unless we passed over a resting
     * sleeper, which the stream's end wakes (retrying would spin). */
    c = tdm_faa_64(&idle->counts, -SEARCHER);
    if (SEARCHERS(c) != 1 || rested ||
        !idle->has_work(idle->ctx, 0, false))
      return;
    tdm_pause(); /* a sleeper is between its two counts: nearly there */
  }
}

/* ------------------------------------------------------------- searching */

/* Stops being a searcher (idle.h); the last one to stop passes work on. */
void tdm_idle_stop_searching(tdm_idle_t *idle, tdm_search_t *s) {
  s->searching = false;
  if (SEARCHERS(tdm_faa_64(&idle->counts, -SEARCHER)) == 1 &&
      idle->has_work(idle->ctx, 0, false))
    tdm_idle_notify(idle);
}

static void begin_search(tdm_search_t *s, unsigned rounds, uint64_t ns) {
  s->searching = true;
  s->rounds = rounds;
  s->last = uv_hrtime();
  s->deadline = s->last + ns;
}

/* May this worker search?  tdm_idle_may_search says; the CAS takes both
 * halves of the idle word at one instant. */
static void try_search(tdm_idle_t *idle, tdm_search_t *s) {
  uint64_t loops;
  uint64_t c;

  if (idle->spin_ns == 0 || tdm_idle_contended(idle, uv_hrtime()))
    return;
  loops = tdm_load_64(&idle->loops);
  c = tdm_load_64(&idle->counts);
  for (;;) {
    if (!tdm_idle_may_search(idle, c, loops, s->hot))
      return;
    if (tdm_cas_64(&idle->counts, c, c + SEARCHER))
      break;
    c = tdm_load_64(&idle->counts);
  }
  begin_search(s, SEARCH_ROUNDS, idle->spin_ns);
}

/* Says the machine is contended as of `now`.  Relaxed: a hint that
 * stops searching and polling for a while, never a guard of work. */
static void note_contention(tdm_idle_t *idle, uint64_t now) {
  tdm_store_64(&idle->contended_until, now + CONTENDED_NS);
}

/* One step of a search between looks.  Returns false when the search is
 * over: its rounds are spent, the clock's ceiling passed, or the machine
 * turned out to be contended. */
static bool search_step(tdm_idle_t *idle, tdm_search_t *s) {
  uint64_t now;

  if (--s->rounds == 0)
    return false;
  if (!tdm_idle_crowded(idle, tdm_load_64(&idle->counts),
                        tdm_load_64(&idle->loops))) {
    tdm_pause();
    if (s->rounds % CLOCK_EVERY != 0)
      return true;
  } else {
    sched_yield(); /* let a runnable loop thread have this core */
  }
  now = uv_hrtime();
  if (now - s->last > GAP_NS &&
      (tandem__quota_throttled() ||
       tandem__machine_busy(idle->mask_cpus, idle->nworkers))) {
    /* We lost the core for long while our cgroup used up its CPU quota
     * (searching would only spend more of it), or while more threads are
     * runnable than the cores we may use and our own threads account
     * for: others want the cores, and searching only delays the threads
     * we wait for.  (A gap alone may be our own busy loop thread.)  The
     * cores are the affinity mask's, not the machine's: in a 4-CPU cpuset
     * of a 64-CPU host the host's runnable threads are compared with the 4
     * we compete on.  (Not the quota's: host-wide threads against a quota
     * would always look busy; the throttle count covers the quota.) */
    note_contention(idle, now);
    return false;
  }
  s->last = now;
  return now < s->deadline;
}

/* --------------------------------------------------------------- parking */

/* park()'s re-check, after its barrier (`c`: the word with this worker
 * counted parked).  A worker that decided to rest looks at its own deque
 * only -- unless, since it decided, the stream ended, or it is the last
 * worker to park with nobody searching: then nobody else will take work
 * that is visible, so it takes it and does not rest on its next look. */
static bool recheck(tdm_idle_t *idle, unsigned i, bool resting, uint64_t c) {
  tdm_sleeper_t *sl = &idle->sleepers[i];

  if (resting && rests(idle, sl) &&
      (SEARCHERS(c) != 0 || SLEEPERS(c) < idle->nworkers))
    return idle->has_work(idle->ctx, i, true);
  if (!idle->has_work(idle->ctx, i, false))
    return false;
  if (resting)
    tdm_store_u32(&sl->unrest, 1);
  return true;
}

/* tdm_parker_wait, its time counted in s->parked_ticks (metrics.c reads
 * the current sleep from parked_since). */
static void timed_wait(tdm_sleeper_t *sl, tdm_search_t *s, uint32_t snap) {
  uint64_t t0 = tdm_clock_now();

  tdm_store_64(&s->parked_since, t0);
  tdm_parker_wait(&sl->parker, snap);
  tdm_store_64(&s->parked_ticks, s->parked_ticks + (tdm_clock_now() - t0));
  tdm_store_64(&s->parked_since, 0);
}

/* Sleeps until woken.  Returns true if a waker counted us a searcher. */
static bool park(tdm_idle_t *idle, tdm_search_t *s, unsigned i,
                 bool resting) {
  tdm_sleeper_t *sl = &idle->sleepers[i];
  uint64_t c;
  uint32_t snap;

  snap = tdm_parker_snapshot(&sl->parker);
  tdm_store_u32(&sl->sleeping, 1);
  /* Full barrier before the re-check. */
  c = tdm_faa_64(&idle->counts, SLEEPER) + SLEEPER;
  if (!tdm_load_u32(&idle->stop) && !recheck(idle, i, resting, c)) {
    tdm_store_64(&s->parks, s->parks + 1);
    if (idle->timed)
      timed_wait(sl, s, snap);
    else
      tdm_parker_wait(&sl->parker, snap);
  }
  if (tdm_cas_u32(&sl->sleeping, 1, 0)) {
    /* Nobody woke us: we found work, or saw a stale wake-up. */
    tdm_faa_64(&idle->counts, -SLEEPER);
    return false;
  }
  tdm_store_64(&s->wakeups, s->wakeups + 1);
  return true;
}

/* tdm_idle_resting, while a loop streams (idle.h has the test). */
bool tdm_idle_resting_streams(tdm_idle_t *idle, unsigned i) {
  tdm_sleeper_t *sl = &idle->sleepers[i];

  if (tdm_load_u32(&sl->unrest) != 0) {
    tdm_store_u32(&sl->unrest, 0);
    return false;
  }
  tdm_store_u32(&sl->cpu, (uint32_t)tandem__thread_cpu());
  return rests(idle, sl);
}

/* A resting worker found its own deque empty: hands the other queues over
 * to a worker that may take from them.  Returns true when none can (every
 * other worker is parked, and all of those rest or none could be woken):
 * then it must not rest on its next look, or the work would wait with
 * everyone asleep until the stream ends. */
static bool hand_over(tdm_idle_t *idle, tdm_search_t *s, unsigned i) {
  uint64_t c;

  if (s->searching)
    tdm_idle_stop_searching(idle, s);
  else if (idle->has_work(idle->ctx, i, false))
    tdm_idle_notify(idle);
  c = tdm_load_64(&idle->counts); /* after notify's full barriers */
  if (SEARCHERS(c) != 0 || SLEEPERS(c) + 1 < idle->nworkers ||
      !idle->has_work(idle->ctx, i, false))
    return false;
  tdm_store_u32(&idle->sleepers[i].unrest, 1);
  s->hot = false;
  return true;
}

void (*tdm_idle__before_park)(unsigned worker);

bool tdm_idle_none(tdm_idle_t *idle, tdm_search_t *s, unsigned i,
                   bool resting) {
  if (tdm_load_u32(&idle->stop))
    return false;
  if (resting) {
    if (hand_over(idle, s, i))
      return true; /* nobody else can: it takes the work itself */
  } else if (!s->searching) {
    try_search(idle, s);
  }
  s->hot = false;
  if (s->searching) {
    if (search_step(idle, s))
      return true;
    s->searching = false;
    /* Full barrier; park() re-checks every queue after its own. */
    tdm_faa_64(&idle->counts, -SEARCHER);
  }
  if (tdm_idle__before_park != NULL)
    tdm_idle__before_park(i);
  if (park(idle, s, i, resting)) {
    /* Woken for work someone else may take first: look briefly, so that
     * a woken worker does not compete for long with the loop thread and
     * the worker that woke it. */
    begin_search(s, WOKEN_ROUNDS,
                 idle->spin_ns < WOKEN_SPIN_NS ? idle->spin_ns
                                               : WOKEN_SPIN_NS);
  }
  return true;
}

void tdm_idle_exit(tdm_idle_t *idle, tdm_search_t *s) {
  if (s->searching)
    tdm_faa_64(&idle->counts, -SEARCHER);
  s->searching = false;
}

void tdm_idle_stop(tdm_idle_t *idle, unsigned started) {
  unsigned i;

  tdm_store_u32(&idle->stop, 1);
  tdm_fence_sc();
  for (i = 0; i < started; i++) {
    tdm_store_u32(&idle->sleepers[i].sleeping, 0);
    tdm_parker_wake(&idle->sleepers[i].parker);
  }
}

/* --------------------------------------------------------------- streams */

/* Moves the loop's count to the CPU it runs on now. */
void tdm_idle_stream_at(tdm_idle_t *idle, uint32_t *slot) {
  uint32_t cpu = (uint32_t)tandem__thread_cpu();

  if (cpu == *slot)
    return;
  if (*slot < idle->ncpu_slots)
    tdm_faa_u32(&idle->busy_on[*slot], (uint32_t)-1);
  if (cpu < idle->ncpu_slots)
    tdm_faa_u32(&idle->busy_on[cpu], 1);
  *slot = cpu;
}

void tdm_idle_stream_begin(tdm_idle_t *idle, uint32_t *slot) {
  unsigned i;

  /* A parked worker's CPU record is from before this stream: forget it,
   * so that wake-ups do not pass it over for a CPU it may have left (a
   * worker that looks records its CPU again). */
  for (i = 0; i < idle->nworkers; i++)
    tdm_store_u32(&idle->sleepers[i].cpu, UINT32_MAX);
  tdm_faa_u32(&idle->streams, 1);
  tdm_idle_stream_at(idle, slot);
}

void tdm_idle_stream_end(tdm_idle_t *idle, uint32_t *slot) {
  if (*slot < idle->ncpu_slots)
    tdm_faa_u32(&idle->busy_on[*slot], (uint32_t)-1);
  *slot = UINT32_MAX;
  /* Full barrier: a resting worker that parks after this sees the stream
   * gone in its re-check, or is counted for this notify. */
  tdm_faa_u32(&idle->streams, (uint32_t)-1);
  tdm_idle_notify(idle);
}

/* ---------------------------------------------------------- joins, groups */

static tdm_parker_t *lot_slot(tdm_idle_t *idle, const void *key) {
  return &idle->lot[((uintptr_t)key / TDM_CACHELINE) % TDM_LOT_SLOTS].parker;
}

/* The event count protocol again: snapshot, re-check, wait on the
 * snapshot.  The finisher's store of zero comes before its increment of
 * the slot (a full barrier), so a waiter that snapshots after the
 * increment sees zero, and one that snapshotted before wakes on it. */
void tdm_idle_wait_zero(tdm_idle_t *idle, const void *key,
                        const uint32_t *count, bool helper) {
  tdm_parker_t *slot = lot_slot(idle, key);
  uint32_t snap;

  snap = tdm_parker_snapshot(slot);
  if (tdm_load_acq_u32(count) == 0)
    return;
  if (helper && idle->has_work(idle->ctx, 0, false))
    return;
  tdm_parker_wait(slot, snap);
}

void tdm_idle_finished(tdm_idle_t *idle, const void *key) {
  tdm_parker_wake(lot_slot(idle, key));
}
