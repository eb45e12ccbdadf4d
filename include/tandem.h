/* SPDX-License-Identifier: MIT */
/**
 * \file tandem.h
 * tandem: a libuv event loop and a lock-free work-stealing thread pool that
 * run in tandem.
 *
 *   - tandem_pool_t   a pool of worker threads (opaque, made at run time).
 *   - tandem_t        a caller-owned handle joining one uv loop to one pool.
 *   - tandem_work_t   a caller-owned request: work_cb runs on a worker, then
 *                     after_cb runs on the loop thread of the tandem_t it
 *                     was queued on, exactly like uv_queue_work.
 *   - tandem_join, tandem_group_t, tandem_parallel_for: fork-join inside
 *     jobs.
 *
 * Every function that can fail returns 0 or a negative libuv error code
 * (UV_EINVAL, UV_EBUSY, UV_ENOMEM, UV_ECANCELED, ...), so uv_strerror() and
 * uv_err_name() explain it.  When a function that takes a callback returns
 * an error, that callback is never called.  Each function says which thread
 * may call it ("Thread").  These comments are Doxygen's: `cmake --build
 * BUILD --target docs` makes the API reference (docs/).
 *
 * fork(): a child process has only the thread that called fork(), so the
 * workers of every pool made before the fork are not in it.  In the child,
 * tandem_pool_default() (and tandem_init, tandem_join, groups and
 * tandem_parallel_for given NULL) makes a new default pool on first use,
 * as libuv does for its own pool.  A pool made before the fork, and every
 * handle or group on it, is refused with UV_ESRCH ("no such process": its
 * workers live in the parent) by tandem_init, tandem_queue_work,
 * tandem_parallel_for(_async) and the group calls; tandem_close closes
 * such a handle at once (call uv_loop_fork on its loop first, as libuv
 * requires), and tandem_pool_free frees such a pool without joining.  Jobs
 * in flight at the fork are the parent's: their after callbacks run in the
 * parent only.
 */
#ifndef TANDEM_H
#define TANDEM_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "tandem/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/** \cond INTERNAL */
#if defined(__GNUC__) && defined(TANDEM_BUILDING)
#define TANDEM_EXTERN __attribute__((visibility("default")))
#else
#define TANDEM_EXTERN /* nothing */
#endif
/** \endcond */

/** \ingroup pool
 * A pool of worker threads: opaque, made by tandem_pool_new(). */
typedef struct tandem_pool_s tandem_pool_t;
/** \ingroup handle
 * A handle joining one uv loop to one pool (struct tandem_s). */
typedef struct tandem_s tandem_t;
/** \ingroup work
 * A request: one job (struct tandem_work_s). */
typedef struct tandem_work_s tandem_work_t;
/** \ingroup forkjoin
 * A task of a group (struct tandem_task_s). */
typedef struct tandem_task_s tandem_task_t;
/** \ingroup forkjoin
 * A group of tasks (struct tandem_group_s). */
typedef struct tandem_group_s tandem_group_t;

/** \ingroup work
 * The job itself: runs on a worker thread of the pool. */
typedef void (*tandem_work_cb)(tandem_work_t *req);
/** \ingroup work
 * Runs on the loop thread once the job is done: `status` is 0,
 * or UV_ECANCELED if it was cancelled before it started. */
typedef void (*tandem_after_work_cb)(tandem_work_t *req, int status);
/** \ingroup handle
 * Runs on the loop thread once tandem_close() has finished. */
typedef void (*tandem_close_cb)(tandem_t *t);
/** \ingroup forkjoin
 * A task's function: runs on a worker of the group's pool. */
typedef void (*tandem_task_cb)(tandem_task_t *task);
/** \ingroup forkjoin
 * The body of a parallel for: handles the indices [lo, hi). */
typedef void (*tandem_range_cb)(size_t lo, size_t hi, void *ctx);

/* ---------------------------------------------------------------- pools */

/**
 * \defgroup pool tandem_pool_t: pools
 * A pool of worker threads, each with its own work-stealing deque.  Make
 * as many as you need with tandem_pool_new(), or use the process-wide
 * default one (tandem_pool_default(), or NULL wherever a pool is asked
 * for).  A loop may use several pools, and several loops may share one.
 * A pool is freed only once no tandem_t is attached to it: tandem_close()
 * each, run their loops until the close callbacks ran, then
 * tandem_pool_free().
 * @{
 */

/** The largest tandem_options_t.queue_size: 2^22 slots, 128 MiB of ring
 * allocated when the pool is made (32 bytes a slot).  Beyond the ring,
 * jobs wait on an unbounded overflow list anyway. */
#define TANDEM_QUEUE_SIZE_MAX (1u << 22)

/** Options for tandem_pool_new().  A zeroed struct (or NULL) means
 * defaults: zero it (`= {0}` or memset) and set what you need, so that the
 * reserved fields are zero too. */
