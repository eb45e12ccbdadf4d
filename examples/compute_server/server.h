/* SPDX-License-Identifier: MIT */
/*
 * compute_server: an HTTP/1.1 server whose sockets live on one libuv loop
 * and whose CPU work runs on a tandem pool.
 *
 *   main.c    options, start-up, signals, graceful shutdown
 *   http.c    connections: accept, read, parse (http-parser), respond,
 *             timeouts, closing
 *   routes.c  the endpoints and the jobs they run on the pool
 *   metrics.c the server's counters (by endpoint, by status) and their
 *             per-second rates
 *   report.c  a snapshot of tandem's counters and time, and the text
 *             buffer the reports are written into (report.h)
 *   stats_json.c  GET /stats: all of it as JSON
 *   prometheus.c  GET /metrics: the same in Prometheus's text format
 *   dashboard.c   GET /dashboard: the page dashboard.html, built in
 *
 * Threads.  Everything in this program runs on the loop thread except the
 * job functions in routes.c (job_run, primes_range), which run on pool
 * workers (or, for /sleep and /file, on the pool's blocking threads) and
 * touch nothing but their own job_t.  A connection has at most one job in
 * flight; while it runs, the loop thread leaves the job and the request
 * body alone, and the connection struct stays allocated (it is reference
 * counted) even if the client goes away, so the after callback always has
 * somewhere safe to land.
 *
 * Cancelling.  When the client goes away, conn_close() calls
 * tandem_cancel() on its job: a job that has not started is called back
 * with UV_ECANCELED at once; a running one sees tandem_work_cancelled()
 * turn 1 (fib, primes and sleep look now and then and give up), and is
 * called back with UV_ECANCELED too.  Either way the after callback finds
 * the connection closed and only drops the result.
 */
#ifndef COMPUTE_SERVER_H
#define COMPUTE_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <uv.h>

#include "tandem.h"

#define container_of(ptr, type, member)                                        \
  ((type *)((char *)(ptr)-offsetof(type, member)))

#define URL_MAX 1024 /* longer request targets get 414 */
/* Caps on the heavy routes; a build may lower them (the fuzz target does,
 * so that no input computes for seconds). */
#ifndef FIB_MAX
#define FIB_MAX 45 /* /fib/N: larger N gets 400 */
#endif
#ifndef PRIMES_MAX
#define PRIMES_MAX 100000000u /* /primes/N: larger N gets 400 */
#endif
#ifndef SLEEP_MAX
#define SLEEP_MAX 10000 /* /sleep/MS: longer gets 400 */
#endif
#define FILE_MAX (8u << 20) /* /file/NAME: larger files get 403 */
#define FILE_NAME_MAX 255   /* /file/NAME: longer names get 400 */

typedef enum { MODE_HYBRID, MODE_INLINE } server_mode_t;

/* What a routed request asked for, counted in server_t.endpoints; the
 * names are endpoint_name()'s (the keys of /stats and the labels of
 * /metrics). */
typedef enum {
  EP_PING,
  EP_FIB,
  EP_SHA256,
  EP_PRIMES,
  EP_SLEEP,
  EP_FILE,
  EP_STATS,
  EP_METRICS,
  EP_DASHBOARD,
  EP_OTHER, /* anything else: 404, or a target that is not a path */
  EP_COUNT
} endpoint_t;

#define STATUS_MAX 600 /* responses are counted by status below this */

/* The cumulative counters the rate timer samples each second. */
typedef struct {
  uint64_t at_ns; /* uv_hrtime() when taken */
  uint64_t requests, jobs_done, endpoints[EP_COUNT];
  /* tandem_pool_metrics(): its uptime times its workers, and the busy
   * time summed over the workers; 0 when it records no time */
  uint64_t workers_ns, workers_busy_ns;
  uint64_t loop_ns, loop_busy_ns; /* tandem_loop_metrics(), the same way */
} rate_sample_t;

/* Per second, between the last two samples (0 until there are two). */
typedef struct {
  double requests, jobs, endpoints[EP_COUNT];
  double busy_ratio;      /* of the workers' time, busy: 0..1 */
  double loop_busy_ratio; /* of the loop thread's time, busy: 0..1 */
} rates_t;

typedef struct conn_s conn_t;

typedef struct server_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_signal_t sigint;
  uv_signal_t sigterm;
  tandem_t tandem;     /* hybrid mode only */
  tandem_pool_t *pool; /* hybrid mode only */
  server_mode_t mode;
  unsigned max_conns;
  size_t max_body;
  /* Most bytes of a request head (request line and headers), and of a
   * chunked body's size line or trailers; more gets 431.  http_listen
   * sets http-parser's limit to it, which is process-wide: every server
   * in one process must use the same.  0 = 8192. */
  uint32_t max_header;
  uint64_t header_timeout_ms;
  const char *dir; /* --dir: /file/NAME reads from it; NULL = none */
  int dir_fd;      /* dir, opened (O_DIRECTORY) when dir is set */
  int stopping;
  int pool_closing; /* tandem_close() was called (hybrid mode) */
  /* Called with every response of status 400 or more that is sent (main.c
   * logs them); NULL: none. */
  void (*on_error_response)(conn_t *c, int status);
  conn_t *conns;   /* every connection not yet closed */
  unsigned nconns; /* of those, the ones counted against max_conns */
  /* counters for /stats */
  uint64_t accepted;
  uint64_t rejected; /* turned away with 503 at --max-conns */
  uint64_t requests;
  uint64_t timeouts;       /* dropped by --header-timeout-ms */
  uint64_t abandoned;      /* jobs whose connection closed before the result */
  uint64_t jobs_queued;    /* jobs handed to the pool, ever */
  unsigned jobs_in_flight; /* of those, not yet called back */
  uint64_t jobs_rejected;  /* refused by the pool (UV_EAGAIN at
                              --max-queued): answered 503 */
  uint64_t jobs_cancelled; /* called back with UV_ECANCELED */
  uint64_t jobs_stopped;   /* of those, the ones whose work had begun and
                              gave up when tandem_work_cancelled() said so */
  uint64_t jobs_done;      /* jobs whose work ran to its end (both modes):
                              the rate timer's jobs per second */
  char discard[16384];     /* reads of connections being drained land here */
  /* by status code and endpoint, for /stats and /metrics (metrics.c) */
  uint64_t responses[STATUS_MAX]; /* sent, by status code */
  uint64_t endpoints[EP_COUNT];   /* requests routed, by endpoint */
  /* metrics.c: uptime and rates (metrics_start) */
  uint64_t started_ns; /* uv_hrtime() at metrics_start() */
  uv_timer_t rate_timer;
  int rate_timer_on; /* started and not yet closed */
  rate_sample_t rate_last;
  rates_t rates;
} server_t;

