/* SPDX-License-Identifier: MIT */
/*
 * GET /metrics: the server's counters and tandem's time in the Prometheus
 * text exposition format 0.0.4 (respond_metrics): base units (seconds),
 * _total on counters, # HELP and # TYPE on every family.  A histogram
 * keeps one `le` per power of two of nanoseconds, from 2^7 ns (128 ns) to
 * 2^37 ns (137 s): each is an edge of tandem's own buckets, so every
 * cumulative count is exact, not interpolated.  Loop thread only.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "server.h"

/* The powers of two of nanoseconds that /metrics uses as `le` bounds. */
#define LE_FIRST_POW2 7
#define LE_LAST_POW2 37

static void prom_family(sbuf_t *sb, const char *name, const char *type,
                        const char *help) {
  sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void prom_u64(sbuf_t *sb, const char *name, const char *type,
                     const char *help, uint64_t v) {
  prom_family(sb, name, type, help);
  sb_printf(sb, "%s %" PRIu64 "\n", name, v);
}

static void prom_seconds(sbuf_t *sb, const char *name, const char *type,
                         const char *help, uint64_t ns) {
  prom_family(sb, name, type, help);
  sb_printf(sb, "%s %.9f\n", name, (double)ns / 1e9);
}

/* A tandem histogram as a Prometheus one.  The +Inf bucket and _count are
 * the sum of the buckets, not h->count: a snapshot's count may lag its
 * buckets by the jobs recorded while it was read, and +Inf must never be
 * below the last finite bucket. */
static void prom_histogram(sbuf_t *sb, const char *name, const char *help,
                           const tandem_histogram_t *h) {
  uint64_t cum = 0, total = 0;
  unsigned b = 0, edge, k;

  for (b = 0; b < TANDEM_HISTOGRAM_BUCKETS; b++)
    total += h->bucket[b];
  prom_family(sb, name, "histogram", help);
  for (b = 0, k = LE_FIRST_POW2; k <= LE_LAST_POW2; k++) {
    edge = tandem_histogram_bucket((uint64_t)1 << k);
    for (; b < edge; b++)
      cum += h->bucket[b];
    sb_printf(sb, "%s_bucket{le=\"%.12g\"} %" PRIu64 "\n", name,
              (double)tandem_histogram_bucket_lower(edge) / 1e9, cum);
  }
  sb_printf(sb,
            "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.9f\n"
            "%s_count %" PRIu64 "\n",
            name, total, name, (double)h->sum_ns / 1e9, name, total);
}

/* The pool's counters: there whenever there is a pool. */
static void prom_pool(sbuf_t *sb, const snapshot_t *s) {
  prom_u64(sb, "tandem_workers", "gauge", "Workers in the pool.",
           s->st.workers);
  prom_u64(sb, "tandem_queue_depth", "gauge",
           "Jobs waiting to start (all of them under --max-queued, else "
           "the injection queue and worker deques).",
           queue_depth(&s->st));
  prom_u64(sb, "tandem_jobs_rejected_total", "counter",
           "Jobs refused because max_queued jobs were waiting.",
           s->st.rejected);
  prom_u64(sb, "tandem_jobs_cancelled_total", "counter",
           "Jobs cancelled before they started.", s->st.cancelled);
  prom_u64(sb, "tandem_jobs_expired_total", "counter",
           "Jobs whose deadline passed before they started.", s->st.expired);
}

/* One family with a sample per worker: the uint64_t at `field` of its
 * tandem_worker_metrics_t, in seconds if it is in nanoseconds. */
static void prom_per_worker(sbuf_t *sb, const snapshot_t *s, const char *name,
                            const char *type, const char *help, size_t field,
                            int seconds) {
  uint64_t v;
  unsigned i;

  prom_family(sb, name, type, help);
  for (i = 0; i < listed_workers(s->m.workers); i++) {
    memcpy(&v, (const char *)&s->m.worker[i] + field, sizeof(v));
    if (seconds)
      sb_printf(sb, "%s{worker=\"%u\"} %.9f\n", name, i, (double)v / 1e9);
    else
      sb_printf(sb, "%s{worker=\"%u\"} %" PRIu64 "\n", name, i, v);
  }
}

/* The pool's and the loop's time: there when the pool records it. */
static void prom_time(sbuf_t *sb, const snapshot_t *s) {
  prom_u64(sb, "tandem_jobs_total", "counter",
           "Requests whose work callback ran (the run histogram's count).",
           s->m.run.count);
  prom_u64(sb, "tandem_workers_busy", "gauge",
           "Workers running a job or a task now.", s->st.workers_busy);
  prom_per_worker(sb, s, "tandem_worker_busy", "gauge",
                  "1 while the worker runs a job or a task.",
                  offsetof(tandem_worker_metrics_t, busy), 0);
  prom_per_worker(sb, s, "tandem_worker_busy_seconds_total", "counter",
                  "Time the worker spent running jobs and tasks.",
                  offsetof(tandem_worker_metrics_t, busy_ns), 1);
  prom_per_worker(sb, s, "tandem_worker_parked_seconds_total", "counter",
                  "Time the worker slept waiting for work.",
                  offsetof(tandem_worker_metrics_t, parked_ns), 1);
  prom_seconds(sb, "tandem_loop_busy_seconds_total", "counter",
               "Time the loop thread was not asleep in its poll.",
               s->loop.busy_ns);
  prom_seconds(sb, "tandem_loop_idle_seconds_total", "counter",
               "Time the loop thread slept in its poll.", s->loop.idle_ns);
  prom_histogram(sb, "tandem_job_wait_seconds",
                 "Time from queueing a job to its work callback's start.",
                 &s->m.wait);
  prom_histogram(sb, "tandem_job_run_seconds",
                 "Duration of a job's work callback.", &s->m.run);
  prom_histogram(sb, "tandem_loop_lag_seconds",
                 "Time from a job's end to its after callback's start.",
                 &s->loop.lag);
}

/* The server's own counters: there in every mode. */
static void prom_server(sbuf_t *sb, const server_t *srv) {
  unsigned i;
  int code;

  prom_family(sb, "tandem_http_requests_total", "counter",
              "HTTP requests routed, by endpoint.");
  for (i = 0; i < EP_COUNT; i++)
    sb_printf(sb, "tandem_http_requests_total{endpoint=\"%s\"} %" PRIu64 "\n",
              endpoint_name((endpoint_t)i), srv->endpoints[i]);
  prom_family(sb, "tandem_http_responses_total", "counter",
              "HTTP responses sent, by status code.");
  for (code = 0; code < STATUS_MAX; code++)
    if (srv->responses[code] > 0)
      sb_printf(sb, "tandem_http_responses_total{code=\"%d\"} %" PRIu64 "\n",
                code, srv->responses[code]);
  prom_seconds(sb, "tandem_uptime_seconds", "gauge",
               "Time since the server started.", uv_hrtime() - srv->started_ns);
  prom_family(sb, "tandem_build_info", "gauge",
              "The tandem library's version, as a label; always 1.");
  sb_printf(sb, "tandem_build_info{version=\"%s\"} 1\n",
            tandem_version_string());
}

void respond_metrics(conn_t *c) {
  server_t *srv = c->srv;
  snapshot_t *s = malloc(sizeof(*s));
  sbuf_t sb;

  sb_init(&sb, 16384);
  if (s == NULL) {
    free(sb.buf);
    sb.buf = NULL;
  } else {
    snapshot_take(srv, s);
    if (s->pool)
      prom_pool(&sb, s);
    if (s->timed)
      prom_time(&sb, s);
    prom_server(&sb, srv);
  }
  free(s);
  sb_respond(c, &sb, "text/plain; version=0.0.4; charset=utf-8");
}