typedef struct tandem_options_s {
  unsigned workers;    /**< worker threads; 0 = the default: the
                          TANDEM_WORKERS environment variable if it holds
                          a number from 1 to 4096 (another value is
                          ignored with a message on stderr), else the
                          CPUs this process may use -- its affinity
                          mask's, or its cgroup v2 cpu.max quota rounded
                          up where one is set, whichever is fewer */
  int worker_spin_us;  /**< the longest an idle worker looks for work
                          before it parks (it may park sooner: a search is
                          also bounded in looks, and at most half of the
                          workers search at once); 0 = default (50),
                          < 0 = park at once */
  int loop_spin_us;    /**< how long a loop thread polls for completions of
                          a small batch of jobs before it sleeps in epoll;
                          0 = default (50), < 0 = never poll */
  unsigned queue_size; /**< slots in the injection queue (rounded up to a
                          power of two), allocated when the pool is made,
                          32 bytes each; 0 = default (65536); at most
                          TANDEM_QUEUE_SIZE_MAX.  When it is full, jobs
                          wait on an unbounded overflow list: queueing
                          never blocks */
  size_t stack_size;   /**< worker stack in bytes; 0 = default (8 MiB) */
  int worker_nice;     /**< added to each worker's nice value (Linux sets
                          it per thread); e.g. 5 makes the kernel prefer
                          a loop thread that wakes on a busy machine;
                          0 = unchanged.  Lowering it needs privilege. */
  /** Admission limit: the most jobs that may wait to start, across the
   * whole pool (compute jobs; blocking jobs are counted apart against the
   * same limit).  A tandem_queue_work() or tandem_queue_work_ex() that
   * would make more wait returns UV_EAGAIN at once and calls nothing
   * (tandem_stats_t.rejected counts it).  A job stops waiting when it
   * starts, expires or is cancelled.  Fork-join tasks are not counted.
   * 0 = no limit. */
  unsigned max_queued;
  /** The most threads of the blocking side (TANDEM_JOB_BLOCKING jobs),
   * made on demand; 0 = 64. */
  unsigned blocking_max;
  /** How long an idle blocking thread lives, in milliseconds; 0 = 10,000. */
  unsigned blocking_idle_ms;
  /** Time recording (tandem_pool_metrics(), tandem_loop_metrics()):
   * 0 = the default, on unless the environment variable TANDEM_METRICS
   * is "0" or "off"; > 0 = on; < 0 = off.  Off, no clock is read for any
   * job and the histograms stay empty. */
  int metrics;
  /** Reserved for options of later releases: must be zero.  This release
   * ignores them; a later one gives them meaning with zero meaning what
   * this release does, so a caller that zeroes them keeps working, without
   * recompiling, when new options appear here. */
  void *reserved[6];
} tandem_options_t;

/** Makes a pool and starts its workers; it returns once every worker runs
 * (so a fork() right after it copies no thread half started).  Returns 0 and
 * sets *pool, UV_EINVAL for a NULL pool or an option out of range (workers
 * over 4096, queue_size over TANDEM_QUEUE_SIZE_MAX, worker_nice outside
 * -39..39), UV_ENOMEM, or the error of a failed thread creation (e.g.
 * UV_EAGAIN).  On an error nothing is left behind: no memory, no thread.
 * \thread Any thread. */
TANDEM_EXTERN int tandem_pool_new(tandem_pool_t **pool,
                                  const tandem_options_t *opts);

/** Stops and joins the workers and frees the pool.  Returns 0, UV_EBUSY while a
 * tandem_t is still attached (tandem_close() it first), UV_EINVAL for NULL,
 * for the default pool (which lives until the process exits) or when called
 * from one of the pool's workers, or from a HIGH lane or blocking thread
 * (of any pool: a thread cannot join itself, and this release does not
 * tell whose it is).  Blocking threads that are idle are ended with it.
 * \thread Any thread but one of the pool's own workers, a HIGH lane or
 * a blocking thread. */
TANDEM_EXTERN int tandem_pool_free(tandem_pool_t *pool);

/** The process-wide default pool, made with default options on first use (and
 * again in a forked child).  Returns NULL only if it could not be made (out of
 * memory or threads); a later call tries again.
 * \thread Any thread. */
TANDEM_EXTERN tandem_pool_t *tandem_pool_default(void);

/** Number of workers of a pool.  0 for NULL.
 * \thread Any thread. */
TANDEM_EXTERN unsigned tandem_pool_workers(const tandem_pool_t *pool);

/** @} */

/**
 * \defgroup stats tandem_stats_t: a pool's counters
 * What a pool has done and holds now, for monitoring and tuning:
 * tandem_pool_stats() fills a tandem_stats_t.
 * @{
 */

