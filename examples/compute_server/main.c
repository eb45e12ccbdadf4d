/* SPDX-License-Identifier: MIT */
/*
 * compute_server: sockets on the loop, compute on the pool.
 *
 *   compute_server [--host ADDR] [--port PORT] [--workers N]
 *                  [--worker-nice N] [--mode hybrid|inline] [--max-conns N]
 *                  [--max-queued N] [--max-body BYTES] [--max-header BYTES]
 *                  [--header-timeout-ms MS] [--dir DIR] [--no-metrics]
 *                  [--quiet]
 *   compute_server --help
 *
 * One thread runs a libuv loop that owns every socket; a tandem pool runs
 * the CPU-heavy requests, so a slow /fib/45 never delays a /ping, and its
 * blocking side runs /sleep and /file, so they never hold a compute
 * worker.  With --max-queued N, a job that would make more than N wait is
 * refused at once: 503 with Retry-After.  With --mode inline the loop
 * thread computes too, the way a plain event-loop server would.  SIGINT
 * or SIGTERM: stop accepting, finish the jobs that run (queued ones are
 * cancelled and get 503), close everything, exit 0.  A second signal
 * finds the default action again and ends it at once.
 *
 * /stats (JSON) and /metrics (Prometheus) report the server's counters and
 * the time tandem records: how long jobs waited and ran, how busy the
 * workers and the loop thread are (metrics.c).  --no-metrics makes a pool
 * that records no time, as a comparison of the cost.
 *
 * Stdout carries one line, "listening on HOST:PORT", for whoever started
 * the server.  The log goes to stderr: a start line (address, mode,
 * workers, metrics on or off, limits, version), one line per 4xx or 5xx
 * answer (at most LOG_ERRORS_PER_S a second; the rest are counted and
 * summed up), and a line with the totals at exit.  --quiet turns the log
 * off; failures are printed even then.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

#define LOG_ERRORS_PER_S 10 /* error lines a second, at most */

static const char usage[] =
    "usage: %s [options]\n"
    "  --host ADDR             address to listen on [127.0.0.1]\n"
    "  --port PORT             port, 0 = any free one [8080]\n"
    "  --workers N             pool threads, 0 = one per CPU [0]\n"
    "  --worker-nice N         lower the workers' priority by N so the\n"
    "                          loop thread wins the CPU when it wakes [5]\n"
    "  --mode hybrid|inline    compute on the pool, or on the loop [hybrid]\n"
    "  --max-conns N           more connections get 503 [1024]\n"
    "  --max-queued N          jobs that may wait for the pool; more get 503\n"
    "                          with Retry-After: 1; 0 = no limit [0]\n"
    "  --max-body BYTES        larger request bodies get 413 [1048576]\n"
    "  --max-header BYTES      larger request heads get 431 [8192]\n"
    "  --header-timeout-ms MS  time a client has to send a request [10000]\n"
    "  --dir DIR               serve /file/NAME from DIR [none: 404]\n"
    "  --no-metrics            the pool records no time: no histograms in\n"
    "                          /stats and /metrics [recorded]\n"
    "  --quiet                 no log on stderr (failures are still printed)\n"
    "  --help                  this text\n"
    "Endpoints: /ping, /fib/N, /sha256 (POST), /primes/N, /sleep/MS,\n"
    "/file/NAME, /stats (JSON), /metrics (Prometheus), /dashboard (a live\n"
    "page in a browser).\n"
    "SIGINT or SIGTERM: finish running jobs, close, exit 0.\n";

static int parse_uint(const char *s, unsigned long long max,
                      unsigned long long *out) {
  char *end;

  errno = 0;
  *out = strtoull(s, &end, 10);
  return s[0] >= '0' && s[0] <= '9' && *end == '\0' && errno == 0 && *out <= max
             ? 0
             : -1;
}

typedef struct {
  const char *host;
  const char *dir;
  unsigned long long port, workers, worker_nice, max_conns, max_queued,
      max_body, max_header;
  unsigned long long header_timeout_ms;
  server_mode_t mode;
  int quiet;
  int no_metrics;
} options_t;

/* An option without a value: 1 if `name` is one (then it is set). */
static int parse_flag(const char *name, options_t *o) {
  if (strcmp(name, "--quiet") == 0)
    o->quiet = 1;
  else if (strcmp(name, "--no-metrics") == 0)
    o->no_metrics = 1;
  else
    return 0;
  return 1;
}

