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
 *   - GET /stats renders all of it as JSON (stats_json.c), GET /metrics in
 *     Prometheus's text format (prometheus.c), both from a snapshot and
 *     into a text buffer (report.c).
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

#include "report.h"
#include "server.h"

#define RATE_PERIOD_MS 1000

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