/** Workers whose own counters tandem_stats_t.worker holds. */
#define TANDEM_STATS_MAX_WORKERS 64

/** One worker's counters (and, in tandem_stats_t.total, their sum). */
typedef struct tandem_worker_stats_s {
  uint64_t jobs;     /**< work callbacks and fork-join tasks run */
  uint64_t steals;   /**< items taken from another worker's deque */
  uint64_t injected; /**< items taken from the injection queue */
  uint64_t parks;    /**< times the worker went to sleep */
  uint64_t wakeups;  /**< times a submitter woke it up */
  uint64_t depth;    /**< items on its deque now */
} tandem_worker_stats_t;

/** A snapshot of a pool's counters, filled by tandem_pool_stats(). */
typedef struct tandem_stats_s {
  unsigned workers;            /**< workers in the pool */
  uint64_t inject_depth;       /**< items waiting in the injection queue
                                    now */
  uint64_t cancelled;          /**< jobs cancelled before they started */
  /** Times a loop began to stream.  A loop streams while its jobs are so
   * cheap that the loop thread, not the workers, limits their rate (many
   * more in flight than workers, completions coming faster than the loop
   * can take them); meanwhile a worker on its CPU rests and the others
   * trail its jobs. */
  uint64_t streams;
  unsigned streaming;          /**< loops streaming now */
  tandem_worker_stats_t total; /**< sum over every worker */
  /** the first min(workers, TANDEM_STATS_MAX_WORKERS) workers */
  tandem_worker_stats_t worker[TANDEM_STATS_MAX_WORKERS];
  uint64_t rejected; /**< jobs refused with UV_EAGAIN (max_queued) */
  uint64_t expired;  /**< jobs whose deadline passed before they started:
                          called back with UV_ETIMEDOUT */
  uint64_t queued;   /**< jobs waiting to start now, counted where
                          max_queued is set (compute and blocking); 0
                          without a limit */
  uint64_t blocking_jobs;     /**< blocking jobs run */
  unsigned blocking_threads;  /**< threads of the blocking side now */
  unsigned blocking_idle;     /**< of those, idle now */
  uint64_t high_lane_jobs;    /**< HIGH jobs run by the pool's HIGH lane
                                   (a thread that runs HIGH jobs while
                                   every worker is busy) */
  uint64_t workers_busy; /**< workers running a job or a task now (0 when
                              the pool records no time: see
                              tandem_options_t.metrics) */
  /** Reserved for a counter of a later release: this release writes 0.
   * A later one may count something here without changing the struct's
   * size. */
  uint64_t reserved[1];
} tandem_stats_t;

/** Fills *out with a snapshot of the pool's counters; each counter is read
 * atomically, the set is not a single instant.  Returns 0 or UV_EINVAL for
 * NULL arguments.
 * \thread Any thread. */
TANDEM_EXTERN int tandem_pool_stats(tandem_pool_t *pool, tandem_stats_t *out);

/** @} */

/**
 * \defgroup metrics Time: histograms, busy and parked workers, loop lag
 * Where the time goes, cheap enough to leave on: how long each job waited
 * to start (**wait**: queued until its work callback starts), how long it
 * ran (**run**: until its work callback returned), and how late its loop
 * was (**lag**: from then until its after callback starts); how long each
 * worker was busy and parked; how long each loop thread slept in its poll.
 *
 * Each thread records into its own histograms (a worker's are written by
 * that worker alone: no lock, no shared cache line) and a read merges
 * them.  A job costs one clock read on its worker (its end is the next
 * job's start when the worker goes straight on) and at most one on its
 * loop thread: its after callback's start, which also times the jobs that
 * callback queues.  While after callbacks are short (under 500 ns on
 * average) the loop reads the clock before every 8th one only, and those
 * between use that reading, so a lag, or the wait of a job queued from an
 * after callback, may be off by up to 7 short callbacks (a few
 * microseconds at most).  The clock is the CPU's invariant time-stamp counter
 * where the kernel says it is one (x86-64 with constant_tsc and
 * nonstop_tsc), calibrated once against CLOCK_MONOTONIC, else
 * CLOCK_MONOTONIC.  tandem_options_t.metrics switches it off.  A loop's
 * idle time is libuv's own: tandem_init() configures the loop with
 * UV_METRICS_IDLE_TIME (uv_loop_configure) when the pool records time, so
 * uv_metrics_idle_time() works for the application too; libuv then polls
 * once without blocking before each blocking poll.
 *
 * Histograms count requests (tandem_queue_work(), tandem_queue_work_ex(),
 * tandem_parallel_for_async()) whose work callback ran, on a worker, the
 * HIGH lane or a blocking thread; not fork-join tasks, and not jobs that
 * never started (cancelled, expired).  A job queued from inside an after
 * callback waits from that callback's start (as read above).
 * @{
 */

