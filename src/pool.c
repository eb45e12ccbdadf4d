/* SPDX-License-Identifier: MIT */
/*
 * pool.c: the work-stealing scheduler.
 *
 * DESIGN
 *
 * A job's life.  tandem_queue_work() (loop.c) marks the request QUEUED,
 * counts it in its tandem_t (loop_pending_ or inflight_), and hands it to
 * tandem__pool_submit().  From a thread outside the pool it goes into the
 * pool's injection ring (inject.c); from one of the pool's own workers it
 * goes onto that worker's Chase-Lev deque (deque.c).  Whoever takes it out
 * -- the ring's consumer by its swap on the cell, the deque's owner or a
 * thief by the CAS on top -- owns it alone and runs it (tandem__job_run):
 * state RUNNING, work_cb, then tandem__complete() (loop.c) pushes it on
 * the tandem_t's lock-free completion stack and, if that stack was empty
 * and the loop is neither polling, nor draining, nor batching from a timer
 * (loop.c), writes the loop's eventfd: one wake-up per batch.  The loop thread
 * swaps the whole stack out, marks each request FINISHED and calls its after
 * callback.  From the push on, the pool never touches the request again.
 *
 * Cancel.  A request in the ring can be taken back by tandem_cancel(): a
 * CAS of the cell's item to a tombstone.  The consumer's swap and the
 * cancel's CAS are on the same word, so exactly one wins; a consumer that
 * swaps out a tombstone skips it.  The winner of a cancel completes the
 * request with UV_ECANCELED at once, so its after callback runs on the
 * loop's next iteration even while every worker is busy.
 *
 * Finding work.  A worker takes from its own deque (LIFO, warm caches),
 * then from the injection ring (FIFO), then from the overflow stack (items
 * that found the ring full; the taker moves them onto its deque), then
 * steals from other workers' deques (FIFO end), from a random victim on.
 * Submitting never blocks.  A submitter to the ring wakes a worker only if
 * no item is ahead of its own; a worker that takes an item with another
 * ready behind it wakes the next (except while a loop streams, below):
 * wake-ups follow the work.
 *
 * Sleeping, with no lost wake-ups.  A worker that finds nothing becomes a
 * "spinner" (counted in nspinning) if it has just run something -- the
 * next job of a round trip is likely on its way -- or if fewer than
 * max_spinning spin, and keeps looking for worker_spin_ns; a worker woken
 * for work that another took looks for only 4 us.  A spinner calls
 * sched_yield() between looks -- at every look when the pool has as many
 * workers as the machine has cores -- so a runnable loop thread gets the
 * core at once instead of waiting out a time slice.  If a yield costs it the
 * core for over 500 us while more threads are runnable than the machine
 * has cores (other processes want them), nobody in the pool spins or polls
 * for 20 ms: spinning would only delay the threads we wait for.  Then it
 * parks on its own event count (park.c): snapshot, sleeping = 1,
 * nsleeping++ (a full barrier), re-check every queue, and only then wait
 * on the snapshot.  A
 * submitter publishes its item, issues a full fence, and wakes a worker
 * only if no worker is spinning and one sleeps; it first CASes nspinning
 * from 0 to 1 on the woken worker's behalf, so a burst of submissions wakes
 * one worker, not all.  A spinner that finds work leaves the spinning state
 * and, if it was the last spinner and more work is visible, wakes the next
 * worker: wake-ups propagate one at a time, only as far as work exists.
 *   The two sides are a Dekker pair.  Submitter: store item; fence; load
 * nspinning and nsleeping.  Worker: nspinning-- or nsleeping++ (each a full
 * barrier); load the queues.  In any interleaving, either the worker sees
 * the item or the submitter sees a worker it must wake (or one still
 * spinning, which will see the item after its own decrement).
 *
 * Streams: resting and trailing.  While a loop thread polls a stream of
 * cheap jobs (loop.c, "Streams"; pool->busy_loops), it keeps a CPU busy,
 * and the loop, not the workers, limits the rate.  A worker that finds
 * itself on that CPU rests (throttled()): it takes only from its own
 * deque, never spins, parks even with work in the ring, and wake_one()
 * passes it over.  Going to rest it hands over: if work is visible it
 * notifies, so an eligible worker wakes.  Rest ends when the loop leaves
 * the stream -- at once when its jobs run out, else within loop_spin_ns
 * of its last completion, so even work stranded by a stale CPU number
 * waits no longer than that -- and the loop then calls notify() after the
 * full barrier of its busy_loops decrement.  The other workers trail the
 * stream (ring_ready()): they take from the ring only when `lag` items are
 * ready, or what the loop's last drain finished queueing (lag_release),
 * or after LAG_WAIT_NS.  This is only about when to take: an item is never
 * refused for good, and a worker with items waiting never parks.
 *
 * Why each ordering.  Ring and deque publication are release stores read
 * with acquire loads (deque.c, inject.c say where).  The store-load
 * hazards -- Chase-Lev's take, the submit/park pair above, and the
 * completion push before the loop's polling_ flag is read (the loop
 * clears it, fences, and looks at the stack again) -- are covered by full
 * fences or by CAS/FAS, which are full barriers.  The completion stack's CAS is
 * also what hands the request's memory (work_cb's results) over to the loop
 * thread: release on push, and the loop's swap acquires.
 */