typedef enum {
  JOB_FIB,
  JOB_SHA256,
  JOB_PRIMES,
  JOB_SLEEP, /* blocking: runs with TANDEM_JOB_BLOCKING */
  JOB_FILE   /* blocking too */
} job_kind_t;

/* One job.  Filled by the loop thread, then owned by the pool until the
 * after callback; only the atomics are shared while it runs (a /primes job
 * runs on several workers at once). */
typedef struct job_s {
  tandem_work_t work;
  job_kind_t kind;
  /* What the work looks at to give up early: &work on the pool, NULL in
   * --mode inline (nothing can cancel a job that runs on the loop). */
  const tandem_work_t *cancel;
  uint64_t n;       /* fib: N; primes: the bound; sleep: milliseconds */
  const char *data; /* sha256: the request body */
  size_t len;
  uint64_t result;            /* fib */
  unsigned char digest[32];   /* sha256 */
  atomic_uint_fast64_t count; /* primes: summed by every range */
  atomic_int started;         /* set by the work when it begins */
  atomic_int stopped;         /* set by the work when it gives up */
  /* file: the job opens name in dir_fd and reads it into a malloc'd
   * buffer, which the after callback answers with and frees; or sets
   * file_err (a libuv error code) */
  int dir_fd;
  char name[FILE_NAME_MAX + 1];
  char *file;
  size_t file_len;
  int file_err;
} job_t;

typedef enum {
  CONN_READING,  /* reading, parsing and answering requests */
  CONN_DRAINING, /* last answer sent; shut down, discarding input */
  CONN_CLOSED    /* handles closing; freed when refs reaches 0 */
} conn_state_t;

struct conn_s {
  uv_tcp_t tcp;
  uv_timer_t timer; /* request timeout, then linger timeout */
  uv_shutdown_t shutdown;
  server_t *srv;
  conn_t *prev, *next; /* srv->conns */
  int refs;            /* two handles + one per job in flight */
  conn_state_t state;
  int busy;          /* a job is in flight */
  int counted;       /* counts against srv->max_conns */
  int reading;       /* uv_read_start() is in effect */
  int eof;           /* the client has finished sending */
  int shut;          /* our side is shut down (FIN sent) */
  int timer_armed;   /* the request timeout is running */
  int write_blocked; /* too much unsent output: parsing waits */
  http_parser parser;
  char *in; /* bytes read and not yet parsed */
  size_t in_off, in_len, in_cap;
  /* the request being parsed, or answered */
  int req_started;
  int keep_alive;
  int http10;
  int method; /* enum http_method */
  int err;    /* status to answer when a callback fails */
  char url[URL_MAX];
  size_t url_len;
  int url_too_long; /* answered 414 once the head is parsed */
  char *body;
  size_t body_len, body_cap;
  char hname[8]; /* current header name (only Expect matters) */
  size_t hname_len;
  int in_value;
  int in_expect;
  int expect_continue;
  char expect[16];
  size_t expect_len;
  job_t job;
};

/* http.c */
int http_listen(server_t *srv, const struct sockaddr *addr);
void http_stop(server_t *srv);
void conn_respond(conn_t *c, int status, const char *headers,
                  const char *content_type, const char *body, size_t len);
void conn_job_begin(conn_t *c);
int conn_job_end(conn_t *c);
void conn_resume(conn_t *c);
unsigned http_jobs_running(const server_t *srv);

/* routes.c */
void route_request(conn_t *c);

/* metrics.c, loop thread only */
/* Counts a routed request (route_request calls it once per request). */
void metrics_count_request(server_t *srv, endpoint_t ep);
/* Counts a response as it is sent (conn_respond calls it). */
void metrics_count_response(server_t *srv, int status);
/* Starts the uptime clock and the rate timer (unref'd: it never keeps the
 * loop alive); once the pool and the loop run.  Returns 0 or a libuv
 * error. */
int metrics_start(server_t *srv);
/* Closes the rate timer, so that uv_loop_close() finds nothing open; safe
 * to call twice or without metrics_start(). */
void metrics_stop(server_t *srv);
const char *endpoint_name(endpoint_t ep);
/* GET /stats: the JSON report. */
void respond_stats(conn_t *c);
/* GET /metrics: the Prometheus text report. */
void respond_metrics(conn_t *c);

#endif /* COMPUTE_SERVER_H */