/** Sub-buckets per power of two in a tandem_histogram_t (2^3 = 8: a
 * bucket is at most 1/8 = 12.5 % of its values wide). */
#define TANDEM_HISTOGRAM_SUB_BITS 3
/** Buckets of a tandem_histogram_t: 0..7 ns one each, then 8 per power
 * of two up to 2^40 ns (about 18 minutes); larger values land in the last
 * bucket. */
#define TANDEM_HISTOGRAM_BUCKETS 304

/** A log-linear histogram of durations in nanoseconds (HdrHistogram's
 * layout): bucket i holds the values v with
 * tandem_histogram_bucket_lower(i) <= v < tandem_histogram_bucket_upper(i).
 * Zero it to start one (`= {0}`). */
typedef struct tandem_histogram_s {
  uint64_t count;  /**< values recorded: the sum of bucket[] */
  uint64_t sum_ns; /**< their sum */
  uint64_t max_ns; /**< the largest */
  uint64_t bucket[TANDEM_HISTOGRAM_BUCKETS]; /**< values in each bucket */
} tandem_histogram_t;

/** The bucket that holds `ns`.
 * \thread Any thread. */
TANDEM_EXTERN unsigned tandem_histogram_bucket(uint64_t ns);

/** The smallest value bucket `i` holds; UINT64_MAX for i out of range.
 * \thread Any thread. */
TANDEM_EXTERN uint64_t tandem_histogram_bucket_lower(unsigned i);

/** One past the largest value bucket `i` holds (the next bucket's lower
 * bound; UINT64_MAX for the last bucket and for i out of range).
 * \thread Any thread. */
TANDEM_EXTERN uint64_t tandem_histogram_bucket_upper(unsigned i);

/** Adds one value to `h` (NULL: nothing).  Not atomic: for a histogram of
 * the caller's own, written by one thread at a time.
 * \thread Any thread that owns h. */
TANDEM_EXTERN void tandem_histogram_record(tandem_histogram_t *h,
                                           uint64_t ns);

/** Adds every value of `from` to `into` (NULL: nothing).  Exact: the
 * merged counts are the sums.
 * \thread Any thread that owns into. */
TANDEM_EXTERN void tandem_histogram_merge(tandem_histogram_t *into,
                                          const tandem_histogram_t *from);

/** The value at quantile `q` (0.5 = the median, 0.99 = p99, 0.999 =
 * p99.9; clamped to [0, 1]): the upper end of the bucket that holds the
 * ceil(q * count)-th smallest value, but never more than max_ns -- so
 * within one bucket's width (12.5 %) of the exact value, never below it.
 * 0 for an empty histogram or NULL.
 * \thread Any thread. */
TANDEM_EXTERN uint64_t tandem_histogram_quantile(const tandem_histogram_t *h,
                                                 double q);

/** The mean in nanoseconds (sum_ns / count); 0 if empty or NULL.
 * \thread Any thread. */
TANDEM_EXTERN uint64_t tandem_histogram_mean(const tandem_histogram_t *h);

/** One worker's time, in tandem_metrics_t.worker (and the sum over the
 * workers in tandem_metrics_t.total). */
typedef struct tandem_worker_metrics_s {
  uint64_t busy_ns;   /**< time spent running jobs and fork-join tasks,
                           the one running now included (and the moment
                           between two it runs back to back) */
  uint64_t parked_ns; /**< time asleep, waiting for work, the current
                           sleep included */
  uint64_t jobs;      /**< requests it ran (their wait and run are in the
                           histograms) */
  uint64_t busy;      /**< 1 while it runs a job or task now, or goes
                           straight from one to the next (in total: the
                           workers busy now) */
} tandem_worker_metrics_t;

/** A snapshot of a pool's time, filled by tandem_pool_metrics(). */
typedef struct tandem_metrics_s {
  unsigned workers;  /**< workers in the pool */
  int enabled;       /**< 1 if the pool records time, 0 if it was made
                          with metrics off (then every time and histogram
                          below is 0) */
  uint64_t uptime_ns; /**< since the pool was made */
  /** Every request's wait: queued until its work callback started. */
  tandem_histogram_t wait;
  /** Every request's run: its work callback's duration. */
  tandem_histogram_t run;
  tandem_worker_metrics_t total; /**< sum over every worker */
  /** the first min(workers, TANDEM_STATS_MAX_WORKERS) workers */
  tandem_worker_metrics_t worker[TANDEM_STATS_MAX_WORKERS];
  uint64_t reserved[8]; /**< reserved: this release writes 0 */
} tandem_metrics_t;

/** Fills *out with the pool's time: the workers' busy and parked time and
 * the merged wait and run histograms.  Each value is read atomically, the
 * set is not a single instant (a histogram's count may lag its buckets by
 * the jobs recorded meanwhile).  Returns 0 or UV_EINVAL for NULL arguments.
 * \thread Any thread. */
