/* SPDX-License-Identifier: MIT */
/*
 * peer_uvwork: the libuv-only peer of the server benchmark.
 *
 *   peer_uvwork [--port PORT]
 *
 * compute_server's design without tandem: one libuv loop owns every
 * socket, parses with http-parser (peer_http.c), answers /ping at once
 * and hands /fib/N to libuv's own thread pool with uv_queue_work(); the
 * after callback answers.  The pool's size is libuv's: 4 threads, or
 * UV_THREADPOOL_SIZE from the environment (the load driver sets it to
 * tandem's worker count).  Like compute_server, a connection has at most
 * one job in flight and parses nothing meanwhile (answers stay in order),
 * keeps reading so that a reset is noticed, and a job whose client left
 * is cancelled if it has not started or told to give up if it has.
 *
 * GET /stats answers how long its /fib jobs waited and ran, as
 * compute_server's /stats does for tandem's (same keys, nanoseconds):
 *
 *   {"metrics":{"wait":{"count","sum_ns","max_ns","mean_ns","p50_ns",
 *                       "p90_ns","p99_ns","p999_ns"},"run":{...}}}
 *
 * measured from outside libuv: uv_hrtime() on the loop thread just before
 * uv_queue_work, on the pool thread as the work begins and as it ends,
 * kept in the connection and recorded by the after callback on the loop
 * thread, into tandem_histogram_t (the only use of tandem here: its
 * histogram type, so both servers' percentiles come from the same
 * buckets).  Cancelled jobs are not counted, as tandem does not count
 * them.  Three clock reads per /fib job of milliseconds cost nothing that
 * shows.
 *
 * Listens on 127.0.0.1 only and prints "listening on 127.0.0.1:PORT".
 * SIGINT or SIGTERM: stop accepting, close idle connections, answer the
 * jobs that run with "Connection: close", exit 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <uv.h>

#include "tandem.h"

#include "peer_http.h"

#define container_of(ptr, type, member)                                        \
  ((type *)((char *)(ptr)-offsetof(type, member)))

#define READ_CHUNK 16384
#define IN_HIGH (256 * 1024) /* stop reading with this much unparsed */

typedef struct server_s server_t;

typedef struct conn_s {
  uv_tcp_t tcp;
  uv_work_t work;
  server_t *srv;
  struct conn_s *prev, *next; /* srv->conns */
  int refs;                   /* the handle, plus one while a job runs */
  int busy;                   /* a job is in flight */
  int closed;
  int reading;
  int close_after_write; /* the last answer said "Connection: close" */
  unsigned writes;       /* answers queued and not yet written */
  peer_req_t req;
  char *in;
  size_t in_off, in_len, in_cap;
  unsigned fib_n;
  uint64_t result;
  atomic_int abandoned;
  uint64_t queued_ns;  /* uv_hrtime() before uv_queue_work (loop thread) */
  uint64_t started_ns; /* and as on_work began and ended (pool thread) */
  uint64_t ended_ns;
} conn_t;

struct server_s {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_signal_t sigint, sigterm;
  conn_t *conns;
  int stopping;
  tandem_histogram_t wait; /* /fib jobs that ran: loop thread only */
  tandem_histogram_t run;
};

typedef struct {
  uv_write_t req;
  conn_t *c;
  char data[]; /* the answer */
} wreq_t;

static void conn_process(conn_t *c);
static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void conn_unref(conn_t *c) {
  if (--c->refs > 0)
    return;
  free(c->in);
  free(c);
}

static void on_closed(uv_handle_t *handle) {
  conn_unref(handle->data);
}

static void conn_close(conn_t *c) {
  server_t *srv = c->srv;

  if (c->closed)
    return;
  c->closed = 1;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  if (c->busy) {
    atomic_store(&c->abandoned, 1);
    (void)uv_cancel((uv_req_t *)&c->work); /* fails once it runs: fine */
  }
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_write(uv_write_t *req, int status) {
  wreq_t *w = container_of(req, wreq_t, req);
  conn_t *c = w->c;

  free(w);
  c->writes--;
  if (status < 0 || (c->close_after_write && !c->busy && c->writes == 0))
    conn_close(c);
}

/* Queues one answer (libuv owns the copy until on_write, as in
 * compute_server); closes after it when the answer says so. */
static void conn_send(conn_t *c, const char *data, size_t len, int close) {
  wreq_t *w;
  uv_buf_t buf;

  if (c->closed)
    return;
  w = malloc(sizeof(*w) + len);
  if (w == NULL) {
    conn_close(c);
    return;
  }
  memcpy(w->data, data, len);
  w->c = c;
  buf = uv_buf_init(w->data, (unsigned)len);
  if (close)
    c->close_after_write = 1;
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0) {
    free(w);
    conn_close(c);
    return;
  }
  c->writes++;
}

