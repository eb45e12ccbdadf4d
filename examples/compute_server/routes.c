/* SPDX-License-Identifier: MIT */
/*
 * The endpoints.  route_request() runs on the loop thread for each complete
 * request; it answers cheap ones at once and hands CPU work to the pool:
 *
 *   GET  /ping       "pong", from the loop thread
 *   GET  /fib/N      naive recursive Fibonacci, N <= FIB_MAX: one job
 *   POST /sha256     hex SHA-256 of the body (nettle): one job
 *   GET  /primes/N   primes below N, N <= PRIMES_MAX: split over the pool
 *                    with tandem_parallel_for_async
 *   GET  /stats      server counters and tandem_pool_stats() as JSON
 *
 * In --mode inline the same job functions run right on the loop thread:
 * that is the plain single-threaded event loop, for comparison.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/sha2.h>

#include "server.h"

#ifndef PRIMES_GRAIN /* the fuzz build lowers these with the caps */
#define PRIMES_GRAIN 65536 /* numbers per parallel_for piece, at least */
#endif
#define SIEVE_CHUNK 32768 /* numbers sieved at a time (bytes of stack) */
#ifndef ABANDON_CHECK_N
#define ABANDON_CHECK_N 25 /* fib looks for a cancelled job at n >= this */
#endif

/* ------------------------------------------------------ work (any thread) */

static uint64_t fib(unsigned n, atomic_int *abandoned) {
  if (n < 2)
    return n;
  /* A job cannot be cancelled once it runs, so it looks now and then (each
   * look covers about 10^5 calls) whether its result is still wanted. */
  if (n >= ABANDON_CHECK_N &&
      atomic_load_explicit(abandoned, memory_order_relaxed))
    return 0;
  return fib(n - 1, abandoned) + fib(n - 2, abandoned);
}

/* Counts the primes in [lo, hi) with a segmented sieve: crossing out the
 * multiples of every d up to sqrt(hi) (2 and the odd d: composites among
 * them cost a little time, not correctness). */
static uint64_t count_primes(uint64_t lo, uint64_t hi) {
  unsigned char composite[SIEVE_CHUNK];
  uint64_t count = 0, a, b, d, m, i;

  for (a = lo; a < hi; a = b) {
    b = hi - a > SIEVE_CHUNK ? a + SIEVE_CHUNK : hi;
    memset(composite, 0, (size_t)(b - a));
    for (d = 2; d * d < b; d += d == 2 ? 1 : 2) {
      m = (a + d - 1) / d * d;
      if (m < d * d)
        m = d * d;
      for (; m < b; m += d)
        composite[m - a] = 1;
    }
    for (i = a < 2 ? 2 : a; i < b; i++)
      count += !composite[i - a];
  }
  return count;
}

/* tandem_range_cb: one piece of /primes/N, on any worker. */
static void primes_range(size_t lo, size_t hi, void *ctx) {
  job_t *job = ctx;

  if (atomic_load_explicit(&job->abandoned, memory_order_relaxed))
    return;
  atomic_fetch_add_explicit(&job->count, count_primes(lo, hi),
                            memory_order_relaxed);
}

/* The whole computation of a job (tandem_work_cb for fib and sha256). */
static void job_run(job_t *job) {
  struct sha256_ctx sha;

  switch (job->kind) {
  case JOB_FIB:
    job->result = fib((unsigned)job->n, &job->abandoned);
    break;
  case JOB_SHA256:
    sha256_init(&sha);
    sha256_update(&sha, job->len, (const uint8_t *)job->data);
    sha256_digest(&sha, SHA256_DIGEST_SIZE, job->digest);
    break;
  case JOB_PRIMES:
    primes_range(0, (size_t)job->n, job);
    break;
  }
}

static void on_job_work(tandem_work_t *req) {
  job_run(container_of(req, job_t, work));
}

/* ----------------------------------------------------- answers (loop) */

static void respond_text(conn_t *c, int status, const char *text) {
  conn_respond(c, status, NULL, "text/plain", text, strlen(text));
}