TANDEM_EXTERN int tandem_pool_metrics(tandem_pool_t *pool,
                                      tandem_metrics_t *out);

/** A snapshot of one handle's loop, filled by tandem_loop_metrics(). */
typedef struct tandem_loop_metrics_s {
  int enabled;          /**< 1 if its pool records time, else 0 (and
                             everything below is 0) */
  uint64_t callbacks;   /**< after callbacks of jobs whose work callback
                             ran (the lag histogram's count) */
  uint64_t uptime_ns;   /**< since tandem_init() */
  uint64_t idle_ns;     /**< of that, time the loop thread slept in
                             epoll_wait (uv_metrics_idle_time()), the
                             current sleep included; the rest it was
                             busy: running callbacks -- of every handle
                             and request on the loop, I/O included, not
                             only tandem's -- or polling for
                             completions */
  uint64_t busy_ns;     /**< uptime_ns - idle_ns */
  /** Each such job's lag: its work callback returned until its after
   * callback started. */
  tandem_histogram_t lag;
  uint64_t reserved[4]; /**< reserved: this release writes 0 */
} tandem_loop_metrics_t;

/** Fills *out with the time of `t`'s loop.  Returns 0, or UV_EINVAL for
 * NULL arguments or a handle that is not initialised or whose close has
 * finished.
 * \thread Any thread, from tandem_init() until t's close callback. */
TANDEM_EXTERN int tandem_loop_metrics(const tandem_t *t,
                                      tandem_loop_metrics_t *out);

/** @} */

/* --------------------------------------------------- loops and requests */

/**
 * \defgroup handle tandem_t: a loop joined to a pool
 * A tandem_t lives next to a uv loop, like a libuv handle: jobs queued on
 * it run on its pool, and their after callbacks come back on its loop's
 * thread.  Closing it is asynchronous, as uv_close() is: tandem_close(),
 * then run the loop until the close callback ran; only then may the handle
 * be freed, the pool be freed (tandem_pool_free()) and the loop be closed
 * (uv_loop_close() returns UV_EBUSY before).
 * @{
 */

/** A handle joining one uv loop to one pool.  Caller-owned; valid from
 * tandem_init() until its close callback has run.  The fields after
 * `pool` are private. */
struct tandem_s {
  void *data; /**< public: the caller's; tandem never touches it */
  uv_loop_t *loop;     /**< read-only: the loop it joins */
  tandem_pool_t *pool; /**< read-only: the pool its jobs run on */
  /** \cond PRIVATE */
  /* private */
  uv_poll_t wake_;     /* watches wake_fd_: completions wake the loop */
  uv_idle_t idle_;     /* polls for completions when one is near */
  uv_timer_t timer_;   /* drains a deep backlog's completions each tick */
  tandem_close_cb close_cb_;
  /* Written by the loop thread (and by other submitting threads). */
  unsigned inflight_;      /* queued from other threads and not yet
                              called back, plus a closing bit; atomic */
  unsigned loop_pending_;  /* queued from the loop thread (these keep
                              uv_run alive); loop thread only */
  unsigned flags_;         /* closing, closed, ref, draining, kick; loop
                              thread only */
  unsigned handles_open_;  /* loop thread only */
  unsigned mode_;          /* sleep, poll, batch or stream
                              (src/loop_mode.h); loop thread only */
  unsigned stream_slot_;   /* its slot in the pool while it streams
                              (src/stream.h); loop thread only */
  struct tandem_mode_state_s { /* the mode's history (src/loop_mode.h);
                                  loop thread only */
    uint64_t last_activity;
    uint64_t last_busy;
    uint64_t last_drain;
    uint64_t gap_ns;
    unsigned ask_max;
    unsigned char votes;
    unsigned char held;
    unsigned char forced;
    unsigned char spare;
  } mode_state_;
  /* Written by workers on every completion: a cache line of its own. */
  char pad0_[64];
  void *done_; /* completion stack head; atomic */
  char pad1_[64 - sizeof(void *)];
  /* Read by workers on every job, written rarely: its own line too, with
   * all they read of the handle, so that they never read a line that the
   * caller's data beside the handle may share (the handle need not be
   * 64-byte aligned). */
  unsigned polling_;       /* pushers may skip waking the loop; atomic */
  unsigned closing_;       /* tandem_close() was called; atomic */
  tandem_pool_t *pool_;    /* = pool */
  const void *thread_tag_; /* identifies the loop's thread (loop.c) */
  int wake_fd_;            /* an eventfd any thread writes to wake the loop */
  unsigned streaming_;     /* its loop streams (src/stream.h); atomic */
  char pad2_[64 - 4 * sizeof(unsigned) - 2 * sizeof(void *)];
  void *metrics_; /* the loop's time (src/metrics.h); loop thread */
  void *reserved_[3];
  /** \endcond */
};

