/* SPDX-License-Identifier: MIT */
/*
 * load_client: the load driver's HTTP client (see load.h).  A phase opens
 * its connections, keeps at most one request in flight on each (closed
 * loop, keep-alive), and times each answer from just before the request
 * is written to when the last byte of the answer has been read.  Stages:
 *
 *   connecting -> warm (fib connections start) -> window (pings start,
 *   counting starts) -> drain (nothing new is sent; answers still come)
 *   -> closing -> done
 *
 * A watchdog ends a phase that overruns its time bound.  Loop thread only.
 */
#define _GNU_SOURCE /* strcasestr */
#include "load.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

#define container_of(ptr, type, member)                                        \
  ((type *)((char *)(ptr)-offsetof(type, member)))

#define RBUF 4096              /* a connection's read buffer */
#define CONNECT_SLACK_MS 3000  /* added to a phase's watchdog */
#define WATCHDOG_SLACK_MS 5000 /* ditto */

static const char ping_req[] = "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

typedef enum { ROLE_PACED, ROLE_FLOOD, ROLE_FIB } role_t;
typedef enum {
  ST_CONNECTING,
  ST_WARM,
  ST_WINDOW,
  ST_DRAIN,
  ST_CLOSING,
  ST_DONE
} stage_t;

typedef struct load_conn_s conn_t;

struct load_conn_s {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_write_t write;
  phase_t *ph;
  role_t role;
  int open; /* the handle is not closing */
  int connected;
  int writing;     /* `write` is in use */
  int outstanding; /* a request awaits its answer */
  int late;        /* send as soon as the connection is free */
  uint64_t sent_ns;
  size_t len;
  char buf[RBUF];
};

static void phase_open(phase_t *ph);
static void phase_close(phase_t *ph);
static void phase_closing(phase_t *ph);

/* The clock timer moves the phase from stage to stage. */
static void on_clock_open(uv_timer_t *t) {
  phase_open(t->data);
}

static void on_clock_close(uv_timer_t *t) {
  phase_close(t->data);
}

static void on_clock_closing(uv_timer_t *t) {
  phase_closing(t->data);
}

static void phase_error(phase_t *ph, const char *what) {
  if (ph->errors++ == 0)
    snprintf(ph->first_error, sizeof(ph->first_error), "%s", what);
}

static void phase_handle_gone(phase_t *ph) {
  if (--ph->handles == 0 && ph->stage == ST_CLOSING)
    ph->stage = ST_DONE;
}

static void on_handle_closed(uv_handle_t *h) {
  phase_handle_gone(h->data);
}

static void on_conn_closed(uv_handle_t *h) {
  phase_handle_gone(((conn_t *)h->data)->ph);
}

static void conn_drop(conn_t *c) {
  phase_t *ph = c->ph;

  if (!c->open)
    return;
  c->open = 0;
  if (c->outstanding) {
    c->outstanding = 0;
    ph->outstanding--;
  }
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  if (ph->stage == ST_DRAIN && ph->outstanding == 0)
    phase_closing(ph);
}

static void on_write(uv_write_t *req, int status);

static void conn_send(conn_t *c) {
  phase_t *ph = c->ph;
  uv_buf_t buf;

  if (!c->open || !c->connected)
    return;
  if (c->outstanding || c->writing) {
    c->late = 1;
    return;
  }
  c->late = 0;
  if (c->role == ROLE_FIB) {
    buf = uv_buf_init((char *)ph->fib_req, (unsigned)strlen(ph->fib_req));
    ph->fibs_sent++;
  } else {
    buf = uv_buf_init((char *)ping_req, sizeof(ping_req) - 1);
    ph->pings_sent++;
  }
  c->outstanding = 1;
  c->writing = 1;
  ph->outstanding++;
  c->sent_ns = uv_hrtime();
  if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0) {
    c->writing = 0;
    phase_error(ph, "write failed");
    conn_drop(c);
  }
}