static void job_answer(conn_t *c, int status) {
  static const char hex[] = "0123456789abcdef";
  job_t *job = &c->job;
  char out[80];
  int i;

  if (status == UV_ECANCELED) { /* the server is shutting down */
    respond_text(c, 503, "shutting down\n");
    return;
  }
  switch (job->kind) {
  case JOB_FIB:
    snprintf(out, sizeof(out), "%" PRIu64 "\n", job->result);
    break;
  case JOB_SHA256:
    for (i = 0; i < SHA256_DIGEST_SIZE; i++) {
      out[2 * i] = hex[job->digest[i] >> 4];
      out[2 * i + 1] = hex[job->digest[i] & 15];
    }
    strcpy(out + 2 * SHA256_DIGEST_SIZE, "\n");
    break;
  case JOB_PRIMES:
    snprintf(out, sizeof(out), "%" PRIu64 "\n",
             (uint64_t)atomic_load(&job->count));
    break;
  }
  respond_text(c, 200, out);
}

/* tandem_after_work_cb, on the loop thread. */
static void on_job_done(tandem_work_t *req, int status) {
  conn_t *c = container_of(req, conn_t, job.work);

  if (!conn_job_end(c))
    return; /* the client left: drop the result (c may be freed) */
  job_answer(c, status);
  conn_resume(c);
}

static void job_start(conn_t *c, job_kind_t kind, uint64_t n) {
  server_t *srv = c->srv;
  job_t *job = &c->job;
  int r;

  job->kind = kind;
  job->n = n;
  job->data = c->body != NULL ? c->body : ""; /* nettle wants a pointer */
  job->len = c->body_len;
  job->result = 0;
  atomic_store(&job->count, 0);
  atomic_store(&job->abandoned, 0);

  if (srv->mode == MODE_INLINE) {
    job_run(job); /* the loop thread stops serving anyone else meanwhile */
    job_answer(c, 0);
    return;
  }
  if (kind == JOB_PRIMES)
    r = tandem_parallel_for_async(&srv->tandem, &job->work, 0, (size_t)n,
                                  PRIMES_GRAIN, primes_range, job, on_job_done);
  else
    r = tandem_queue_work(&srv->tandem, &job->work, on_job_work, on_job_done);
  if (r != 0) {
    respond_text(c, 503, "cannot queue work\n");
    return;
  }
  conn_job_begin(c);
}

/* ------------------------------------------------------------- /stats */

typedef struct {
  char *buf;
  size_t len, cap;
} sbuf_t;

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
  if (n >= 0 && (size_t)n < sb->cap - sb->len) {
    sb->len += (size_t)n;
    return;
  }
  free(sb->buf);
  sb->buf = NULL;
}

static void sb_worker(sbuf_t *sb, const tandem_worker_stats_t *w) {
  sb_printf(sb,
            "{\"jobs\":%" PRIu64 ",\"steals\":%" PRIu64 ",\"injected\":%" PRIu64
            ",\"parks\":%" PRIu64 ",\"wakeups\":%" PRIu64 ",\"depth\":%" PRIu64
            "}",
            w->jobs, w->steals, w->injected, w->parks, w->wakeups, w->depth);
}