#include "pool.h"
#include "renice.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Thread_local tdm_worker_t *tandem__self;

#define DEFAULT_SPIN_US 50
#define DEFAULT_QUEUE_SIZE 65536
#define DEFAULT_STACK_SIZE (8u << 20)
#define DEQUE_LOG2_CAPACITY 8
#define YIELD_EVERY 64 /* spin iterations between sched_yield() calls */
#define WOKEN_SPIN_NS (4 * 1000) /* a woken worker that finds nothing */
#define LAG_WAIT_NS (100 * 1000) /* longest wait for `lag` ready items */

/* ------------------------------------------------------------ counters */

/* Owner-only counters: a relaxed read-modify-write, no lock prefix. */
static void bump(uint64_t *counter) {
  tdm_store_64(counter, tdm_load_64(counter) + 1);
}

static uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

/* ------------------------------------------------------------- waking */

/* Should worker w rest?  A loop thread polling a stream of cheap jobs
 * (tandem__pool_loop_busy) keeps its CPU busy; a worker that the kernel
 * placed on that same CPU would only take turns with it -- and on a small
 * machine it holds up the stream while its peer on a free CPU idles -- so
 * it rests while another worker exists to take the work.  w->cpu is where
 * w last looked from (the kernel moves it on wake-up, to a free CPU). */
static bool throttled(const tdm_worker_t *w) {
  uint32_t cpu;

  /* Relaxed loads: a hint.  A stale answer only rests or wakes a worker a
   * little late; the barriers that prevent lost work are in park() and
   * tandem__pool_loop_busy(). */
  if (!w->pool->can_rest || tdm_load_u32(&w->pool->busy_loops) == 0)
    return false;
  cpu = tdm_load_u32(&w->cpu);
  return cpu != UINT32_MAX && cpu == tdm_load_u32(&w->pool->busy_cpu);
}

/* Any thread: wakes one parked worker, handing it the spinning role the
 * caller already counted in nspinning.  Returns false if none sleeps;
 * *rested then tells whether it passed over a resting one. */
static bool wake_one(tandem_pool_t *pool, bool *rested) {
  unsigned start;
  unsigned i;
  tdm_worker_t *w;

  *rested = false;
  start = tdm_faa_u32(&pool->wake_cursor, 1);
  for (i = 0; i < pool->nworkers; i++) {
    w = &pool->workers[(start + i) % pool->nworkers];
    if (tdm_load_u32(&w->sleeping) == 0)
      continue;
    if (throttled(w)) {
      *rested = true;
      continue;
    }
    if (!tdm_cas_u32(&w->sleeping, 1, 0))
      continue;
    tdm_faa_u32(&pool->nsleeping, (uint32_t)-1);
    tdm_parker_wake(&w->parker);
    return true;
  }
  return false;
}

