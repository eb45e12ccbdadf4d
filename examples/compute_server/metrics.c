/* SPDX-License-Identifier: MIT */
/*
 * What the server counts and how it reports it.  Loop thread only.
 *
 *   - Its own counters: responses by status code (conn_respond counts each
 *     one it sends), requests by endpoint (route_request counts each one it
 *     routes), next to the older ones in server_t.
 *   - Rates: a one-second timer samples those counters and the time tandem
 *     reports (the workers' busy time, the loop thread's busy time); a rate
 *     is the difference between the last two samples over the time that
 *     really passed between them, so a timer that fires late widens the
 *     window instead of inflating the rate.  The timer is unref'd, so it
 *     never keeps the loop alive, and closed by metrics_stop(), so
 *     uv_loop_close() still finds nothing open.
 *   - GET /stats: all of it as JSON (respond_stats).
 *   - GET /metrics: the same in the Prometheus text exposition format 0.0.4
 *     (respond_metrics): base units (seconds), _total on counters, # HELP
 *     and # TYPE on every family.  A histogram keeps one `le` per power of
 *     two of nanoseconds, from 2^7 ns (128 ns) to 2^37 ns (137 s): each is
 *     an edge of tandem's own buckets, so every cumulative count is exact,
 *     not interpolated.
 *
 * In --mode inline there is no pool, and with --no-metrics (or
 * TANDEM_METRICS=off) the pool records no time: the reports then hold what
 * exists, and /stats says "metrics": null.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

#define RATE_PERIOD_MS 1000
/* The powers of two of nanoseconds that /metrics uses as `le` bounds. */
#define LE_FIRST_POW2 7
#define LE_LAST_POW2 37

static const char *const endpoint_names[EP_COUNT] = {
    "ping", "fib",   "sha256",  "primes",    "sleep",
    "file", "stats", "metrics", "dashboard", "other"};

const char *endpoint_name(endpoint_t ep) {
  return ep < EP_COUNT ? endpoint_names[ep] : "other";
}

void metrics_count_request(server_t *srv, endpoint_t ep) {
  srv->endpoints[ep < EP_COUNT ? ep : EP_OTHER]++;
}

void metrics_count_response(server_t *srv, int status) {
  if (status >= 0 && status < STATUS_MAX)
    srv->responses[status]++;
}

/* ---------------------------------------------------------- snapshots */

/* Everything tandem says about the pool and the loop, at one moment. */
typedef struct {
  tandem_stats_t st;
  tandem_metrics_t m;
  tandem_loop_metrics_t loop;
  int pool;  /* there is a pool: st holds its counters */
  int timed; /* and it records time: m and loop hold it */
} snapshot_t;

static void snapshot_take(server_t *srv, snapshot_t *s) {
  s->pool = srv->pool != NULL && tandem_pool_stats(srv->pool, &s->st) == 0;
  /* tandem_loop_metrics() refuses a handle whose close has finished (a
   * request answered during shutdown): then there is no time to show. */
  s->timed = s->pool && tandem_pool_metrics(srv->pool, &s->m) == 0 &&
             s->m.enabled && tandem_loop_metrics(&srv->tandem, &s->loop) == 0 &&
             s->loop.enabled;
}

/* The workers listed one by one: tandem reports the first
 * TANDEM_STATS_MAX_WORKERS. */
static unsigned listed_workers(unsigned workers) {
  return workers < TANDEM_STATS_MAX_WORKERS ? workers
                                            : TANDEM_STATS_MAX_WORKERS;
}

/* Jobs waiting to start: with --max-queued the pool counts every waiting
 * job (queued), else those in its injection queue and worker deques. */
static uint64_t queue_depth(const tandem_stats_t *st) {
  return st->queued != 0 ? st->queued : st->inject_depth + st->total.depth;
}

/* -------------------------------------------------------------- rates */

static void rate_sample(server_t *srv, rate_sample_t *r) {
  tandem_metrics_t m;
  tandem_loop_metrics_t lm;

  memset(r, 0, sizeof(*r));
  r->at_ns = uv_hrtime();
  r->requests = srv->requests;
  r->jobs_done = srv->jobs_done;
  memcpy(r->endpoints, srv->endpoints, sizeof(r->endpoints));
  if (srv->pool == NULL)
    return;
  if (tandem_pool_metrics(srv->pool, &m) == 0 && m.enabled) {
    r->workers_ns = m.uptime_ns * m.workers;
    r->workers_busy_ns = m.total.busy_ns;
  }
  if (tandem_loop_metrics(&srv->tandem, &lm) == 0 && lm.enabled) {
    r->loop_ns = lm.uptime_ns;
    r->loop_busy_ns = lm.busy_ns;
  }
}