/** @} */

/**
 * \defgroup work tandem_work_t: jobs
 * A job is a caller-owned request, as uv_work_t is: its work callback runs
 * on a worker of the pool, then its after callback on the loop thread of
 * the tandem_t it was queued on.
 * @{
 */

/** A request: one job.  Caller-owned, usually embedded in the caller's own
 * struct; queueing it allocates nothing.  A request may be queued again
 * from its after callback, or any time after that.  The fields after
 * `tandem` are private. */
struct tandem_work_s {
  void *data; /**< public: the caller's; tandem never touches it */
  tandem_t *tandem; /**< read-only: the handle it was last queued on */
  /** \cond PRIVATE */
  /* private: the first cache line holds all a round trip touches */
  tandem_work_cb work_cb_;
  tandem_after_work_cb after_cb_;
  void *next_;     /* completion stack link */
  void *cell_;     /* injection cell while queued there */
  unsigned state_; /* queued, running, done, finished; atomic */
  int status_;
  unsigned opts_;   /* class and flags (src/pool.h, TDM_OPT_*) */
  unsigned cancel_; /* 1 once tandem_cancel asked it to stop; atomic */
  /* private: tandem_parallel_for_async's arguments */
  uintptr_t range_[5];
  uint64_t deadline_; /* a uv_hrtime() value, with TDM_OPT_DEADLINE */
  void *reserved_[3];
  /** \endcond */
};

/** @} */

/** \ingroup handle
 * Joins `loop` to `pool` (NULL = the default pool).  Must be called on the
 * loop's thread, which becomes the thread that runs every after callback.
 * An idle tandem_t does not keep uv_run() alive.  Returns 0, UV_EINVAL for
 * NULL loop or handle, UV_ESRCH for a pool made before this process was
 * forked, the error of making the default pool (UV_ENOMEM, or a thread
 * error such as UV_EAGAIN; a later call tries again), or the error of
 * eventfd() or uv_poll_init() (e.g. UV_EMFILE).  On an error nothing is
 * left behind, but for the default pool if this call made it before
 * uv_poll_init() failed: once made, the default pool lives until the
 * process exits, whoever asked for it.
 * \thread The loop's thread. */
TANDEM_EXTERN int tandem_init(uv_loop_t *loop, tandem_t *t,
                              tandem_pool_t *pool);

/** \ingroup handle
 * Starts closing the handle: refuses new jobs (UV_ESHUTDOWN), cancels jobs
 * that have not started (their after callbacks get UV_ECANCELED), lets running
 * ones finish (tandem_work_cancelled() is 1 for them from now on, and each
 * whose work_cb returns while it is gets UV_ECANCELED), runs every remaining after callback, then calls `cb` (may be
 * NULL) on the loop thread.  The close finishes inside uv_run(): run the loop
 * after tandem_close() (uv_loop_close() returns UV_EBUSY and
 * tandem_pool_free() UV_EBUSY until it has).  After `cb` the loop holds
 * nothing of tandem's and `t` may be freed.  Returns 0, UV_EINVAL for NULL, or
 * UV_EALREADY if `t` is closing or closed already (then `cb` is never called:
 * the first close's callback is the one).
 * \thread The loop thread only. */
TANDEM_EXTERN int tandem_close(tandem_t *t, tandem_close_cb cb);

/** \ingroup work
 * Queues `req`: `work_cb` runs on a worker of t's pool, then `after_cb` (may
 * be NULL) runs on t's loop thread with status 0, or UV_ECANCELED if the job
 * was cancelled.  Jobs queued from the loop thread keep uv_run() alive until
 * their after callback has run, as with uv_queue_work; jobs queued from other
 * threads do not.  Returns 0, UV_EINVAL for NULL arguments, UV_ESHUTDOWN
 * ("cannot send after transport endpoint shutdown") once tandem_close(t) has
 * been called, UV_EBUSY if `req` is already in flight (being queued, queued,
 * running, or awaiting its after callback), UV_ESRCH for a handle made before
 * this process was forked.
 * \thread Any thread: the loop thread, a worker inside a job, or any
 * other thread. */
TANDEM_EXTERN int tandem_queue_work(tandem_t *t, tandem_work_t *req,
                                    tandem_work_cb work_cb,
                                    tandem_after_work_cb after_cb);

/** \ingroup work
 * Job classes, tandem_job_opts_t.priority.  A HIGH job starts before every
 * NORMAL or LOW job that is still waiting, as soon as a worker is free --
 * and while every worker is busy, at once on the pool's HIGH lane, a
 * thread that runs only HIGH jobs (made on the first HIGH job, parked
 * otherwise).  A LOW job starts only when no HIGH or NORMAL job waits.  No
 * running job is interrupted.  Within a class, jobs queued from outside
 * the pool start in the order they were queued.  Fork-join tasks spawned
 * inside a job take its class. */