static bool work_visible(tandem_pool_t *pool);

/* Any thread, after publishing work and a full fence: makes sure some
 * worker will look for it.
 *   While we hold nspinning for a worker we have not found, other
 * submitters see a spinner and leave their items to it; so giving the
 * role back is the decrement of a spinner that stops, and like one
 * (stop_spinning) we look again if we were the last and work is visible
 * -- else an item pushed meanwhile waited with every worker asleep (found
 * by tests/model/park.pml).  Only when no sleeper was passed over for
 * resting: those are woken by the stream's end, and retrying for them
 * would spin. */
static void notify(tandem_pool_t *pool) {
  bool rested;

  for (;;) {
    if (tdm_load_u32(&pool->nspinning) != 0)
      return; /* a spinner will find it */
    if (tdm_load_u32(&pool->nsleeping) == 0)
      return; /* everyone is busy and will look when done */
    if (!tdm_cas_u32(&pool->nspinning, 0, 1))
      return; /* someone else just became the spinner */
    if (wake_one(pool, &rested))
      return;
    /* Full barrier, then the re-check. */
    if (tdm_faa_u32(&pool->nspinning, (uint32_t)-1) != 1 || rested ||
        !work_visible(pool))
      return;
    tdm_pause(); /* a sleeper is between its two counts: nearly there */
  }
}

/* Is there anything a worker could take?  Racy: used only after a full
 * barrier, as the re-check half of the Dekker pairs above. */
static bool work_visible(tandem_pool_t *pool) {
  unsigned i;

  if (tdm_inject_size(&pool->inject) != 0)
    return true;
  if (tdm_load_ptr(&pool->overflow) != NULL)
    return true;
  for (i = 0; i < pool->nworkers; i++)
    if (tdm_deque_size(&pool->workers[i].dq) != 0)
      return true;
  return false;
}

/* ------------------------------------------------------------ overflow */

/* Where an item keeps its overflow link: requests in next_ (unused while
 * queued), frames in their own next. */
static void **item_link(void *item) {
  if ((uintptr_t)item & TDM_ITEM_FRAME)
    return &((tdm_frame_t *)((uintptr_t)item & ~TDM_ITEM_FRAME))->next;
  return &((tandem_work_t *)item)->next_;
}

/* Any thread: the ring is full, so the item waits on the overflow stack;
 * submitting never blocks.  The CAS is a full barrier. */
static void overflow_push(tandem_pool_t *pool, void *item) {
  void *old;

  do {
    old = tdm_load_ptr(&pool->overflow);
    *item_link(item) = old;
  } while (!tdm_cas_ptr(&pool->overflow, old, item));
}

/* Worker: takes the whole overflow stack, keeps the oldest item to run and
 * moves the rest onto its own deque, where thieves can reach them. */
static void *overflow_take(tdm_worker_t *w) {
  void *list;
  void *prev;
  void *next;

  if (tdm_load_ptr(&w->pool->overflow) == NULL)
    return NULL;
  list = tdm_fas_ptr(&w->pool->overflow, NULL);
  for (prev = NULL; list != NULL; list = next) { /* newest first: reverse */
    next = *item_link(list);
    *item_link(list) = prev;
    prev = list;
  }
  if (prev == NULL)
    return NULL;
  list = *item_link(prev);
  for (; list != NULL; list = next) {
    next = *item_link(list);
    if (tdm_deque_push_owner(&w->dq, list) != 0)
      overflow_push(w->pool, list); /* no memory: leave it for later */
  }
  notify(w->pool);
  return prev;
}

/* ---------------------------------------------------------- submitting */