static double per_s(uint64_t now, uint64_t then, double secs) {
  return now > then ? (double)(now - then) / secs : 0;
}

/* part/whole of two increments, in [0, 1]: the two are read at slightly
 * different instants, so part may overshoot by a little. */
static double ratio(uint64_t part, uint64_t whole) {
  double r = whole > 0 ? (double)part / (double)whole : 0;
  return r < 0 ? 0 : r > 1 ? 1 : r;
}

static void rates_update(rates_t *out, const rate_sample_t *a,
                         const rate_sample_t *b) {
  double secs = (double)(b->at_ns - a->at_ns) / 1e9;
  unsigned i;

  if (secs <= 0)
    return;
  out->requests = per_s(b->requests, a->requests, secs);
  out->jobs = per_s(b->jobs_done, a->jobs_done, secs);
  for (i = 0; i < EP_COUNT; i++)
    out->endpoints[i] = per_s(b->endpoints[i], a->endpoints[i], secs);
  out->busy_ratio =
      b->workers_busy_ns >= a->workers_busy_ns && b->workers_ns >= a->workers_ns
          ? ratio(b->workers_busy_ns - a->workers_busy_ns,
                  b->workers_ns - a->workers_ns)
          : 0;
  out->loop_busy_ratio =
      b->loop_busy_ns >= a->loop_busy_ns && b->loop_ns >= a->loop_ns
          ? ratio(b->loop_busy_ns - a->loop_busy_ns, b->loop_ns - a->loop_ns)
          : 0;
}

static void on_rate_timer(uv_timer_t *timer) {
  server_t *srv = container_of(timer, server_t, rate_timer);
  rate_sample_t now;

  rate_sample(srv, &now);
  rates_update(&srv->rates, &srv->rate_last, &now);
  srv->rate_last = now;
}

int metrics_start(server_t *srv) {
  int r;

  srv->started_ns = uv_hrtime();
  rate_sample(srv, &srv->rate_last);
  r = uv_timer_init(srv->loop, &srv->rate_timer);
  if (r != 0)
    return r;
  srv->rate_timer_on = 1; /* from here on metrics_stop() must close it */
  r = uv_timer_start(&srv->rate_timer, on_rate_timer, RATE_PERIOD_MS,
                     RATE_PERIOD_MS);
  if (r != 0)
    return r;
  uv_unref((uv_handle_t *)&srv->rate_timer);
  return 0;
}

void metrics_stop(server_t *srv) {
  if (!srv->rate_timer_on)
    return;
  srv->rate_timer_on = 0;
  uv_close((uv_handle_t *)&srv->rate_timer, NULL);
}

/* ------------------------------------------------------ text buffers */

typedef struct {
  char *buf; /* NULL once an allocation failed: the answer is then 500 */
  size_t len, cap;
} sbuf_t;

static void sb_init(sbuf_t *sb, size_t cap) {
  sb->buf = malloc(cap);
  sb->cap = cap;
  sb->len = 0;
}

/* Room for `more` bytes and a NUL; 0 (and no buffer) if out of memory. */
static int sb_reserve(sbuf_t *sb, size_t more) {
  size_t cap = sb->cap;
  char *buf;

  while (more >= cap - sb->len)
    cap *= 2;
  if (cap == sb->cap)
    return 1;
  buf = realloc(sb->buf, cap);
  if (buf == NULL) {
    free(sb->buf);
    sb->buf = NULL;
    return 0;
  }
  sb->buf = buf;
  sb->cap = cap;
  return 1;
}

static void sb_printf(sbuf_t *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf_t *sb, const char *fmt, ...) {
  va_list ap;
  int n;

  if (sb->buf == NULL)
    return; /* an earlier allocation failed */
  va_start(ap, fmt);
  n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n >= sb->cap - sb->len) { /* cut: grow, again */
    if (!sb_reserve(sb, (size_t)n))
      return;
    va_start(ap, fmt);
    n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
    va_end(ap);
  }
  if (n < 0) {
    free(sb->buf);
    sb->buf = NULL;
    return;
  }
  sb->len += (size_t)n;
}