/* 0, 1 for --help, -1 for a bad argument. */
static int parse_args(int argc, char **argv, options_t *o) {
  const char *name, *value;
  int i, r;

  for (i = 1; i < argc; i += 2) {
    name = argv[i];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
      return 1;
    if (parse_flag(name, o)) {
      i--; /* takes no value */
      continue;
    }
    value = i + 1 < argc ? argv[i + 1] : NULL;
    if (value == NULL)
      return -1;
    if (strcmp(name, "--host") == 0) {
      o->host = value;
      r = 0;
    } else if (strcmp(name, "--dir") == 0) {
      o->dir = value;
      r = 0;
    } else if (strcmp(name, "--mode") == 0) {
      r = 0;
      if (strcmp(value, "hybrid") == 0)
        o->mode = MODE_HYBRID;
      else if (strcmp(value, "inline") == 0)
        o->mode = MODE_INLINE;
      else
        r = -1;
    } else if (strcmp(name, "--port") == 0) {
      r = parse_uint(value, 65535, &o->port);
    } else if (strcmp(name, "--workers") == 0) {
      r = parse_uint(value, 1024, &o->workers);
    } else if (strcmp(name, "--worker-nice") == 0) {
      r = parse_uint(value, 19, &o->worker_nice);
    } else if (strcmp(name, "--max-conns") == 0) {
      r = parse_uint(value, 1000000, &o->max_conns);
    } else if (strcmp(name, "--max-queued") == 0) {
      r = parse_uint(value, 1u << 30, &o->max_queued);
    } else if (strcmp(name, "--max-body") == 0) {
      r = parse_uint(value, 1u << 30, &o->max_body);
    } else if (strcmp(name, "--max-header") == 0) {
      r = parse_uint(value, 1u << 20, &o->max_header);
    } else if (strcmp(name, "--header-timeout-ms") == 0) {
      r = parse_uint(value, 86400000, &o->header_timeout_ms);
    } else {
      r = -1;
    }
    if (r != 0)
      return -1;
  }
  return o->max_header > 0 && o->header_timeout_ms > 0 ? 0 : -1;
}

/* ----------------------------------------------------------------- log */

static int quiet;
static uint64_t started_ms;
static uint64_t errors_4xx, errors_5xx;
static uint64_t window_ms;       /* start of the current second */
static unsigned window_lines;    /* error lines logged in it */
static uint64_t errors_unlogged; /* over the limit, not yet said */
static uint64_t errors_unlogged_total;