void tandem__pool_submit(tandem_pool_t *pool, void *item, void *owner,
                         void **cellp, bool defer) {
  tdm_worker_t *self;
  tdm_cell_t *unused;
  uint64_t pos;

  if (cellp == NULL)
    cellp = (void **)&unused;
  self = tandem__self;
  if (self != NULL && self->pool == pool &&
      tdm_deque_push_owner(&self->dq, item) == 0) {
    tdm_store_ptr(cellp, NULL);
    tdm_fence_sc(); /* store-load: the item before the counters */
    notify(pool);
    return;
  }
  if (!tdm_inject_push_mp(&pool->inject, item, owner, (tdm_cell_t **)cellp,
                          &pos)) {
    /* Full ring: never block the caller (a loop thread must not wait for
     * workers that may be waiting for it). */
    tdm_store_ptr(cellp, NULL);
    overflow_push(pool, item);
    notify(pool);
    return;
  }
  if (defer)
    return; /* the caller will tandem__pool_kick() */
  /* Store-load: the item must be visible before we read deq and the
   * counters.  Items still ahead of ours mean a worker was already sent
   * for them, and whoever takes one wakes the next (find_work). */
  tdm_fence_sc();
  if (!tdm_inject_ahead(&pool->inject, pos))
    notify(pool);
}

void tandem__pool_loop_busy(tandem_pool_t *pool, bool busy) {
  /* Full barrier: a resting worker that parks after this sees the new
   * count in its re-check, or is counted in nsleeping for notify(). */
  if (tdm_faa_u32(&pool->busy_loops, busy ? 1 : (uint32_t)-1) == 1 && !busy)
    tdm_store_u32(&pool->lag, 0);
  if (busy)
    tdm_faa_64(&pool->streams, 1);
  if (!busy)
    notify(pool);
}

void tandem__pool_set_lag(tandem_pool_t *pool, unsigned lag) {
  uint32_t cpu = (uint32_t)tandem__thread_cpu();

  /* Relaxed, and only when they change: hints that workers read on every
   * turn (see throttled() and ring_ready()). */
  if (tdm_load_u32(&pool->lag) != lag)
    tdm_store_u32(&pool->lag, lag);
  if (tdm_load_u32(&pool->busy_cpu) != cpu)
    tdm_store_u32(&pool->busy_cpu, cpu);
}

void tandem__pool_release_lag(tandem_pool_t *pool) {
  /* Release: the cells before enq are written (they are ours: the loop
   * thread published them itself). */
  tdm_store_rel_64(&pool->lag_release, tdm_load_64(&pool->inject.enq));
}

void tandem__pool_kick(tandem_pool_t *pool) {
  tdm_fence_sc();
  notify(pool);
}

int tandem__pool_spawn_local(tdm_worker_t *w, tdm_frame_t *f) {
  int err;

  err = tdm_deque_push_owner(&w->dq, (void *)((uintptr_t)f | TDM_ITEM_FRAME));
  if (err != 0)
    return err;
  if (tdm_load_u32(&w->pool->nsleeping) != 0)
    notify(w->pool);
  return 0;
}

bool tandem__pool_take_back(tdm_worker_t *w, tdm_frame_t *f) {
  void *item;

  item = tdm_deque_take_owner(&w->dq);
  if (item == (void *)((uintptr_t)f | TDM_ITEM_FRAME))
    return true;
  if (item != NULL) {
    /* Not ours (cannot happen when spawns and joins nest properly); put it
     * back so nothing is lost. */
    (void)tdm_deque_push_owner(&w->dq, item);
  }
  return false;
}

/* -------------------------------------------------------------- running */

static void run_item(tdm_worker_t *w, void *item) {
  tdm_frame_t *f;

  bump(&w->jobs);
  if ((uintptr_t)item & TDM_ITEM_FRAME) {
    f = (tdm_frame_t *)((uintptr_t)item & ~TDM_ITEM_FRAME);
    f->run(f);
  } else {
    tandem__job_run(w, item);
  }
}

