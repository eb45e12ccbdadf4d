/* SPDX-License-Identifier: MIT */
/*
 * GET /stats: the server's counters, tandem_pool_stats() and tandem's time
 * as one JSON object (respond_stats; examples/README.md lists its keys).
 * Loop thread only.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "server.h"

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
      sb_printf(sb, "%s\"%s\":%" PRIu64, i ? "," : "",
                endpoint_name((endpoint_t)i), n[i]);
    else
      sb_printf(sb, "%s\"%s\":%.3f", i ? "," : "", endpoint_name((endpoint_t)i),
                rate[i]);
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
