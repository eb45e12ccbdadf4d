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
 *   GET  /sleep/MS   sleeps MS <= SLEEP_MAX milliseconds: a blocking job
 *                    (TANDEM_JOB_BLOCKING), on the pool's blocking threads,
 *                    so it never holds a compute worker
 *   GET  /file/NAME  the file NAME of --dir, read by a blocking job
 *   GET  /stats      JSON: the server's counters (requests by endpoint,
 *                    responses by status, rates over the last second),
 *                    tandem_pool_stats(), and tandem's time (wait, run and
 *                    loop lag histograms, busy workers; null with
 *                    --no-metrics or in --mode inline): metrics.c
 *   GET  /metrics    the same in Prometheus text format: metrics.c
 *   GET  /dashboard  a live page drawing /stats each second: dashboard.c
 *
 * Each routed request is counted by endpoint (endpoint_of), each response
 * by status (conn_respond).
 *
 * A job the pool refuses because --max-queued jobs already wait
 * (UV_EAGAIN) is answered 503 with "Retry-After: 1".  In --mode inline the
 * same job functions run right on the loop thread: that is the plain
 * single-threaded event loop, for comparison.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/sha2.h>

#include "dashboard.h"
#include "server.h"

#ifndef PRIMES_GRAIN /* the fuzz build lowers these with the caps */
#define PRIMES_GRAIN 65536 /* numbers per parallel_for piece, at least */
#endif
#define SIEVE_CHUNK 32768 /* numbers sieved at a time (bytes of stack) */
#ifndef ABANDON_CHECK_N
#define ABANDON_CHECK_N 25 /* fib looks for a cancelled job at n >= this */
#endif
#define SLEEP_SLICE_MS 10 /* /sleep looks for a cancel this often */

/* ------------------------------------------------------ work (any thread) */

/* Whether the job should give up: its client went away (conn_close called
 * tandem_cancel) or a shutdown cancelled it.  Once it says so, the after
 * callback gets UV_ECANCELED whatever the work returns, so a partial
 * result is never answered; `stopped` tells the counters the work did
 * give up.  A call and an atomic load: callers space their looks out. */
static int job_should_stop(job_t *job) {
  if (job->cancel == NULL || !tandem_work_cancelled(job->cancel))
    return 0;
  atomic_store_explicit(&job->stopped, 1, memory_order_relaxed);
  return 1;
}