/* Answers with the buffer and frees it. */
static void sb_respond(conn_t *c, sbuf_t *sb, const char *content_type) {
  static const char oom[] = "out of memory\n";

  if (sb->buf == NULL) {
    conn_respond(c, 500, NULL, "text/plain", oom, sizeof(oom) - 1);
    return;
  }
  conn_respond(c, 200, NULL, content_type, sb->buf, sb->len);
  free(sb->buf);
}

/* -------------------------------------------------------------- /stats */

static void json_counters(sbuf_t *sb, const server_t *srv) {
  sb_printf(sb,
            "{\"mode\":\"%s\",\"connections\":%u,\"accepted\":%" PRIu64
            ",\"rejected\":%" PRIu64 ",\"requests\":%" PRIu64
            ",\"timeouts\":%" PRIu64 ",\"abandoned\":%" PRIu64
            ",\"jobs_queued\":%" PRIu64 ",\"jobs_in_flight\":%u"
            ",\"jobs_running\":%u,\"jobs_rejected\":%" PRIu64
            ",\"jobs_cancelled\":%" PRIu64 ",\"jobs_stopped\":%" PRIu64,
            srv->mode == MODE_INLINE ? "inline" : "hybrid", srv->nconns,
            srv->accepted, srv->rejected, srv->requests, srv->timeouts,
            srv->abandoned, srv->jobs_queued, srv->jobs_in_flight,
            http_jobs_running(srv), srv->jobs_rejected, srv->jobs_cancelled,
            srv->jobs_stopped);
}

static void json_worker_stats(sbuf_t *sb, const tandem_worker_stats_t *w) {
  sb_printf(sb,
            "{\"jobs\":%" PRIu64 ",\"steals\":%" PRIu64 ",\"injected\":%" PRIu64
            ",\"parks\":%" PRIu64 ",\"wakeups\":%" PRIu64 ",\"depth\":%" PRIu64
            "}",
            w->jobs, w->steals, w->injected, w->parks, w->wakeups, w->depth);
}

/* "pool": tandem_pool_stats(), or null in --mode inline. */
static void json_pool(sbuf_t *sb, const snapshot_t *s) {
  const tandem_stats_t *st = &s->st;
  unsigned i;

  if (!s->pool) {
    sb_printf(sb, ",\"pool\":null");
    return;
  }
  sb_printf(
      sb,
      ",\"pool\":{\"workers\":%u,\"inject_depth\":%" PRIu64
      ",\"cancelled\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"expired\":%" PRIu64
      ",\"queued\":%" PRIu64 ",\"blocking_jobs\":%" PRIu64
      ",\"blocking_threads\":%u,\"blocking_idle\":%u,\"total\":",
      st->workers, st->inject_depth, st->cancelled, st->rejected, st->expired,
      st->queued, st->blocking_jobs, st->blocking_threads, st->blocking_idle);
  json_worker_stats(sb, &st->total);
  sb_printf(sb, ",\"worker\":[");
  for (i = 0; i < listed_workers(st->workers); i++) {
    sb_printf(sb, i ? "," : "");
    json_worker_stats(sb, &st->worker[i]);
  }
  sb_printf(sb, "]}");
}

/* "key":{"ping":v,...} with the counts, or rates, of every endpoint. */
static void json_endpoints(sbuf_t *sb, const char *key, const uint64_t *n,
                           const double *rate) {
  unsigned i;

  sb_printf(sb, "\"%s\":{", key);
  for (i = 0; i < EP_COUNT; i++) {
    if (n != NULL)
      sb_printf(sb, "%s\"%s\":%" PRIu64, i ? "," : "", endpoint_names[i], n[i]);
    else
      sb_printf(sb, "%s\"%s\":%.3f", i ? "," : "", endpoint_names[i], rate[i]);
  }
  sb_printf(sb, "}");
}