/* ---------------------------------------------------------------- jobs */

static void on_work(uv_work_t *req) { /* on a libuv pool thread */
  conn_t *c = container_of(req, conn_t, work);

  c->started_ns = uv_hrtime();
  c->result = peer_fib(c->fib_n, &c->abandoned);
  c->ended_ns = uv_hrtime();
}

static void on_after_work(uv_work_t *req, int status) { /* loop thread */
  conn_t *c = container_of(req, conn_t, work);
  char out[PEER_RESPONSE_MAX];
  size_t len;
  int close;

  c->busy = 0;
  if (status == 0) { /* it ran: libuv's lock ordered its times before us */
    tandem_histogram_record(&c->srv->wait, c->started_ns - c->queued_ns);
    tandem_histogram_record(&c->srv->run, c->ended_ns - c->started_ns);
  }
  if (c->closed) {
    conn_unref(c);
    return;
  }
  conn_unref(c); /* the handle still holds its reference */
  close = c->srv->stopping || !c->req.keep_alive;
  if (status == UV_ECANCELED) {
    len = peer_response(out, &c->req, 503, "shutting down\n", 1);
    close = 1;
  } else {
    len = peer_fib_response(out, &c->req, c->result, close);
  }
  conn_send(c, out, len, close);
  conn_process(c);
}

/* --------------------------------------------------------------- /stats */

static int json_histogram(char *p, size_t cap, const char *key,
                          const tandem_histogram_t *h) {
  return snprintf(
      p, cap,
      "\"%s\":{\"count\":%" PRIu64 ",\"sum_ns\":%" PRIu64 ",\"max_ns\":%" PRIu64
      ",\"mean_ns\":%" PRIu64 ",\"p50_ns\":%" PRIu64 ",\"p90_ns\":%" PRIu64
      ",\"p99_ns\":%" PRIu64 ",\"p999_ns\":%" PRIu64 "}",
      key, h->count, h->sum_ns, h->max_ns, tandem_histogram_mean(h),
      tandem_histogram_quantile(h, 0.5), tandem_histogram_quantile(h, 0.9),
      tandem_histogram_quantile(h, 0.99), tandem_histogram_quantile(h, 0.999));
}

/* The answer to GET /stats: the jobs' wait and run (see the top). */
static size_t stats_response(const server_t *srv, char *out,
                             const peer_req_t *r, int close) {
  char body[PEER_RESPONSE_MAX / 2 + 256];
  size_t n;

  n = (size_t)snprintf(body, sizeof(body), "{\"metrics\":{");
  n += (size_t)json_histogram(body + n, sizeof(body) - n, "wait", &srv->wait);
  n += (size_t)snprintf(body + n, sizeof(body) - n, ",");
  n += (size_t)json_histogram(body + n, sizeof(body) - n, "run", &srv->run);
  snprintf(body + n, sizeof(body) - n, "}}\n");
  return peer_response_typed(out, r, 200, "application/json", body, close);
}

/* ------------------------------------------------------------- reading */

/* Answers the complete requests in the buffer, one at a time, until it
 * runs dry, a job starts or the connection ends. */