static void respond_stats(conn_t *c) {
  server_t *srv = c->srv;
  tandem_stats_t st;
  sbuf_t sb;
  unsigned i, n;

  sb.cap = 1024 + 160 * TANDEM_STATS_MAX_WORKERS;
  sb.len = 0;
  sb.buf = malloc(sb.cap);
  sb_printf(&sb,
            "{\"mode\":\"%s\",\"connections\":%u,\"accepted\":%" PRIu64
            ",\"rejected\":%" PRIu64 ",\"requests\":%" PRIu64
            ",\"timeouts\":%" PRIu64 ",\"abandoned\":%" PRIu64
            ",\"jobs_queued\":%" PRIu64 ",\"jobs_in_flight\":%u"
            ",\"pool\":",
            srv->mode == MODE_INLINE ? "inline" : "hybrid", srv->nconns,
            srv->accepted, srv->rejected, srv->requests, srv->timeouts,
            srv->abandoned, srv->jobs_queued, srv->jobs_in_flight);
  if (srv->pool == NULL || tandem_pool_stats(srv->pool, &st) != 0) {
    sb_printf(&sb, "null}\n");
  } else {
    sb_printf(&sb,
              "{\"workers\":%u,\"inject_depth\":%" PRIu64
              ",\"cancelled\":%" PRIu64 ",\"total\":",
              st.workers, st.inject_depth, st.cancelled);
    sb_worker(&sb, &st.total);
    sb_printf(&sb, ",\"worker\":[");
    n = st.workers < TANDEM_STATS_MAX_WORKERS ? st.workers
                                              : TANDEM_STATS_MAX_WORKERS;
    for (i = 0; i < n; i++) {
      sb_printf(&sb, i ? "," : "");
      sb_worker(&sb, &st.worker[i]);
    }
    sb_printf(&sb, "]}}\n");
  }
  if (sb.buf == NULL) {
    respond_text(c, 500, "out of memory\n");
    return;
  }
  conn_respond(c, 200, NULL, "application/json", sb.buf, sb.len);
  free(sb.buf);
}

/* ------------------------------------------------------------ routing */

/* Parses the decimal number that ends a path; -1 if it is not one or is
 * larger than max. */
static int64_t parse_bound(const char *s, size_t len, uint64_t max) {
  uint64_t v = 0;
  size_t i;

  if (len == 0 || len > 19)
    return -1;
  for (i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  return v <= max ? (int64_t)v : -1;
}

static void respond_usage(conn_t *c, const char *route, uint64_t max) {
  char text[64];

  snprintf(text, sizeof(text), "usage: /%s/N with 0 <= N <= %" PRIu64 "\n",
           route, max);
  respond_text(c, 400, text);
}

static int path_is(const char *path, size_t len, const char *name) {
  return strlen(name) == len && memcmp(path, name, len) == 0;
}

static int path_has_prefix(const char *path, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(path, prefix, n) == 0;
}

static int method_is(conn_t *c, int method) {
  if (c->method == method || (method == HTTP_GET && c->method == HTTP_HEAD))
    return 1;
  conn_respond(c, 405,
               method == HTTP_GET ? "Allow: GET, HEAD\r\n" : "Allow: POST\r\n",
               "text/plain", "method not allowed\n", 19);
  return 0;
}

void route_request(conn_t *c) {
  struct http_parser_url u;
  const char *path;
  size_t len;
  int64_t n;

  http_parser_url_init(&u);
  if (http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 ||
      !(u.field_set & (1 << UF_PATH))) {
    respond_text(c, 400, "bad request target\n");
    return;
  }
  path = c->url + u.field_data[UF_PATH].off;
  len = u.field_data[UF_PATH].len;

  if (path_is(path, len, "/ping")) {
    if (method_is(c, HTTP_GET))
      respond_text(c, 200, "pong\n");
  } else if (path_is(path, len, "/stats")) {
    if (method_is(c, HTTP_GET))
      respond_stats(c);
  } else if (path_has_prefix(path, len, "/fib/")) {
    if (!method_is(c, HTTP_GET))
      return;
    n = parse_bound(path + 5, len - 5, FIB_MAX);
    if (n < 0)
      respond_usage(c, "fib", FIB_MAX);
    else
      job_start(c, JOB_FIB, (uint64_t)n);
  } else if (path_is(path, len, "/sha256")) {
    if (method_is(c, HTTP_POST))
      job_start(c, JOB_SHA256, 0);
  } else if (path_has_prefix(path, len, "/primes/")) {
    if (!method_is(c, HTTP_GET))
      return;
    n = parse_bound(path + 8, len - 8, PRIMES_MAX);
    if (n < 0)
      respond_usage(c, "primes", PRIMES_MAX);
    else
      job_start(c, JOB_PRIMES, (uint64_t)n);
  } else {
    respond_text(c, 404, "not found\n");
  }
}