static void log_line(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* "2026-01-02T03:04:05Z compute_server: ..." on stderr, unless --quiet. */
static void log_line(const char *fmt, ...) {
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  va_list ap;

  if (quiet)
    return;
  if (gmtime_r(&now, &tm) == NULL ||
      strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
    snprintf(stamp, sizeof(stamp), "-");
  fprintf(stderr, "%s compute_server: ", stamp);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* "HOST:PORT" of a socket address, or "?". */
static void addr_text(const struct sockaddr_storage *sa, char *out,
                      size_t len) {
  char host[64];
  int r, port;

  if (sa->ss_family == AF_INET6) {
    r = uv_ip6_name((const struct sockaddr_in6 *)sa, host, sizeof(host));
    port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    snprintf(out, len, "[%s]:%d", r == 0 ? host : "?", port);
  } else if (sa->ss_family == AF_INET) {
    r = uv_ip4_name((const struct sockaddr_in *)sa, host, sizeof(host));
    port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    snprintf(out, len, "%s:%d", r == 0 ? host : "?", port);
  } else {
    snprintf(out, len, "?");
  }
}

/* srv->on_error_response: one line per 4xx/5xx answer, at most
 * LOG_ERRORS_PER_S a second; the others are counted and reported by the
 * first line of a later second (and in the totals at exit). */
static void on_error_response(conn_t *c, int status) {
  struct sockaddr_storage peer;
  char from[80], url[81];
  uint64_t now = uv_now(c->srv->loop);
  int len = sizeof(peer);
  size_t i, n;

  if (status < 500)
    errors_4xx++;
  else
    errors_5xx++;
  if (quiet)
    return;
  if (now - window_ms >= 1000) {
    window_ms = now;
    window_lines = 0;
  }
  if (window_lines == LOG_ERRORS_PER_S) {
    errors_unlogged++;
    errors_unlogged_total++;
    return;
  }
  window_lines++;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) == 0)
    addr_text(&peer, from, sizeof(from));
  else
    snprintf(from, sizeof(from), "?");
  /* The request as far as it was read (none for a 503 at --max-conns):
   * the target cut at 80 bytes, control bytes as '?'. */
  n = c->url_len < sizeof(c->url) ? c->url_len : 0;
  if (n > sizeof(url) - 1)
    n = sizeof(url) - 1;
  for (i = 0; i < n; i++)
    url[i] = c->url[i] > 0x20 && c->url[i] < 0x7f ? c->url[i] : '?';
  url[n] = '\0';
  log_line("%d %s: %s %s%s from %s", status,
           http_status_str((enum http_status)status),
           n > 0 ? http_method_str((enum http_method)c->method) : "-",
           n > 0 ? url : "-", c->url_len > n ? "..." : "", from);
  if (errors_unlogged > 0) {
    log_line("(%llu more 4xx/5xx answers not logged: over %d a second)",
             (unsigned long long)errors_unlogged, LOG_ERRORS_PER_S);
    errors_unlogged = 0;
  }
}

/* "on" when the pool records time (--no-metrics or TANDEM_METRICS=off
 * switch it off; --mode inline has no pool). */
static const char *metrics_state(const server_t *srv) {
  tandem_metrics_t m;

  return srv->pool != NULL && tandem_pool_metrics(srv->pool, &m) == 0 &&
                 m.enabled
             ? "on"
             : "off";
}

static void log_start(const server_t *srv, const options_t *o) {
  struct sockaddr_storage name;
  int len = sizeof(name);
  char where[96], workers[48], queue[32];

  if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&name, &len) == 0)
    addr_text(&name, where, sizeof(where));
  else
    snprintf(where, sizeof(where), "%s:%llu", o->host, o->port);
  if (srv->mode == MODE_HYBRID)
    snprintf(workers, sizeof(workers), "%u worker%s at nice +%llu",
             tandem_pool_workers(srv->pool),
             tandem_pool_workers(srv->pool) == 1 ? "" : "s", o->worker_nice);
  else
    snprintf(workers, sizeof(workers), "no pool");
  if (o->max_queued > 0 && srv->mode == MODE_HYBRID)
    snprintf(queue, sizeof(queue), "%llu", o->max_queued);
  else
    snprintf(queue, sizeof(queue), "no limit");
  log_line("tandem %s, listening on %s, mode %s, %s, metrics %s; limits: "
           "%llu connections, body %llu B, head %llu B, header timeout %llu "
           "ms, waiting jobs %s; files from %s",
           tandem_version_string(), where,
           srv->mode == MODE_HYBRID ? "hybrid" : "inline", workers,
           metrics_state(srv), o->max_conns, o->max_body, o->max_header,
           o->header_timeout_ms, queue,
           o->dir != NULL ? o->dir : "nowhere (no --dir)");
}

static void log_totals(const server_t *srv) {
  double secs = (double)(uv_now(srv->loop) - started_ms) / 1e3;

  log_line(
      "stopped after %.1f s: %llu requests, %llu answered 4xx and %llu "
      "5xx; %llu connections (%llu turned away at --max-conns), %llu "
      "timed out; %llu jobs on the pool (%llu abandoned by their "
      "client, %llu cancelled), %llu refused at --max-queued",
      secs, (unsigned long long)srv->requests, (unsigned long long)errors_4xx,
      (unsigned long long)errors_5xx, (unsigned long long)srv->accepted,
      (unsigned long long)srv->rejected, (unsigned long long)srv->timeouts,
      (unsigned long long)srv->jobs_queued, (unsigned long long)srv->abandoned,
      (unsigned long long)srv->jobs_cancelled,
      (unsigned long long)srv->jobs_rejected);
  if (errors_unlogged_total > 0)
    log_line("%llu of the 4xx/5xx answers were not logged (over %d a "
             "second)",
             (unsigned long long)errors_unlogged_total, LOG_ERRORS_PER_S);
}

/* ------------------------------------------------------------ shutdown */

static void on_signal(uv_signal_t *handle, int signum) {
  server_t *srv = handle->data;

  if (srv->stopping)
    return;
  if (signum != 0)
    log_line("%s: stopping (%u jobs running or queued)",
             signum == SIGINT ? "SIGINT" : "SIGTERM", srv->jobs_in_flight);
  srv->stopping = 1;
  uv_close((uv_handle_t *)&srv->sigint, NULL);
  uv_close((uv_handle_t *)&srv->sigterm, NULL);
  metrics_stop(srv);
  /* Queued jobs are cancelled (their answer is 503), running ones finish;
   * once the last after callback has run, the tandem handle closes. */
  http_stop(srv);
  /* uv_run() returns in main() once every connection has closed. */
}