static void conn_process(conn_t *c) {
  char out[PEER_RESPONSE_MAX];
  peer_next_t next;
  unsigned n = 0;
  size_t used, len = 0;
  int close = 0;

  while (!c->closed && !c->busy && !c->close_after_write &&
         c->in_off < c->in_len) {
    next = peer_serve_next(&c->req, c->in + c->in_off, c->in_len - c->in_off,
                           &used, c->srv->stopping, out, &len, &n, &close);
    c->in_off += used;
    if (next == PEER_NEXT_MORE)
      break;
    if (next == PEER_NEXT_STATS)
      len = stats_response(c->srv, out, &c->req, close);
    if (next != PEER_NEXT_FIB) {
      conn_send(c, out, len, close);
      continue; /* after a 400, close_after_write ends the loop */
    }
    c->fib_n = n;
    c->result = 0;
    atomic_store(&c->abandoned, 0);
    c->queued_ns = uv_hrtime();
    if (uv_queue_work(c->srv->loop, &c->work, on_work, on_after_work) != 0) {
      len = peer_response(out, &c->req, 503, "cannot queue work\n", 1);
      conn_send(c, out, len, 1);
      break;
    }
    c->busy = 1;
    c->refs++;
  }
  if (c->in_off == c->in_len) {
    c->in_off = c->in_len = 0;
  } else if (c->in_off > 0) {
    memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
    c->in_len -= c->in_off;
    c->in_off = 0;
  }
  if (!c->closed && !c->reading && c->in_len < IN_HIGH &&
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
    c->reading = 1;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  conn_t *c = handle->data;
  size_t cap;
  char *in;

  (void)suggested;
  if (c->in_cap - c->in_len < READ_CHUNK / 4) {
    cap = c->in_len + READ_CHUNK;
    in = realloc(c->in, cap);
    if (in == NULL) {
      *buf = uv_buf_init(NULL, 0); /* on_read gets UV_ENOBUFS */
      return;
    }
    c->in = in;
    c->in_cap = cap;
  }
  *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = stream->data;

  (void)buf;
  if (nread == 0)
    return;
  if (nread < 0) {
    conn_close(c); /* EOF or reset: a job in flight is dropped */
    return;
  }
  c->in_len += (size_t)nread;
  conn_process(c);
  if (!c->closed && c->in_len >= IN_HIGH && c->reading) {
    uv_read_stop(stream); /* a flood: stop until it is parsed */
    c->reading = 0;
  }
}

/* ----------------------------------------------------------- listening */

static void on_connection(uv_stream_t *listener, int status) {
  server_t *srv = container_of(listener, server_t, listener);
  conn_t *c;

  if (status < 0)
    return;
  c = calloc(1, sizeof(*c));
  if (c == NULL)
    return;
  c->srv = srv;
  c->refs = 1;
  uv_tcp_init(srv->loop, &c->tcp);
  c->tcp.data = c;
  peer_req_init(&c->req);
  c->next = srv->conns;
  if (srv->conns != NULL)
    srv->conns->prev = c;
  srv->conns = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  c->reading = 1;
  uv_tcp_nodelay(&c->tcp, 1);
}

static void on_signal(uv_signal_t *handle, int signum) {
  server_t *srv = handle->data;
  conn_t *c, *next;

  (void)signum;
  if (srv->stopping)
    return;
  srv->stopping = 1;
  uv_close((uv_handle_t *)&srv->sigint, NULL);
  uv_close((uv_handle_t *)&srv->sigterm, NULL);
  uv_close((uv_handle_t *)&srv->listener, NULL);
  for (c = srv->conns; c != NULL; c = next) {
    next = c->next;
    c->close_after_write = 1; /* parse nothing more */
    if (!c->busy && c->writes == 0)
      conn_close(c); /* the others close after their last answer */
  }
}

int main(int argc, char **argv) {
  static server_t srv;
  struct sockaddr_in addr;
  struct sockaddr_storage name;
  int len = sizeof(name);
  unsigned port = 8080;
  uv_loop_t loop;
  int r;

  r = peer_main_args(argc, argv, "libuv, /fib on uv_queue_work", &port);
  if (r >= 0)
    return r;
  signal(SIGPIPE, SIG_IGN);
  if (uv_loop_init(&loop) != 0)
    return 1;
  srv.loop = &loop;
  uv_signal_init(&loop, &srv.sigint);
  uv_signal_init(&loop, &srv.sigterm);
  srv.sigint.data = &srv;
  srv.sigterm.data = &srv;
  uv_signal_start(&srv.sigint, on_signal, SIGINT);
  uv_signal_start(&srv.sigterm, on_signal, SIGTERM);

  uv_ip4_addr("127.0.0.1", (int)port, &addr);
  uv_tcp_init(&loop, &srv.listener);
  r = uv_tcp_bind(&srv.listener, (struct sockaddr *)&addr, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&srv.listener, 1024, on_connection);
  if (r == 0)
    r = uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&name, &len);
  if (r != 0) {
    fprintf(stderr, "listen: %s\n", uv_strerror(r));
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n",
         ntohs(((struct sockaddr_in *)&name)->sin_port));
  fflush(stdout);

  uv_run(&loop, UV_RUN_DEFAULT);
  r = uv_loop_close(&loop);
  if (r != 0) {
    fprintf(stderr, "uv_loop_close: %s\n", uv_strerror(r));
    return 1;
  }
  return 0;
}