enum { TANDEM_PRIO_LOW = -1, TANDEM_PRIO_NORMAL = 0, TANDEM_PRIO_HIGH = 1 };

/** \ingroup work
 * tandem_job_opts_t.flags.  TANDEM_JOB_BLOCKING: the job may block (file,
 * DNS, sleep, a lock held elsewhere): it runs on the pool's blocking side,
 * threads made on demand up to tandem_options_t.blocking_max and ended
 * after blocking_idle_ms idle, never on a compute worker.  Blocking jobs
 * start in the order they were queued (their priority is not used). */
enum { TANDEM_JOB_BLOCKING = 1 };

/** \ingroup work
 * Options of one job, for tandem_queue_work_ex().  Zero it (`= {0}`) and
 * set what you need: zero means a NORMAL compute job with no deadline. */
typedef struct tandem_job_opts_s {
  int priority;      /**< TANDEM_PRIO_*; 0 = normal */
  uint64_t deadline; /**< a uv_hrtime() value: if the job has not started
                          by then it is not run, and its after callback
                          gets UV_ETIMEDOUT (a deadline already past when
                          queued expires at once); a running job is not
                          stopped (work_cb may compare uv_hrtime() with
                          it).  0 = none */
  unsigned flags;    /**< TANDEM_JOB_BLOCKING, or 0 */
  void *reserved_[4]; /**< reserved: must be zero (ignored) */
} tandem_job_opts_t;

/** \ingroup work
 * tandem_queue_work() with options (NULL: the defaults, exactly
 * tandem_queue_work()).  Returns what tandem_queue_work() returns, and
 * UV_EINVAL for a priority other than TANDEM_PRIO_* or unknown flags,
 * UV_EAGAIN when the pool's max_queued jobs already wait (nothing is
 * called; queue it again later).  A job whose deadline is already past is
 * accepted (0) and called back with UV_ETIMEDOUT without running.
 * \thread Any thread, as tandem_queue_work(). */
TANDEM_EXTERN int tandem_queue_work_ex(tandem_t *t, tandem_work_t *req,
                                       tandem_work_cb work_cb,
                                       tandem_after_work_cb after_cb,
                                       const tandem_job_opts_t *opts);

/** \ingroup work
 * For work_cb, to stop early: returns 1 once tandem_cancel(req) was called
 * while the job ran, or tandem_close() on its handle, else 0.  A job whose
 * work_cb returns while this is 1 gets UV_ECANCELED in its after callback
 * instead of 0 -- including a job that had finished its work just as the
 * cancel came (the cancel wins that race; the result may be complete).
 * 0 for NULL.
 * \thread Any thread; meant for the worker running req's work_cb. */
TANDEM_EXTERN int tandem_work_cancelled(const tandem_work_t *req);

/** \ingroup work
 * Cancels a job that has not started.  Returns 0 if it had not: its after
 * callback then runs with UV_ECANCELED on the loop's next iteration, even
 * while every worker is busy, and the pool never touches `req` again.  Returns
 * UV_EBUSY if it is running or finished, if a tandem_queue_work of it has not
 * returned yet, or if it never entered the injection queue: jobs queued from
 * inside one of the pool's workers go straight onto that worker's deque, and
 * jobs queued while the injection queue was full wait on an overflow list;
 * both count as taken.  A job that an after callback queued on its own
 * handle may wait, until that callback's drain pushes it to the injection
 * queue, in a batch on the loop thread: tandem_cancel on that thread
 * pushes the batch first and takes the job back (0); on another thread it
 * finds the job not yet in the queue (UV_EBUSY, below).  HIGH, LOW and
 * blocking jobs wait in queues of their own and can be cancelled there
 * (an O(n) search of that queue).  For a running job, or one it cannot
 * take back, it also returns UV_EBUSY, and asks it to stop: from then on
 * tandem_work_cancelled(req) is 1, and if work_cb returns after that, the
 * after callback gets UV_ECANCELED (a cancel that comes as work_cb returns
 * may be too late: then 0).  A finished job (awaiting or past its after
 * callback) is not asked; but a cancel racing a re-queue of the same
 * request from its after callback may ask the new job.  UV_EINVAL for NULL
 * or a request never queued.
 * \thread Any thread. */
TANDEM_EXTERN int tandem_cancel(tandem_work_t *req);

/* ----------------------------------------------------------- fork-join */

/**
 * \defgroup forkjoin Fork-join
 * Parallelism inside a job, Cilk-style: tandem_join() for two calls, task
 * groups for many, tandem_parallel_for() for a range.  On a worker they
 * push work on the worker's own deque, where idle workers steal it, and a
 * waiting worker runs other work instead of sleeping.  Called from any
 * other thread they block it; a loop thread uses
 * tandem_parallel_for_async() instead.
 * @{
 */