/* May this connection send another request now? */
static int conn_may_send(conn_t *c) {
  phase_t *ph = c->ph;

  switch (c->role) {
  case ROLE_FIB:
    return (ph->stage == ST_WARM || ph->stage == ST_WINDOW) &&
           ph->fibs_sent < ph->max_fibs;
  case ROLE_FLOOD:
    return ph->stage == ST_WINDOW && ph->pings_sent < ph->max_pings;
  default: /* paced: only on a tick, or late */
    return ph->stage == ST_WINDOW && ph->pings_sent < ph->max_pings && c->late;
  }
}

static void on_write(uv_write_t *req, int status) {
  conn_t *c = container_of(req, conn_t, write);

  c->writing = 0;
  if (status < 0) {
    if (status != UV_ECANCELED)
      phase_error(c->ph, "write failed");
    conn_drop(c);
    return;
  }
  if (c->late && !c->outstanding && conn_may_send(c))
    conn_send(c);
}

/* One whole answer: check it, time it, and send the next request. */
static void conn_answer(conn_t *c, int status, const char *body, size_t len) {
  phase_t *ph = c->ph;
  uint64_t now = uv_hrtime();
  double us = (double)(now - c->sent_ns) / 1e3;
  char num[32];
  int ok;

  if (!c->outstanding) {
    phase_error(ph, "an answer nobody asked for");
    conn_drop(c);
    return;
  }
  c->outstanding = 0;
  ph->outstanding--;
  if (c->role == ROLE_FIB) {
    snprintf(num, sizeof(num), "%" PRIu64 "\n", ph->fib_expect);
    ok = status == 200 && len == strlen(num) && memcmp(body, num, len) == 0;
  } else {
    ok = status == 200 && len == 5 && memcmp(body, "pong\n", 5) == 0;
  }
  if (!ok) {
    snprintf(num, sizeof(num), "HTTP status %d", status);
    phase_error(ph, status == 200 ? "wrong answer" : num);
  }

  switch (c->role) {
  case ROLE_PACED:
    if (ph->n_ping_lat < ph->cap_ping_lat)
      ph->ping_lat[ph->n_ping_lat++] = us;
    if (ph->stage == ST_WINDOW && ph->pings_sent >= ph->max_pings)
      phase_close(ph);
    break;
  case ROLE_FLOOD:
    if (ph->stage == ST_WINDOW)
      ph->pings_in_window++;
    if (ph->stage == ST_WINDOW && ph->pings_sent >= ph->max_pings &&
        ph->outstanding == 0)
      phase_close(ph);
    c->late = 1;
    break;
  case ROLE_FIB:
    if (ph->n_fib_lat < ph->cap_fib_lat)
      ph->fib_lat[ph->n_fib_lat++] = us;
    if (ph->stage == ST_WINDOW)
      ph->fibs_in_window++;
    if (ph->stage == ST_WINDOW && ph->fibs_sent >= ph->max_fibs &&
        ph->outstanding == 0)
      phase_close(ph);
    c->late = 1;
    break;
  }
  if (ph->stage == ST_DRAIN && ph->outstanding == 0) {
    phase_closing(ph);
    return;
  }
  if (conn_may_send(c))
    conn_send(c);
}

/* Finds "\r\n\r\n"; returns the head's length with it, or 0. */
static size_t head_length(const char *p, size_t len) {
  size_t i;

  for (i = 3; i < len; i++)
    if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' &&
        p[i - 3] == '\r')
      return i + 1;
  return 0;
}