static uint64_t fib(unsigned n, job_t *job) {
  if (n < 2)
    return n;
  /* Each look covers about 10^5 calls: too few to cost, often enough that
   * a cancelled /fib/45 stops within a millisecond. */
  if (n >= ABANDON_CHECK_N && job_should_stop(job))
    return 0;
  return fib(n - 1, job) + fib(n - 2, job);
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

/* tandem_range_cb: one piece of /primes/N, on any worker.  A piece is at
 * most PRIMES_GRAIN numbers, so looking once a piece is often enough. */
static void primes_range(size_t lo, size_t hi, void *ctx) {
  job_t *job = ctx;

  atomic_store_explicit(&job->started, 1, memory_order_relaxed);
  if (job_should_stop(job))
    return;
  atomic_fetch_add_explicit(&job->count, count_primes(lo, hi),
                            memory_order_relaxed);
}

/* /sleep/MS: a blocking job, as a file read or a DNS lookup would be.  It
 * sleeps in slices so that a cancel ends it within SLEEP_SLICE_MS. */
static void sleep_run(job_t *job) {
  uint64_t slept, slice;

  for (slept = 0; slept < job->n; slept += slice) {
    if (job_should_stop(job))
      return;
    slice = job->n - slept < SLEEP_SLICE_MS ? job->n - slept : SLEEP_SLICE_MS;
    uv_sleep((unsigned)slice);
  }
}

/* Reads up to `size` bytes of fd into job->file (malloc'd), or sets
 * job->file_err.  A file that grows meanwhile is cut at `size`. */
static void file_read(job_t *job, int fd, size_t size) {
  size_t got = 0;
  ssize_t n;

  job->file = malloc(size + 1); /* + 1: never malloc(0) */
  if (job->file == NULL) {
    job->file_err = UV_ENOMEM;
    return;
  }
  while (got < size) {
    n = read(fd, job->file + got, size - got);
    if (n > 0) {
      got += (size_t)n;
    } else if (n == 0) {
      break; /* it shrank meanwhile */
    } else if (errno != EINTR) {
      job->file_err = uv_translate_sys_error(errno);
      free(job->file);
      job->file = NULL;
      return;
    }
  }
  job->file_len = got;
}

/* /file/NAME: the whole file into job->file, or an error in file_err. */
static void file_run(job_t *job) {
  struct stat st;
  int fd;

  job->file = NULL;
  job->file_len = 0;
  job->file_err = 0;
  fd = openat(job->dir_fd, job->name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    job->file_err = uv_translate_sys_error(errno);
    return;
  }
  if (fstat(fd, &st) != 0)
    job->file_err = uv_translate_sys_error(errno);
  else if (!S_ISREG(st.st_mode))
    job->file_err = UV_ENOENT; /* a directory, a fifo: not a file to serve */
  else if ((uint64_t)st.st_size > FILE_MAX)
    job->file_err = UV_EFBIG;
  else
    file_read(job, fd, (size_t)st.st_size);
  close(fd);
}

/* The whole computation of a job (tandem_work_cb for all but primes). */
static void job_run(job_t *job) {
  struct sha256_ctx sha;

  switch (job->kind) {
  case JOB_FIB:
    job->result = fib((unsigned)job->n, job);
    break;
  case JOB_SHA256:
    sha256_init(&sha);
    sha256_update(&sha, job->len, (const uint8_t *)job->data);
    sha256_digest(&sha, SHA256_DIGEST_SIZE, job->digest);
    break;
  case JOB_PRIMES:
    primes_range(0, (size_t)job->n, job);
    break;
  case JOB_SLEEP:
    sleep_run(job);
    break;
  case JOB_FILE:
    file_run(job);
    break;
  }
}

static void on_job_work(tandem_work_t *req) {
  job_t *job = container_of(req, job_t, work);

  atomic_store_explicit(&job->started, 1, memory_order_relaxed);
  job_run(job);
}

/* ----------------------------------------------------- answers (loop) */

static void respond_text(conn_t *c, int status, const char *text) {
  conn_respond(c, status, NULL, "text/plain", text, strlen(text));
}

/* /file/NAME's answer. */
static void file_answer(conn_t *c) {
  job_t *job = &c->job;
  char out[80];

  switch (job->file_err) {
  case 0:
    conn_respond(c, 200, NULL, "application/octet-stream", job->file,
                 job->file_len);
    return;
  case UV_ENOENT:
  case UV_ENOTDIR:
  case UV_ENAMETOOLONG:
  case UV_ELOOP:
    respond_text(c, 404, "no such file\n");
    return;
  case UV_EACCES:
  case UV_EPERM:
    respond_text(c, 403, "permission denied\n");
    return;
  case UV_EFBIG:
    snprintf(out, sizeof(out), "larger than %u bytes\n", FILE_MAX);
    respond_text(c, 403, out);
    return;
  default:
    snprintf(out, sizeof(out), "cannot read it: %s\n",
             uv_strerror(job->file_err));
    respond_text(c, 500, out);
    return;
  }
}

static void job_answer(conn_t *c, int status) {
  static const char hex[] = "0123456789abcdef";
  job_t *job = &c->job;
  char out[80];
  int i;

  if (status == UV_ECANCELED) {
    /* The client is still here, so the shutdown cancelled it. */
    respond_text(c, 503, "shutting down\n");
    return;
  }
  if (status != 0) { /* no deadline is set: nothing else is expected */
    snprintf(out, sizeof(out), "job failed: %s\n", uv_err_name(status));
    respond_text(c, 500, out);
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
  case JOB_SLEEP:
    snprintf(out, sizeof(out), "slept %" PRIu64 "\n", job->n);
    break;
  case JOB_FILE:
    file_answer(c);
    return;
  }
  respond_text(c, 200, out);
}

/* tandem_after_work_cb, on the loop thread.  The status drives it: 0, the
 * result; UV_ECANCELED, none (the job never ran, or gave up). */
static void on_job_done(tandem_work_t *req, int status) {
  conn_t *c = container_of(req, conn_t, job.work);
  job_t *job = &c->job;
  server_t *srv = c->srv;
  char *file = job->file; /* freed here whatever happens: c may go */
  int stopped = atomic_load_explicit(&job->stopped, memory_order_relaxed);

  /* A job that gave up has no result, whatever the status says. */
  if (stopped)
    status = UV_ECANCELED;
  srv->jobs_done += status == 0;
  if (status == UV_ECANCELED) {
    srv->jobs_cancelled++;
    srv->jobs_stopped += (uint64_t)stopped;
  }
  if (conn_job_end(c)) {
    job_answer(c, status);
    conn_resume(c);
  } /* else the client left: drop the result (c may be freed) */
  free(file);
}

static void job_start(conn_t *c, job_kind_t kind, uint64_t n) {
  static const char busy[] = "busy: too many jobs waiting, try again\n";
  server_t *srv = c->srv;
  job_t *job = &c->job;
  tandem_job_opts_t opts;
  int r;

  job->kind = kind;
  job->cancel = NULL;
  job->n = n;
  job->data = c->body != NULL ? c->body : ""; /* nettle wants a pointer */
  job->len = c->body_len;
  job->result = 0;
  atomic_store(&job->count, 0);
  atomic_store(&job->started, 0);
  atomic_store(&job->stopped, 0);
  job->dir_fd = srv->dir_fd;
  job->file = NULL;
  job->file_len = 0;
  job->file_err = 0;

  if (srv->mode == MODE_INLINE) {
    job_run(job); /* the loop thread stops serving anyone else meanwhile */
    srv->jobs_done++;
    job_answer(c, 0);
    free(job->file);
    job->file = NULL;
    return;
  }
  if (srv->stopping) { /* the pool is closing or closed */
    respond_text(c, 503, "shutting down\n");
    return;
  }
  job->cancel = &job->work;
  memset(&opts, 0, sizeof(opts));
  if (kind == JOB_SLEEP || kind == JOB_FILE)
    opts.flags = TANDEM_JOB_BLOCKING; /* off the compute workers */
  if (kind == JOB_PRIMES)
    r = tandem_parallel_for_async(&srv->tandem, &job->work, 0, (size_t)n,
                                  PRIMES_GRAIN, primes_range, job, on_job_done);
  else
    r = tandem_queue_work_ex(&srv->tandem, &job->work, on_job_work, on_job_done,
                             &opts);
  if (r == UV_EAGAIN) { /* --max-queued jobs wait already */
    srv->jobs_rejected++;
    conn_respond(c, 503, "Retry-After: 1\r\n", "text/plain", busy,
                 sizeof(busy) - 1);
    return;
  }
  if (r != 0) {
    respond_text(c, 503, "cannot queue work\n");
    return;
  }
  conn_job_begin(c);
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

/* /file/NAME: NAME is a file right in --dir, taken as sent (no
 * percent-decoding): not empty, no '/', not starting with '.' (neither
 * "..", nor hidden files), printable ASCII, at most FILE_NAME_MAX bytes. */
static int file_name_ok(const char *name, size_t len) {
  size_t i;

  if (len == 0 || len > FILE_NAME_MAX || name[0] == '.')
    return 0;
  for (i = 0; i < len; i++)
    if (name[i] == '/' || (unsigned char)name[i] <= 0x20 ||
        (unsigned char)name[i] >= 0x7f)
      return 0;
  return 1;
}

static void route_file(conn_t *c, const char *name, size_t len) {
  if (c->srv->dir == NULL) {
    respond_text(c, 404, "not found (no --dir)\n");
    return;
  }
  if (!file_name_ok(name, len)) {
    respond_text(c, 400,
                 "usage: /file/NAME, NAME a file of --dir "
                 "(no '/', not starting with '.')\n");
    return;
  }
  memcpy(c->job.name, name, len);
  c->job.name[len] = '\0';
  job_start(c, JOB_FILE, 0);
}

static int path_is(const char *path, size_t len, const char *name) {
  return strlen(name) == len && memcmp(path, name, len) == 0;
}

static int path_has_prefix(const char *path, size_t len, const char *prefix) {
  size_t n = strlen(prefix);
  return len >= n && memcmp(path, prefix, n) == 0;
}

/* The endpoint a path asks for, to count it; "other" when none is. */
static endpoint_t endpoint_of(const char *path, size_t len) {
  static const struct {
    const char *path;
    int prefix; /* path is a prefix: "/fib/" takes "/fib/N" */
    endpoint_t ep;
  } table[] = {
      {"/ping", 0, EP_PING},           {"/fib/", 1, EP_FIB},
      {"/sha256", 0, EP_SHA256},       {"/primes/", 1, EP_PRIMES},
      {"/sleep/", 1, EP_SLEEP},        {"/file/", 1, EP_FILE},
      {"/stats", 0, EP_STATS},         {"/metrics", 0, EP_METRICS},
      {"/dashboard", 0, EP_DASHBOARD},
  };
  size_t i;

  for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
    if (table[i].prefix ? path_has_prefix(path, len, table[i].path)
                        : path_is(path, len, table[i].path))
      return table[i].ep;
  return EP_OTHER;
}

static int method_is(conn_t *c, int method) {
  if (c->method == method || (method == HTTP_GET && c->method == HTTP_HEAD))
    return 1;
  conn_respond(c, 405,
               method == HTTP_GET ? "Allow: GET, HEAD\r\n" : "Allow: POST\r\n",
               "text/plain", "method not allowed\n", 19);
  return 0;
}

/* The path of the request target, and the request counted by endpoint;
 * -1 (answered 400) when the target has no path. */
static int request_path(conn_t *c, const char **path, size_t *len) {
  struct http_parser_url u;

  http_parser_url_init(&u);
  if (http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 ||
      !(u.field_set & (1 << UF_PATH))) {
    metrics_count_request(c->srv, EP_OTHER);
    respond_text(c, 400, "bad request target\n");
    return -1;
  }
  *path = c->url + u.field_data[UF_PATH].off;
  *len = u.field_data[UF_PATH].len;
  metrics_count_request(c->srv, endpoint_of(*path, *len));
  return 0;
}

/* The pages that watch the server: /stats, /metrics, /dashboard.  Returns
 * 0 if `path` is none of them. */
static int route_observing(conn_t *c, const char *path, size_t len) {
  void (*respond)(conn_t *c);

  if (path_is(path, len, "/stats"))
    respond = respond_stats;
  else if (path_is(path, len, "/metrics"))
    respond = respond_metrics;
  else if (path_is(path, len, "/dashboard"))
    respond = respond_dashboard;
  else
    return 0;
  if (method_is(c, HTTP_GET))
    respond(c);
  return 1;
}

void route_request(conn_t *c) {
  const char *path;
  size_t len;
  int64_t n;

  if (request_path(c, &path, &len) != 0)
    return;
  if (path_is(path, len, "/ping")) {
    if (method_is(c, HTTP_GET))
      respond_text(c, 200, "pong\n");
  } else if (route_observing(c, path, len)) {
    /* answered: /stats, /metrics or /dashboard */
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
  } else if (path_has_prefix(path, len, "/sleep/")) {
    if (!method_is(c, HTTP_GET))
      return;
    n = parse_bound(path + 7, len - 7, SLEEP_MAX);
    if (n < 0)
      respond_usage(c, "sleep", SLEEP_MAX);
    else
      job_start(c, JOB_SLEEP, (uint64_t)n);
  } else if (path_has_prefix(path, len, "/file/")) {
    if (method_is(c, HTTP_GET))
      route_file(c, path + 6, len - 6);
  } else {
    respond_text(c, 404, "not found\n");
  }
}