int main(int argc, char **argv) {
  options_t opt = {.host = "127.0.0.1",
                   .port = 8080,
                   .worker_nice = 5,
                   .max_conns = 1024,
                   .max_body = 1 << 20,
                   .max_header = 8192,
                   .header_timeout_ms = 10000,
                   .mode = MODE_HYBRID,
                   .quiet = 0};
  tandem_options_t topt;
  struct sockaddr_storage addr;
  static server_t srv;
  uv_loop_t loop;
  int r, rc = 0;

  r = parse_args(argc, argv, &opt);
  if (r != 0) {
    fprintf(r > 0 ? stdout : stderr, usage, argv[0]);
    return r > 0 ? 0 : 2;
  }
  quiet = opt.quiet;
  if (uv_ip4_addr(opt.host, (int)opt.port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(opt.host, (int)opt.port, (struct sockaddr_in6 *)&addr) != 0) {
    fprintf(stderr, "bad address: %s\n", opt.host);
    return 2;
  }
  if (opt.dir != NULL) {
    /* Opened once: a job opens files relative to it (openat), so the
     * directory serving stays the same even if DIR is renamed. */
    srv.dir_fd = open(opt.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (srv.dir_fd < 0) {
      fprintf(stderr, "--dir %s: %s\n", opt.dir, strerror(errno));
      return 2;
    }
    srv.dir = opt.dir;
  }
  /* Writing to a socket the client has closed must give EPIPE, not kill. */
  signal(SIGPIPE, SIG_IGN);

  r = uv_loop_init(&loop);
  if (r != 0) {
    fprintf(stderr, "uv_loop_init: %s\n", uv_strerror(r));
    return 1;
  }
  srv.loop = &loop;
  srv.on_error_response = on_error_response;
  srv.mode = opt.mode;
  srv.max_conns = (unsigned)opt.max_conns;
  srv.max_body = (size_t)opt.max_body;
  srv.max_header = (uint32_t)opt.max_header;
  srv.header_timeout_ms = opt.header_timeout_ms;

  if (srv.mode == MODE_HYBRID) {
    memset(&topt, 0, sizeof(topt));
    topt.workers = (unsigned)opt.workers;
    /* On a machine with few cores the workers and the loop share them:
     * a lower priority for the workers makes a waking loop thread (a
     * /ping just arrived) preempt a busy worker instead of waiting. */
    topt.worker_nice = (int)opt.worker_nice;
    topt.max_queued = (unsigned)opt.max_queued;
    topt.metrics = opt.no_metrics ? -1 : 0; /* 0: on, unless TANDEM_METRICS */
    r = tandem_pool_new(&srv.pool, &topt);
    if (r == 0)
      r = tandem_init(&loop, &srv.tandem, srv.pool);
    if (r != 0) {
      fprintf(stderr, "tandem: %s\n", uv_strerror(r));
      return 1;
    }
  }

  /* Before the port is printed: whoever reads it may signal us at once. */
  srv.sigint.data = &srv;
  srv.sigterm.data = &srv;
  r = uv_signal_init(&loop, &srv.sigint);
  if (r == 0)
    r = uv_signal_init(&loop, &srv.sigterm);
  if (r == 0)
    r = uv_signal_start(&srv.sigint, on_signal, SIGINT);
  if (r == 0)
    r = uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
  if (r != 0) { /* nothing runs yet: give up at once */
    fprintf(stderr, "signals: %s\n", uv_strerror(r));
    return 1;
  }
  r = metrics_start(&srv);
  if (r != 0) {
    fprintf(stderr, "metrics: %s\n", uv_strerror(r));
    return 1;
  }

  started_ms = uv_now(&loop);
  r = http_listen(&srv, (struct sockaddr *)&addr);
  if (r != 0) {
    fprintf(stderr, "listen on %s:%llu: %s\n", opt.host, opt.port,
            uv_strerror(r));
    rc = 1;
    on_signal(&srv.sigterm, 0); /* the same clean way out, unlogged */
  } else {
    log_start(&srv, &opt);
  }

  uv_run(&loop, UV_RUN_DEFAULT);
  if (rc == 0)
    log_totals(&srv);

  /* Everything is closed: tandem_close's handles too, so the pool is free
   * to go, and the loop must close cleanly or something leaked. */
  if (srv.pool != NULL && (r = tandem_pool_free(srv.pool)) != 0) {
    fprintf(stderr, "tandem_pool_free: %s\n", uv_strerror(r));
    rc = 1;
  }
  r = uv_loop_close(&loop);
  if (r != 0) {
    fprintf(stderr, "uv_loop_close: %s\n", uv_strerror(r));
    rc = 1;
  }
  if (srv.dir != NULL)
    close(srv.dir_fd);
  return rc;
}