static void *steal_any(tdm_worker_t *w) {
  tandem_pool_t *pool;
  unsigned n;
  unsigned start;
  unsigned i;
  void *item;
  tdm_worker_t *v;

  pool = w->pool;
  n = pool->nworkers;
  if (n < 2)
    return NULL;
  start = (unsigned)(xorshift(&w->rng) % n);
  for (i = 0; i < n; i++) {
    v = &pool->workers[(start + i) % n];
    if (v == w)
      continue;
    do
      item = tdm_deque_steal(&v->dq);
    while (item == TDM_DEQUE_ABORT);
    if (item != NULL) {
      bump(&w->steals);
      return item;
    }
  }
  return NULL;
}

/* Lag.  A busy loop thread that streams jobs into the ring writes each
 * cell just before a faster worker takes it: the cell's cache line then
 * crosses between their cores twice per job, and the loop -- the
 * bottleneck -- stalls on every one (measured on the 2-core VM: ~110 ns
 * per job against ~30 ns when the worker happens to trail by ~150 cells).
 * So while pool->lag is set (tandem__pool_set_lag), a worker takes from
 * the ring only once `lag` items are ready, and then takes that many
 * (its credit) without looking at the newest cells, so it reads lines
 * the loop has finished with.  Waiting is bounded by LAG_WAIT_NS: a
 * stream that slows down is still served. */
static bool ring_ready(tdm_worker_t *w) {
  uint64_t release;
  uint64_t deq;
  uint64_t now;
  uint32_t lag;

  if (w->credit != 0)
    return true;
  lag = tdm_load_u32(&w->pool->lag);
  if (lag == 0)
    return true;
  if (tdm_inject_ready_at(&w->pool->inject, lag)) {
    w->credit = lag;
    w->lag_since = 0;
    return true;
  }
  /* Whatever the loop queued before the end of its last drain is
   * finished with, however little. */
  deq = tdm_load_64(&w->pool->inject.deq);
  /* Acquire pairs with tandem__pool_release_lag(); pop_mc still checks each
   * cell's seq, so this only decides when to look. */
  release = tdm_load_acq_64(&w->pool->lag_release);
  if ((int64_t)(release - deq) > 0) {
    w->credit = (uint32_t)(release - deq);
    w->lag_since = 0;
    return true;
  }
  now = uv_hrtime();
  if (w->lag_since == 0) {
    w->lag_since = now;
    return false;
  }
  if (now - w->lag_since < LAG_WAIT_NS)
    return false;
  /* Waited enough: the stream has dried up, take all there is. */
  w->lag_since = 0;
  w->credit = UINT32_MAX;
  return true;
}

static void *find_work(tdm_worker_t *w, bool from_inject) {
  void *item;
  bool more;

  item = tdm_deque_take_owner(&w->dq);
  if (item != NULL)
    return item;
  if (from_inject) {
    if (ring_ready(w)) {
      item = tdm_inject_pop_mc(&w->pool->inject, &more);
      if (item == NULL)
        w->credit = 0; /* ran dry: wait for `lag` again */
    }
    if (item != NULL) {
      if (w->credit != 0)
        w->credit--;
      bump(&w->injected);
      /* More waiting behind it: make sure someone else comes too (the
       * pop's CAS was a full barrier) -- unless a loop streams: then the
       * loop thread is the bottleneck, more workers would not help, and
       * with one at rest each notify() would cost two atomics for
       * nothing (measured: 10-20 % of the stream's rate). */
      if (more && tdm_load_u32(&w->pool->busy_loops) == 0)
        notify(w->pool);
      return item;
    }
    item = overflow_take(w);
    if (item != NULL)
      return item;
  }
  return steal_any(w);
}

bool tandem__pool_help_one(tdm_worker_t *w) {
  void *item;

  item = find_work(w, false);
  if (item == NULL)
    return false;
  run_item(w, item);
  return true;
}

/* ---------------------------------------------------------- contention */

void tandem__pool_note_contention(tandem_pool_t *pool, uint64_t now) {
  tdm_store_64(&pool->contended_until, now + TDM_CONTENDED_NS);
}

bool tandem__pool_contended(tandem_pool_t *pool) {
  return uv_hrtime() < tdm_load_64(&pool->contended_until);
}

/* ------------------------------------------------------------- the loop */

/* Leaves the spinning state after finding work: if we were the last
 * spinner and more work waits, pass the role on. */
