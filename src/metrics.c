/* SPDX-License-Identifier: MIT */
/*
 * metrics.c: a loop's idle time and the reads that merge what every
 * thread recorded (tandem_pool_metrics, tandem_loop_metrics).  Where jobs
 * are timed: job.c (wait, run), pool.c (a worker's busy time), idle.c
 * (its parked time), loop.c (lag, and the reading a submit takes).
 */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "pool.h"

/* ------------------------------------------------------------ the loop */

int tdm_loop_rec_alloc(tandem_t *t) {
  t->metrics_ = calloc(1, sizeof(tdm_loop_rec_t));
  return t->metrics_ != NULL ? 0 : UV_ENOMEM;
}

void tdm_loop_rec_start(tandem_t *t, bool on) {
  tdm_loop_rec_t *m = tdm_loop_rec(t);

  m->on = on;
  if (!on)
    return;
  /* ns -> ticks: the inverse of tdm_clock_ns's factor. */
  m->short_ticks = ((uint64_t)TDM_SHORT_CALLBACK_NS << TDM_CLOCK_SHIFT) /
                   tdm_clock_mult;
  /* Cannot fail for this option (libuv sets a flag); from here libuv
   * counts the time its poll blocks, ours from idle_base on. */
  (void)uv_loop_configure(t->loop, UV_METRICS_IDLE_TIME);
  m->made = uv_hrtime();
  m->idle_base = uv_metrics_idle_time(t->loop);
}

void tdm_loop_rec_free(tandem_t *t) {
  free(t->metrics_);
  t->metrics_ = NULL;
}

int tandem_loop_metrics(const tandem_t *t, tandem_loop_metrics_t *out) {
  tdm_loop_rec_t *m;
  uint64_t idle;

  if (t == NULL || out == NULL || (m = tdm_loop_rec(t)) == NULL)
    return UV_EINVAL;
  memset(out, 0, sizeof(*out));
  if (!m->on)
    return 0;
  out->enabled = 1;
  /* Thread-safe (libuv takes a lock), the current poll included. */
  idle = uv_metrics_idle_time(t->loop) - m->idle_base;
  out->uptime_ns = uv_hrtime() - m->made;
  out->idle_ns = idle < out->uptime_ns ? idle : out->uptime_ns;
  out->busy_ns = out->uptime_ns - out->idle_ns;
  tdm_hist_merge_live(&out->lag, &m->lag);
  out->callbacks = out->lag.count;
  return 0;
}

/* ------------------------------------------------------------ the pool */

/* A reading that may be 0 ("not now"): the time from it until `now`. */
static uint64_t running_for(uint64_t since, uint64_t now) {
  return since != 0 && now > since ? now - since : 0;
}

static void worker_metrics(tdm_worker_t *w, uint64_t now,
                           tandem_worker_metrics_t *out) {
  /* busy_since before busy_ticks: the worker ends a streak in the other
   * order (pool.c, busy_end), so a streak seen ended is in busy_ticks. */
  uint64_t busy_since = tdm_load_64(&w->rec.busy_since);
  uint64_t busy_ticks = tdm_load_64(&w->rec.busy_ticks);

  out->busy_ns = tdm_clock_ns(busy_ticks + running_for(busy_since, now));
  out->parked_ns =
      tdm_clock_ns(tdm_load_64(&w->search.parked_ticks) +
                   running_for(tdm_load_64(&w->search.parked_since), now));
  out->busy = busy_since != 0;
}

static void add_worker(tandem_worker_metrics_t *sum,
                       const tandem_worker_metrics_t *w) {
  sum->busy_ns += w->busy_ns;
  sum->parked_ns += w->parked_ns;
  sum->jobs += w->jobs;
  sum->busy += w->busy;
}

/* Adds a thread's histograms to out's; returns the requests it ran. */
static uint64_t add_rec(tandem_metrics_t *out, const tdm_rec_t *r) {
  uint64_t before = out->run.count;

  tdm_hist_merge_live(&out->wait, &r->wait);
  tdm_hist_merge_live(&out->run, &r->run);
  return out->run.count - before;
}

int tandem_pool_metrics(tandem_pool_t *pool, tandem_metrics_t *out) {
  tandem_worker_metrics_t w;
  uint64_t now;
  unsigned i;

  if (pool == NULL || out == NULL)
    return UV_EINVAL;
  memset(out, 0, sizeof(*out));
  out->workers = pool->nworkers;
  if (!pool->timed)
    return 0;
  out->enabled = 1;
  now = tdm_clock_now();
  out->uptime_ns = tdm_clock_since(pool->made, now);
  for (i = 0; i < pool->nworkers; i++) {
    worker_metrics(&pool->workers[i], now, &w);
    w.jobs = add_rec(out, &pool->workers[i].rec);
    add_worker(&out->total, &w);
    if (i < TANDEM_STATS_MAX_WORKERS)
      out->worker[i] = w;
  }
  add_rec(out, &pool->lane_rec);
  add_rec(out, &pool->blocking_rec);
  return 0;
}

unsigned tandem__pool_busy_workers(const tandem_pool_t *pool) {
  unsigned i;
  unsigned n = 0;

  for (i = 0; i < pool->nworkers; i++)
    n += tdm_load_64(&pool->workers[i].rec.busy_since) != 0;
  return n;
}
