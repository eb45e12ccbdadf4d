/*
 * compute_server: sockets on the loop, compute on the pool.
 *
 *   compute_server [--host ADDR] [--port PORT] [--workers N]
 *                  [--worker-nice N] [--mode hybrid|inline] [--max-conns N] [--max-body BYTES]
 *                  [--max-header BYTES] [--header-timeout-ms MS]
 *
 * One thread runs a libuv loop that owns every socket; a tandem pool runs
 * the CPU-heavy requests, so a slow /fib/45 never delays a /ping.  With
 * --mode inline the loop thread computes too, the way a plain event-loop
 * server would.  SIGINT or SIGTERM: stop accepting, finish the jobs that
 * run (queued ones are cancelled and get 503), close everything, exit 0.
 * A second signal finds the default action again and ends it at once.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static const char usage[] =
    "usage: %s [options]\n"
    "  --host ADDR             address to listen on [127.0.0.1]\n"
    "  --port PORT             port, 0 = any free one [8080]\n"
    "  --workers N             pool threads, 0 = one per CPU [0]\n"
    "  --worker-nice N         lower the workers' priority by N so the\n"
    "                          loop thread wins the CPU when it wakes [5]\n"
    "  --mode hybrid|inline    compute on the pool, or on the loop [hybrid]\n"
    "  --max-conns N           more connections get 503 [1024]\n"
    "  --max-body BYTES        larger request bodies get 413 [1048576]\n"
    "  --max-header BYTES      larger request heads get 431 [8192]\n"
    "  --header-timeout-ms MS  time a client has to send a request [10000]\n";

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
  unsigned long long port, workers, worker_nice, max_conns, max_body,
      max_header;
  unsigned long long header_timeout_ms;
  server_mode_t mode;
} options_t;

static int parse_args(int argc, char **argv, options_t *o) {
  const char *name, *value;
  int i, r;

  for (i = 1; i < argc; i += 2) {
    name = argv[i];
    value = i + 1 < argc ? argv[i + 1] : NULL;
    if (value == NULL)
      return -1;
    if (strcmp(name, "--host") == 0) {
      o->host = value;
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

static void on_signal(uv_signal_t *handle, int signum) {
  server_t *srv = handle->data;

  (void)signum;
  if (srv->stopping)
    return;
  srv->stopping = 1;
  uv_close((uv_handle_t *)&srv->sigint, NULL);
  uv_close((uv_handle_t *)&srv->sigterm, NULL);
  /* Queued jobs are cancelled (their answer is 503), running ones finish;
   * tandem's handles close once the last after callback has run. */
  if (srv->mode == MODE_HYBRID)
    tandem_close(&srv->tandem, NULL);
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
                   .mode = MODE_HYBRID};
  tandem_options_t topt;
  struct sockaddr_storage addr;
  static server_t srv;
  uv_loop_t loop;
  int r, rc = 0;

  if (parse_args(argc, argv, &opt) != 0) {
    fprintf(stderr, usage, argv[0]);
    return 2;
  }
  if (uv_ip4_addr(opt.host, (int)opt.port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(opt.host, (int)opt.port, (struct sockaddr_in6 *)&addr) != 0) {
    fprintf(stderr, "bad address: %s\n", opt.host);
    return 2;
  }
  /* Writing to a socket the client has closed must give EPIPE, not kill. */
  signal(SIGPIPE, SIG_IGN);
  http_parser_set_max_header_size((uint32_t)opt.max_header);

  r = uv_loop_init(&loop);
  if (r != 0) {
    fprintf(stderr, "uv_loop_init: %s\n", uv_strerror(r));
    return 1;
  }
  srv.loop = &loop;
  srv.mode = opt.mode;
  srv.max_conns = (unsigned)opt.max_conns;
  srv.max_body = (size_t)opt.max_body;
  srv.header_timeout_ms = opt.header_timeout_ms;

  if (srv.mode == MODE_HYBRID) {
    memset(&topt, 0, sizeof(topt));
    topt.workers = (unsigned)opt.workers;
    /* On a machine with few cores the workers and the loop share them:
     * a lower priority for the workers makes a waking loop thread (a
     * /ping just arrived) preempt a busy worker instead of waiting. */
    topt.worker_nice = (int)opt.worker_nice;
    r = tandem_pool_new(&srv.pool, &topt);
    if (r == 0)
      r = tandem_init(&loop, &srv.tandem, srv.pool);
    if (r != 0) {
      fprintf(stderr, "tandem: %s\n", uv_strerror(r));
      return 1;
    }
  }

  /* Before the port is printed: whoever reads it may signal us at once. */
  uv_signal_init(&loop, &srv.sigint);
  uv_signal_init(&loop, &srv.sigterm);
  srv.sigint.data = &srv;
  srv.sigterm.data = &srv;
  uv_signal_start(&srv.sigint, on_signal, SIGINT);
  uv_signal_start(&srv.sigterm, on_signal, SIGTERM);

  r = http_listen(&srv, (struct sockaddr *)&addr);
  if (r != 0) {
    fprintf(stderr, "listen on %s:%llu: %s\n", opt.host, opt.port,
            uv_strerror(r));
    rc = 1;
    on_signal(&srv.sigterm, SIGTERM); /* the same clean way out */
  }

  uv_run(&loop, UV_RUN_DEFAULT);

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
  return rc;
}