static void stop_spinning(tandem_pool_t *pool) {
  if (tdm_faa_u32(&pool->nspinning, (uint32_t)-1) == 1 && work_visible(pool))
    notify(pool);
}

static bool try_start_spinning(tandem_pool_t *pool) {
  uint32_t n;

  n = tdm_load_u32(&pool->nspinning);
  while (n < pool->max_spinning) {
    if (tdm_cas_u32(&pool->nspinning, n, n + 1))
      return true;
    n = tdm_load_u32(&pool->nspinning);
  }
  return false;
}

/* Sleeps until woken.  Returns true if a waker handed us the spinning
 * role (it counted us in nspinning). */
static bool park(tdm_worker_t *w) {
  tandem_pool_t *pool;
  uint32_t snap;

  pool = w->pool;
  snap = tdm_parker_snapshot(&w->parker);
  tdm_store_u32(&w->sleeping, 1);
  tdm_faa_u32(&pool->nsleeping, 1); /* full barrier before the re-check */
  if (!tdm_load_u32(&pool->stop) &&
      (throttled(w) ? tdm_deque_size(&w->dq) == 0 : !work_visible(pool))) {
    bump(&w->parks);
    tdm_parker_wait(&w->parker, snap);
  }
  if (tdm_cas_u32(&w->sleeping, 1, 0)) {
    /* Nobody woke us: we found work, or saw a stale wake-up. */
    tdm_faa_u32(&pool->nsleeping, (uint32_t)-1);
    return false;
  }
  bump(&w->wakeups);
  return true;
}

static void worker_main(void *arg) {
  tdm_worker_t *w;
  tandem_pool_t *pool;
  bool spinning;
  bool hot;
  bool rest;
  uint64_t deadline;
  uint64_t last;
  uint64_t now;
  unsigned iter;
  void *item;

  w = arg;
  last = 0;
  hot = false;
  pool = w->pool;
  tandem__self = w;
  /* A hint only: a worker that cannot be reniced still works. */
  (void)tandem__thread_renice(pool->worker_nice);
  spinning = false;
  deadline = 0;
  iter = 0;
  for (;;) {
    if (tdm_load_u32(&pool->busy_loops) != 0)
      tdm_store_u32(&w->cpu, (uint32_t)tandem__thread_cpu());
    rest = throttled(w);
    item = rest ? tdm_deque_take_owner(&w->dq) : find_work(w, true);
    if (item != NULL) {
      if (spinning) {
        spinning = false;
        stop_spinning(pool);
      }
      run_item(w, item);
      hot = true;
      continue;
    }
    if (tdm_load_u32(&pool->stop))
      break;
    if (rest) {
      /* Hand the ring over to a worker that may take from it. */
      if (spinning) {
        spinning = false;
        stop_spinning(pool);
      } else if (work_visible(pool)) {
        notify(pool);
      }
      hot = false;
    }
    /* A worker that just ran something is hot: the next job of a round
     * trip is likely on its way, so it spins even if a freshly woken
     * worker holds the spinner's place (else it would park and the next
     * round would pay a futex wake-up). */
    if (!spinning && !rest && pool->worker_spin_ns != 0 &&
        !tandem__pool_contended(pool) &&
        (hot ? (tdm_faa_u32(&pool->nspinning, 1), true)
             : try_start_spinning(pool))) {
      spinning = true;
      last = uv_hrtime();
      deadline = last + pool->worker_spin_ns;
      iter = 0;
    }
    hot = false;
    if (spinning) {
      if (++iter % pool->yield_every != 0) {
        tdm_pause();
        continue;
      }
      sched_yield(); /* let a runnable loop thread have this core */
      now = uv_hrtime();
      if (now - last > TDM_GAP_NS &&
          tandem__machine_busy(pool->ncpus, pool->nworkers)) {
        /* We lost the core for a long while, and more threads are
         * runnable than the cores and our own threads account for:
         * others want the cores, and spinning only delays the threads we
         * wait for.  (A gap alone may be our own busy loop thread.) */
        tandem__pool_note_contention(pool, now);
      } else if (now < deadline) {
        last = now;
        continue;
      }
      spinning = false;
      /* Full barrier, then the park below re-checks every queue. */
      tdm_faa_u32(&pool->nspinning, (uint32_t)-1);
    }
    if (park(w)) {
      /* Woken for work that someone else may take first: look briefly,
       * then sleep again, so that on a small machine a woken worker does
       * not compete for long with the loop thread and the worker that
       * woke it.  A worker that just ran a job spins the full time. */
      spinning = true;
      last = uv_hrtime();
      deadline =
          last + (pool->worker_spin_ns < WOKEN_SPIN_NS ? pool->worker_spin_ns
                                                       : WOKEN_SPIN_NS);
      iter = 0;
    }
  }
  if (spinning)
    tdm_faa_u32(&pool->nspinning, (uint32_t)-1);
  tandem__self = NULL;
}