/* Parses the answers in c->buf; returns -1 if the stream is not one. */
static int conn_parse(conn_t *c) {
  size_t head, body_len, total;
  const char *cl;
  char saved;
  int status;

  while (c->open && c->len > 0) {
    head = head_length(c->buf, c->len);
    if (head == 0)
      return c->len < sizeof(c->buf) ? 0 : -1;
    if (c->len < 12 || memcmp(c->buf, "HTTP/1.", 7) != 0)
      return -1;
    status = atoi(c->buf + 9);
    saved = c->buf[head - 1];
    c->buf[head - 1] = '\0'; /* search the head only */
    cl = strcasestr(c->buf, "\r\ncontent-length:");
    if (strcasestr(c->buf, "\r\nconnection: close") != NULL)
      phase_error(c->ph, "the server closes the connection");
    c->buf[head - 1] = saved;
    if (cl == NULL)
      return -1;
    body_len = strtoul(cl + 17, NULL, 10);
    total = head + body_len;
    if (total > sizeof(c->buf))
      return -1;
    if (c->len < total)
      return 0;
    conn_answer(c, status, c->buf + head, body_len);
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
  }
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn_t *c = h->data;

  (void)suggested;
  *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = s->data;

  (void)buf;
  if (nread == 0)
    return;
  if (nread < 0) {
    if (c->ph->stage < ST_CLOSING)
      phase_error(c->ph, nread == UV_EOF ? "the server closed a connection"
                                         : "read failed");
    conn_drop(c);
    return;
  }
  c->len += (size_t)nread;
  if (conn_parse(c) != 0) {
    phase_error(c->ph, "not an HTTP answer");
    conn_drop(c);
  }
}

static void phase_start_warm(phase_t *ph) {
  unsigned i;

  ph->stage = ST_WARM;
  for (i = 0; i < ph->nconns; i++)
    if (ph->conns[i].role == ROLE_FIB && ph->conns[i].open) {
      ph->conns[i].late = 1;
      conn_send(&ph->conns[i]);
    }
  if (ph->warm_ms == 0)
    phase_open(ph);
  else
    uv_timer_start(&ph->clock, on_clock_open, ph->warm_ms, 0);
}

static void on_connect(uv_connect_t *req, int status) {
  conn_t *c = req->data;
  phase_t *ph = c->ph;

  if (status == 0 && c->open &&
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) {
    c->connected = 1;
    uv_tcp_nodelay(&c->tcp, 1);
  } else if (status != UV_ECANCELED) {
    phase_error(ph, "connect failed");
    conn_drop(c);
  }
  if (--ph->connecting == 0 && ph->stage == ST_CONNECTING)
    phase_start_warm(ph);
}

static void on_pace(uv_timer_t *t) {
  phase_t *ph = t->data;
  unsigned i;

  if (ph->stage != ST_WINDOW || ph->pings_sent >= ph->max_pings)
    return;
  for (i = 0; i < ph->nconns; i++)
    if (ph->conns[i].role == ROLE_PACED)
      conn_send(&ph->conns[i]); /* or marks it late */
}

static void phase_open(phase_t *ph) {
  unsigned i;

  if (ph->stage != ST_WARM)
    return;
  ph->stage = ST_WINDOW;
  snap_take(&ph->snap_open, ph->pid);
  ph->t_open = uv_hrtime();
  for (i = 0; i < ph->nconns; i++)
    if (ph->conns[i].role != ROLE_FIB) {
      ph->conns[i].late = 1;
      conn_send(&ph->conns[i]);
    }
  if (ph->n_paced > 0)
    uv_timer_start(&ph->pace, on_pace, ph->interval_ms, ph->interval_ms);
  uv_timer_start(&ph->clock, on_clock_close, ph->window_ms, 0);
}

static void phase_close(phase_t *ph) {
  if (ph->stage != ST_WINDOW)
    return;
  ph->t_close = uv_hrtime();
  snap_take(&ph->snap_close, ph->pid);
  ph->stage = ST_DRAIN;
  uv_timer_stop(&ph->pace);
  if (ph->outstanding == 0)
    phase_closing(ph);
  else
    uv_timer_start(&ph->clock, on_clock_closing, ph->drain_ms, 0);
}