/** Runs a(a_arg) and b(b_arg), possibly in parallel, and returns when both
 * are done.  On a worker it pushes b on its own deque, runs a, then takes b
 * back or, if b was stolen, runs other work until b is done.  On any other
 * thread it runs both on the default pool and blocks the caller (a loop
 * thread should use tandem_parallel_for_async instead).
 * \thread Any thread; outside the pool it blocks. */
TANDEM_EXTERN void tandem_join(void (*a)(void *), void *a_arg,
                               void (*b)(void *), void *b_arg);

/** A caller-owned task for a group; spawning it allocates nothing.  The
 * fields after `data` are private. */
struct tandem_task_s {
  void *data; /**< public: the caller's; tandem never touches it */
  /** \cond PRIVATE */
  /* private */
  tandem_task_cb fn_;
  tandem_group_t *group_;
  void *reserved_[2];
  /** \endcond */
};

/** A group of tasks that a thread spawns and then waits for.
 * Caller-owned; every field is private. */
struct tandem_group_s {
  /** \cond PRIVATE */
  /* private */
  tandem_pool_t *pool_;
  int pending_; /* atomic: spawned and not finished */
  int spare_;   /* unused: room for a field without changing the size */
  void *reserved_[2];
  /** \endcond */
};

/** Prepares a group on `pool` (NULL = the worker's own pool when called on a
 * worker, else the default pool).  Returns 0, UV_EINVAL, UV_ESRCH for a pool
 * made before this process was forked, or the error of making the default pool
 * (UV_ENOMEM, a thread error).
 * \thread Any thread. */
TANDEM_EXTERN int tandem_group_init(tandem_group_t *g, tandem_pool_t *pool);

/** Spawns `task`: fn(task) will run on the pool.  The task must stay valid
 * until tandem_group_wait() returns.  Returns 0, UV_EINVAL for NULL arguments,
 * UV_ESRCH for a group made before this process was forked.
 * \thread The thread that waits for the group. */
TANDEM_EXTERN int tandem_group_spawn(tandem_group_t *g, tandem_task_t *task,
                                     tandem_task_cb fn);

/** Returns when every task spawned on `g` has finished.  On a worker it runs
 * other work while it waits; elsewhere it blocks.  Returns 0, UV_EINVAL, or
 * UV_ESRCH for a group made before this process was forked.
 * \thread The thread that spawned the tasks. */
TANDEM_EXTERN int tandem_group_wait(tandem_group_t *g);

/** Calls body(lo, hi, ctx) on disjoint, non-empty sub-ranges covering
 * [begin, end), splitting recursively while a piece is longer than `grain`
 * indices (so pieces hold at most `grain`; 0 = split lazily, only while
 * other workers are hungry).  On a worker it nests; elsewhere it blocks.
 * `pool` NULL = the current worker's pool or the default pool.  Returns 0
 * (also for an empty range, where body is never called), UV_EINVAL, or
 * tandem_group_init's errors.
 * \thread Any thread; outside the pool it blocks. */
TANDEM_EXTERN int tandem_parallel_for(tandem_pool_t *pool, size_t begin,
                                      size_t end, size_t grain,
                                      tandem_range_cb body, void *ctx);

/** The non-blocking form for a loop thread: runs the whole range on t's pool
 * (using `req` as the job) and calls after_cb(req, status) on the loop
 * thread once every index is done, or with UV_ECANCELED if it was cancelled
 * before it started.  Same thread rules and errors as tandem_queue_work.
 * \thread As tandem_queue_work(): any thread; meant for a loop
 * thread, which it never blocks. */
TANDEM_EXTERN int tandem_parallel_for_async(tandem_t *t, tandem_work_t *req,
                                            size_t begin, size_t end,
                                            size_t grain, tandem_range_cb body,
                                            void *ctx,
                                            tandem_after_work_cb after_cb);

/** @} */

/* ------------------------------------------------------------- versions */

/**
 * \defgroup version Versions
 * The version a program was compiled with (the macros of tandem/version.h)
 * and the version of the library it runs against (these functions), as
 * libuv's UV_VERSION_HEX and uv_version().  While the major version is 0,
 * a new minor version may change the ABI, and the library's SONAME changes
 * with it (libtandem.so.0.1, libtandem.so.0.2, ...): a program never loads
 * a library it was not compiled for.
 * @{
 */

/** The library's version as (major << 16) | (minor << 8) | patch, like
 * uv_version(): compare it with TANDEM_VERSION_HEX.
 * \thread Any thread. */
TANDEM_EXTERN unsigned tandem_version(void);

/** The library's version as "MAJOR.MINOR.PATCH", a static string.
 * \thread Any thread. */
TANDEM_EXTERN const char *tandem_version_string(void);

/** @} */

#ifdef __cplusplus
}
#endif
#endif /* TANDEM_H */