/* ---------------------------------------------------------- lifecycle */

static unsigned online_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1;
}

static uint64_t spin_ns(int us) {
  if (us < 0)
    return 0;
  return (uint64_t)(us == 0 ? DEFAULT_SPIN_US : us) * 1000;
}

static void stop_workers(tandem_pool_t *pool, unsigned started) {
  unsigned i;
  tdm_worker_t *w;

  tdm_store_u32(&pool->stop, 1);
  tdm_fence_sc();
  for (i = 0; i < started; i++) {
    w = &pool->workers[i];
    tdm_store_u32(&w->sleeping, 0);
    tdm_parker_wake(&w->parker);
  }
  for (i = 0; i < started; i++)
    uv_thread_join(&pool->workers[i].thread);
}

/* Frees a pool whose workers are stopped, or a partly made one: the
 * worker array may be missing (its allocation failed: defect F3) and so
 * may any worker's deque. */
static void destroy(tandem_pool_t *pool) {
  unsigned i;

  for (i = 0; pool->workers != NULL && i < pool->nworkers; i++)
    if (pool->workers[i].dq.array != NULL)
      tdm_deque_destroy(&pool->workers[i].dq);
  free(pool->workers);
  tdm_inject_destroy(&pool->inject);
  free(pool);
}

static int start_workers(tandem_pool_t *pool, size_t stack_size) {
  uv_thread_options_t topts;
  tdm_worker_t *w;
  unsigned i;
  int err;

  topts.flags = UV_THREAD_HAS_STACK_SIZE;
  topts.stack_size = stack_size != 0 ? stack_size : DEFAULT_STACK_SIZE;
  for (i = 0; i < pool->nworkers; i++) {
    w = &pool->workers[i];
    err = uv_thread_create_ex(&w->thread, &topts, worker_main, w);
    if (err != 0) {
      stop_workers(pool, i);
      return err;
    }
  }
  return 0;
}