static void phase_closing(phase_t *ph) {
  unsigned i;

  if (ph->stage >= ST_CLOSING)
    return;
  ph->unfinished = ph->outstanding;
  ph->stage = ST_CLOSING;
  for (i = 0; i < ph->nconns; i++)
    conn_drop(&ph->conns[i]);
  uv_close((uv_handle_t *)&ph->pace, on_handle_closed);
  uv_close((uv_handle_t *)&ph->clock, on_handle_closed);
  uv_close((uv_handle_t *)&ph->watchdog, on_handle_closed);
}

static void on_watchdog(uv_timer_t *t) {
  phase_t *ph = t->data;

  phase_error(ph, "watchdog: the phase overran its time bound");
  if (ph->stage == ST_CONNECTING || ph->stage == ST_WARM) {
    ph->stage = ST_WINDOW;
    snap_take(&ph->snap_open, ph->pid);
    ph->t_open = uv_hrtime();
  }
  phase_close(ph);
  phase_closing(ph);
}

void phase_run(phase_t *ph) {
  struct sockaddr_in addr;
  unsigned i;
  conn_t *c;

  ph->nconns = ph->n_paced + ph->n_flood + ph->n_fib;
  ph->conns = calloc(ph->nconns, sizeof(*ph->conns));
  if (ph->conns == NULL) {
    phase_error(ph, "out of memory");
    return;
  }
  uv_ip4_addr("127.0.0.1", ph->port, &addr);
  ph->stage = ST_CONNECTING;
  uv_timer_init(ph->loop, &ph->pace);
  uv_timer_init(ph->loop, &ph->clock);
  uv_timer_init(ph->loop, &ph->watchdog);
  ph->pace.data = ph->clock.data = ph->watchdog.data = ph;
  ph->handles = 3;
  uv_timer_start(&ph->watchdog, on_watchdog,
                 ph->warm_ms + ph->window_ms + ph->drain_ms + CONNECT_SLACK_MS +
                     WATCHDOG_SLACK_MS,
                 0);
  ph->connecting = ph->nconns;
  for (i = 0; i < ph->nconns; i++) {
    c = &ph->conns[i];
    c->ph = ph;
    c->role = i < ph->n_paced                 ? ROLE_PACED
              : i < ph->n_paced + ph->n_flood ? ROLE_FLOOD
                                              : ROLE_FIB;
    uv_tcp_init(ph->loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    c->open = 1;
    ph->handles++;
    if (uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&addr,
                       on_connect) != 0) {
      phase_error(ph, "connect failed");
      conn_drop(c);
      ph->connecting--;
    }
  }
  if (ph->connecting == 0 && ph->stage == ST_CONNECTING)
    phase_start_warm(ph);
  while (ph->stage != ST_DONE)
    uv_run(ph->loop, UV_RUN_ONCE);
  free(ph->conns);
  ph->conns = NULL;
}

double phase_window_secs(const phase_t *ph) {
  return ph->t_close > ph->t_open ? (double)(ph->t_close - ph->t_open) / 1e9
                                  : NAN;
}

phase_t *phase_new(uv_loop_t *loop, int port, int pid) {
  phase_t *ph = calloc(1, sizeof(*ph));

  if (ph == NULL)
    return NULL;
  ph->loop = loop;
  ph->port = port;
  ph->pid = pid;
  ph->interval_ms = 1;
  ph->drain_ms = 3000;
  return ph;
}

void phase_free(phase_t *ph) {
  free(ph->ping_lat);
  free(ph->fib_lat);
  free(ph);
}

void lat_summarize(const double *v, size_t n, lat_t *o) {
  size_t i;

  o->n = n;
  o->mean = NAN;
  for (i = 0; i < n; i++)
    o->mean = (i == 0 ? 0 : o->mean) + v[i] / (double)n;
  o->p50 = stats_percentile(v, n, 50);
  o->p99 = stats_percentile(v, n, 99);
  o->p999 = stats_percentile(v, n, 99.9);
  o->max = stats_max(v, n);
}