/* version, uptime, responses by status, requests by endpoint, rates. */
static void json_server(sbuf_t *sb, const server_t *srv) {
  const rates_t *r = &srv->rates;
  int code, first = 1;

  sb_printf(sb, ",\"version\":\"%s\",\"uptime_s\":%.3f,\"status\":{",
            tandem_version_string(),
            (double)(uv_hrtime() - srv->started_ns) / 1e9);
  for (code = 0; code < STATUS_MAX; code++) {
    if (srv->responses[code] == 0)
      continue;
    sb_printf(sb, "%s\"%d\":%" PRIu64, first ? "" : ",", code,
              srv->responses[code]);
    first = 0;
  }
  sb_printf(sb, "},");
  json_endpoints(sb, "endpoints", srv->endpoints, NULL);
  sb_printf(sb, ",\"rates\":{\"requests_per_s\":%.3f,\"jobs_per_s\":%.3f,",
            r->requests, r->jobs);
  json_endpoints(sb, "by_endpoint", NULL, r->endpoints);
  sb_printf(sb, "}");
}

static void json_histogram(sbuf_t *sb, const char *key,
                           const tandem_histogram_t *h) {
  sb_printf(
      sb,
      "\"%s\":{\"count\":%" PRIu64 ",\"sum_ns\":%" PRIu64 ",\"max_ns\":%" PRIu64
      ",\"mean_ns\":%" PRIu64 ",\"p50_ns\":%" PRIu64 ",\"p90_ns\":%" PRIu64
      ",\"p99_ns\":%" PRIu64 ",\"p999_ns\":%" PRIu64 "}",
      key, h->count, h->sum_ns, h->max_ns, tandem_histogram_mean(h),
      tandem_histogram_quantile(h, 0.5), tandem_histogram_quantile(h, 0.9),
      tandem_histogram_quantile(h, 0.99), tandem_histogram_quantile(h, 0.999));
}

static void json_worker_time(sbuf_t *sb, const tandem_worker_metrics_t *w) {
  sb_printf(sb,
            "{\"busy_ns\":%" PRIu64 ",\"parked_ns\":%" PRIu64
            ",\"jobs\":%" PRIu64 ",\"busy\":%" PRIu64 "}",
            w->busy_ns, w->parked_ns, w->jobs, w->busy);
}

/* "metrics": tandem's time, or null when there is none. */
static void json_metrics(sbuf_t *sb, const snapshot_t *s, const rates_t *r) {
  unsigned i;

  if (!s->timed) {
    sb_printf(sb, ",\"metrics\":null");
    return;
  }
  sb_printf(
      sb,
      ",\"metrics\":{\"enabled\":true,\"workers\":%u,\"workers_busy\":%" PRIu64
      ",\"queue_depth\":%" PRIu64 ",\"worker\":[",
      s->m.workers, s->st.workers_busy, queue_depth(&s->st));
  for (i = 0; i < listed_workers(s->m.workers); i++) {
    sb_printf(sb, i ? "," : "");
    json_worker_time(sb, &s->m.worker[i]);
  }
  sb_printf(sb, "],\"busy_ratio\":%.4f,", r->busy_ratio);
  json_histogram(sb, "wait", &s->m.wait);
  sb_printf(sb, ",");
  json_histogram(sb, "run", &s->m.run);
  sb_printf(sb,
            ",\"loop\":{\"uptime_ns\":%" PRIu64 ",\"idle_ns\":%" PRIu64
            ",\"busy_ns\":%" PRIu64 ",\"busy_ratio\":%.4f,",
            s->loop.uptime_ns, s->loop.idle_ns, s->loop.busy_ns,
            r->loop_busy_ratio);
  json_histogram(sb, "lag", &s->loop.lag);
  sb_printf(sb, "}}");
}

void respond_stats(conn_t *c) {
  server_t *srv = c->srv;
  snapshot_t *s = malloc(sizeof(*s)); /* some 10 KB: off the stack */
  sbuf_t sb;

  sb_init(&sb, 8192);
  if (s == NULL) {
    free(sb.buf);
    sb.buf = NULL;
  } else {
    snapshot_take(srv, s);
    json_counters(&sb, srv);
    json_pool(&sb, s);
    json_server(&sb, srv);
    json_metrics(&sb, s, &srv->rates);
    sb_printf(&sb, "}\n");
  }
  free(s);
  sb_respond(c, &sb, "application/json");
}

/* ------------------------------------------------------------ /metrics */

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
              endpoint_names[i], srv->endpoints[i]);
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