int tandem_pool_new(tandem_pool_t **out, const tandem_options_t *opts) {
  static const tandem_options_t defaults;
  tandem_pool_t *pool;
  tdm_worker_t *w;
  unsigned i;
  int err;

  if (out == NULL)
    return UV_EINVAL;
  *out = NULL;
  if (opts == NULL)
    opts = &defaults;
  if (opts->workers > 4096 || opts->queue_size > TANDEM_QUEUE_SIZE_MAX ||
      opts->worker_nice < -39 || opts->worker_nice > 39)
    return UV_EINVAL;
  if (posix_memalign((void **)&pool, TDM_CACHELINE, sizeof(*pool)) != 0)
    return UV_ENOMEM;
  memset(pool, 0, sizeof(*pool));
  tandem__fork_watch();
  pool->gen = tdm_load_u32(&tandem__fork_gen);
  pool->nworkers = opts->workers != 0 ? opts->workers : online_cpus();
  pool->max_spinning = pool->nworkers / 2 != 0 ? pool->nworkers / 2 : 1;
  /* With no core to spare for a loop thread, a spinner offers its core at
   * every look for work: a runnable loop thread then gets it at once. */
  pool->ncpus = online_cpus();
  /* Resting needs another worker, and another CPU it may run on: in a
   * process confined to one CPU, every worker shares the loop's. */
  pool->can_rest = pool->nworkers >= 2 && tandem__usable_cpus() >= 2;
  pool->yield_every = pool->nworkers >= pool->ncpus ? 1 : YIELD_EVERY;
  pool->worker_spin_ns = spin_ns(opts->worker_spin_us);
  pool->loop_spin_ns = spin_ns(opts->loop_spin_us);
  pool->worker_nice = opts->worker_nice;
  tdm_parker_init(&pool->group_done);
  err = tdm_inject_init(&pool->inject, opts->queue_size != 0
                                           ? opts->queue_size
                                           : DEFAULT_QUEUE_SIZE);
  if (err != 0) {
    free(pool);
    return err;
  }
  if (posix_memalign((void **)&pool->workers, TDM_CACHELINE,
                     pool->nworkers * sizeof(*pool->workers)) != 0) {
    destroy(pool);
    return UV_ENOMEM;
  }
  memset(pool->workers, 0, pool->nworkers * sizeof(*pool->workers));
  for (i = 0; i < pool->nworkers; i++) {
    w = &pool->workers[i];
    w->pool = pool;
    w->index = i;
    w->cpu = UINT32_MAX;
    w->rng = 0x9e3779b97f4a7c15ull * (i + 1);
    tdm_parker_init(&w->parker);
    err = tdm_deque_init(&w->dq, DEQUE_LOG2_CAPACITY);
    if (err != 0) {
      destroy(pool);
      return err;
    }
  }
  err = start_workers(pool, opts->stack_size);
  if (err != 0) {
    destroy(pool);
    return err;
  }
  *out = pool;
  return 0;
}

int tandem_pool_free(tandem_pool_t *pool) {
  if (pool == NULL || pool->is_default)
    return UV_EINVAL;
  if (tandem__self != NULL && tandem__self->pool == pool)
    return UV_EINVAL;
  if (tdm_load_u32(&pool->nattached) != 0)
    return UV_EBUSY;
  /* A pool inherited across fork() has no workers here to stop. */
  if (!tandem__pool_stale(pool))
    stop_workers(pool, pool->nworkers);
  destroy(pool);
  return 0;
}

unsigned tandem_pool_workers(const tandem_pool_t *pool) {
  return pool == NULL ? 0 : pool->nworkers;
}

/* -------------------------------------------------------------- stats */

static void add_stats(tandem_worker_stats_t *sum,
                      const tandem_worker_stats_t *s) {
  sum->jobs += s->jobs;
  sum->steals += s->steals;
  sum->injected += s->injected;
  sum->parks += s->parks;
  sum->wakeups += s->wakeups;
  sum->depth += s->depth;
}

int tandem_pool_stats(tandem_pool_t *pool, tandem_stats_t *out) {
  tandem_worker_stats_t s;
  tdm_worker_t *w;
  unsigned i;

  if (pool == NULL || out == NULL)
    return UV_EINVAL;
  memset(out, 0, sizeof(*out));
  out->workers = pool->nworkers;
  out->inject_depth = tdm_inject_live(&pool->inject);
  out->cancelled = tdm_load_64(&pool->cancelled);
  out->streams = tdm_load_64(&pool->streams);
  out->streaming = tdm_load_u32(&pool->busy_loops);
  for (i = 0; i < pool->nworkers; i++) {
    w = &pool->workers[i];
    s.jobs = tdm_load_64(&w->jobs);
    s.steals = tdm_load_64(&w->steals);
    s.injected = tdm_load_64(&w->injected);
    s.parks = tdm_load_64(&w->parks);
    s.wakeups = tdm_load_64(&w->wakeups);
    s.depth = tdm_deque_size(&w->dq);
    add_stats(&out->total, &s);
    if (i < TANDEM_STATS_MAX_WORKERS)
      out->worker[i] = s;
  }
  return 0;
}
