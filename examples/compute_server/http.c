/* SPDX-License-Identifier: MIT */
/*
 * Connections: accept, read, parse with http-parser, answer in order, time
 * out, close.  Loop thread only.
 *
 * A connection reads into its own buffer and feeds the parser.  When a
 * request is complete the parser is paused, so pipelined requests behind it
 * stay in the buffer; routes.c answers it at once or starts a job.  While a
 * job runs the connection keeps reading (so a reset is noticed) but parses
 * nothing, which keeps answers in request order.  The job's after callback
 * answers and resumes parsing.
 *
 * Closing: an answer with "Connection: close" is followed by a shutdown
 * (FIN after the queued writes) and a short drain of whatever the client
 * still sends, so that closing a socket with unread input does not reset
 * the connection before the client has read the answer.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server.h"

#define READ_CHUNK 16384
#define IN_HIGH (256 * 1024) /* stop reading with this much unparsed */
#define WRITE_HIGH (1 << 20) /* stop parsing with this much unsent */
#define LINGER_MS 1000       /* drain time after the last answer */
#define RESPONSE_HEAD_MAX 512

typedef struct {
  uv_write_t req;
  conn_t *c;
  char data[];
} wreq_t;

static void conn_process(conn_t *c);
static void conn_finish(conn_t *c);
static void conn_close(conn_t *c);
static void conn_update_reading(conn_t *c);

/* ------------------------------------------------------------ lifetime */

static void conn_unref(conn_t *c) {
  if (--c->refs > 0)
    return;
  free(c->in);
  free(c->body);
  free(c);
}

static void on_handle_closed(uv_handle_t *handle) {
  conn_unref(handle->data);
}

/* Closes at once; a job still in flight is cancelled: if it has not
 * started, tandem_cancel() takes it back (0); if it runs, it returns
 * UV_EBUSY and tandem_work_cancelled() tells the job to give up.  Either
 * way its after callback gets UV_ECANCELED and drops the result. */
static void conn_close(conn_t *c) {
  server_t *srv = c->srv;

  if (c->state == CONN_CLOSED)
    return;
  c->state = CONN_CLOSED;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  if (c->counted)
    srv->nconns--;
  if (c->busy)
    (void)tandem_cancel(&c->job.work);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_timer(uv_timer_t *timer) {
  conn_t *c = timer->data;

  c->timer_armed = 0;
  if (c->state != CONN_READING) {
    conn_close(c); /* the last answer is not read, or the drain is over */
    return;
  }
  c->srv->timeouts++;
  if (!c->req_started || c->write_blocked) {
    conn_close(c); /* idle keep-alive, or does not read its answers */
    return;
  }
  c->keep_alive = 0;
  conn_respond(c, 408, NULL, "text/plain", "request timeout\n", 16);
}

/* Waits for a request: the client has header_timeout_ms to send all of it.
 * The clock does not restart with each byte, so a slow drip is cut too.
 * A client that does not read its answers gets the same time. */
static void conn_arm_timer(conn_t *c) {
  if (c->timer_armed)
    return;
  c->timer_armed = 1;
  uv_timer_start(&c->timer, on_timer, c->srv->header_timeout_ms, 0);
}

static void conn_disarm_timer(conn_t *c) {
  c->timer_armed = 0;
  uv_timer_stop(&c->timer);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn_t *c = req->handle->data;

  if (c->state == CONN_CLOSED)
    return;
  c->shut = 1;
  if (status < 0 || c->eof) {
    conn_close(c);
    return;
  }
  /* Our FIN is out; give the client a moment to read and hang up. */
  uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
}

/* After the last answer: shut down once the writes are out, then drain.
 * The client has header_timeout_ms to take the answer, LINGER_MS more to
 * hang up. */
static void conn_finish(conn_t *c) {
  if (c->state != CONN_READING)
    return;
  c->state = CONN_DRAINING;
  c->timer_armed = 0;
  uv_timer_start(&c->timer, on_timer, c->srv->header_timeout_ms, 0);
  if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
    conn_close(c);
}

/* ------------------------------------------------------------- writing */

static void on_write(uv_write_t *req, int status) {
  wreq_t *w = container_of(req, wreq_t, req);
  conn_t *c = w->c;

  free(w);
  if (status < 0) {
    conn_close(c); /* no-op if the write failed because we are closing */
    return;
  }
  if (c->write_blocked &&
      uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < WRITE_HIGH) {
    c->write_blocked = 0;
    conn_process(c);
  }
}

/* Queues head and body as one write; libuv owns the copy until on_write. */
static void conn_write(conn_t *c, const char *head, size_t head_len,
                       const char *body, size_t body_len) {
  wreq_t *w;
  uv_buf_t buf;

  w = malloc(sizeof(*w) + head_len + body_len);
  if (w == NULL) {
    conn_close(c);
    return;
  }
  memcpy(w->data, head, head_len);
  if (body_len > 0)
    memcpy(w->data + head_len, body, body_len);
  w->c = c;
  buf = uv_buf_init(w->data, (unsigned)(head_len + body_len));
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0) {
    free(w);
    conn_close(c);
  }
}

/* Answers the current request.  `headers` is NULL or extra header lines,
 * each ending in \r\n.  Closes after the answer unless keep-alive holds. */
void conn_respond(conn_t *c, int status, const char *headers,
                  const char *content_type, const char *body, size_t len) {
  char head[RESPONSE_HEAD_MAX];
  const char *connection;
  int keep, n;

  if (c->state != CONN_READING)
    return;
  metrics_count_response(c->srv, status);
  if (status >= 400 && c->srv->on_error_response != NULL)
    c->srv->on_error_response(c, status);
  keep = c->keep_alive && !c->srv->stopping;
  if (!keep)
    connection = "Connection: close\r\n";
  else if (c->http10)
    connection = "Connection: keep-alive\r\n";
  else
    connection = "";
  n = snprintf(head, sizeof(head),
               "HTTP/1.1 %d %s\r\n"
               "Content-Type: %s\r\n"
               "Content-Length: %zu\r\n"
               "%s%s\r\n",
               status, http_status_str((enum http_status)status), content_type,
               len, connection, headers ? headers : "");
  if (n < 0 || (size_t)n >= sizeof(head))
    abort(); /* our own headers never get that long */
  conn_write(c, head, (size_t)n, body, c->method == HTTP_HEAD ? 0 : len);
  if (!keep)
    conn_finish(c);
}

/* ------------------------------------------------------------- parsing */

static int on_message_begin(http_parser *p) {
  conn_t *c = p->data;

  c->req_started = 1;
  c->method = HTTP_GET;
  c->url_len = 0;
  c->url_too_long = 0;
  c->body_len = 0;
  c->err = 0;
  c->hname_len = 0;
  c->in_value = 0;
  c->in_expect = 0;
  c->expect_continue = 0;
  if (c->body_cap > 65536) { /* do not keep a big body buffer around */
    free(c->body);
    c->body = NULL;
    c->body_cap = 0;
  }
  return 0;
}

/* A target longer than URL_MAX is answered 414 only once the whole head
 * is parsed: refused here, the answer depended on where TCP split the
 * bytes (a bad byte or an oversized head later in one read gave 400 or 431
 * instead: finding H1 of tests/fuzz). */
static int on_url(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;

  if (c->url_too_long || len >= URL_MAX - c->url_len) {
    c->url_too_long = 1;
    return 0;
  }
  memcpy(c->url + c->url_len, at, len);
  c->url_len += len;
  c->url[c->url_len] = '\0';
  return 0;
}

/* Names and values may arrive in pieces.  Only Expect: 100-continue
 * matters here (curl sends it before big bodies and waits for it). */
static int on_header_field(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;

  if (c->in_value) {
    c->in_value = 0;
    c->hname_len = 0;
  }
  if (c->hname_len + len <= sizeof(c->hname))
    memcpy(c->hname + c->hname_len, at, len);
  c->hname_len += len;
  return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;

  if (!c->in_value) {
    c->in_value = 1;
    c->in_expect = c->hname_len == 6 && strncasecmp(c->hname, "expect", 6) == 0;
    c->expect_len = 0;
  }
  if (!c->in_expect)
    return 0;
  if (c->expect_len + len <= sizeof(c->expect))
    memcpy(c->expect + c->expect_len, at, len);
  c->expect_len += len;
  c->expect_continue =
      c->expect_len == 12 && strncasecmp(c->expect, "100-continue", 12) == 0;
  return 0;
}

static int on_headers_complete(http_parser *p) {
  static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
  conn_t *c = p->data;

  c->method = p->method;
  if (c->url_too_long) {
    c->err = 414;
    return -1;
  }
  if (p->content_length != ULLONG_MAX && p->content_length > c->srv->max_body) {
    c->err = 413; /* refuse before reading a byte of it */
    return -1;
  }
  if (c->expect_continue && p->http_major == 1 && p->http_minor >= 1)
    conn_write(c, cont, sizeof(cont) - 1, NULL, 0);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;
  size_t cap;
  char *body;

  if (len > c->srv->max_body - c->body_len) {
    c->err = 413; /* chunked bodies have no length up front */
    return -1;
  }
  if (c->body_len + len > c->body_cap) {
    cap = c->body_cap ? c->body_cap : 4096;
    while (cap < c->body_len + len)
      cap *= 2;
    body = realloc(c->body, cap);
    if (body == NULL) {
      c->err = 500;
      return -1;
    }
    c->body = body;
    c->body_cap = cap;
  }
  memcpy(c->body + c->body_len, at, len);
  c->body_len += len;
  return 0;
}

static int on_message_complete(http_parser *p) {
  conn_t *c = p->data;

  c->keep_alive = http_should_keep_alive(p) && !p->upgrade;
  c->http10 = p->http_major == 1 && p->http_minor == 0;
  c->req_started = 0;
  conn_disarm_timer(c);
  /* Stop here: the request is answered before the next one is parsed. */
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static int status_of_parse_error(conn_t *c) {
  switch (HTTP_PARSER_ERRNO(&c->parser)) {
  case HPE_HEADER_OVERFLOW:
    return 431;
  case HPE_CB_url:
  case HPE_CB_headers_complete:
  case HPE_CB_body:
    return c->err ? c->err : 500;
  default:
    return 400;
  }
}

/* How many more bytes the parser may see now.  http-parser counts the
 * bytes of a head (and of a chunk-size line or trailers) in parser.nread,
 * zero elsewhere, but its fast paths look up to its limit ahead for a bad
 * byte before counting, so an oversized head with a bad byte further on
 * got 400 when it came in one read and 431 when cut (finding H2 of
 * tests/fuzz).  Never handing it a byte past the limit makes the answer
 * the one the byte order gives, wherever TCP cut the stream. */
static size_t head_room(const conn_t *c) {
  return c->parser.nread < c->srv->max_header
             ? c->srv->max_header - c->parser.nread
             : 0;
}

/* The head reached the limit and more of it is here: 431, as http-parser
 * itself answers a byte past its limit. */
static void conn_refuse_head(conn_t *c) {
  static const char msg[] = "Request Header Fields Too Large\n";

  c->keep_alive = 0;
  conn_respond(c, 431, NULL, "text/plain", msg, sizeof(msg) - 1);
}

/* Parses and answers whatever complete requests the buffer holds, one at
 * a time, until it runs dry, a job is started or the connection ends. */
static void conn_process(conn_t *c) {
  enum http_errno err;
  char msg[128];
  size_t n;
  int status;

  while (c->state == CONN_READING && !c->busy && c->in_off < c->in_len) {
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >= WRITE_HIGH) {
      c->write_blocked = 1; /* the client does not read its answers */
      break;
    }
    n = c->in_len - c->in_off;
    if (head_room(c) == 0) {
      conn_refuse_head(c);
      break;
    }
    if (n > head_room(c))
      n = head_room(c);
    n = http_parser_execute(&c->parser, &settings, c->in + c->in_off, n);
    c->in_off += n;
    err = HTTP_PARSER_ERRNO(&c->parser);
    if (c->state != CONN_READING)
      break; /* a callback failed to write and closed the connection */
    if (err == HPE_PAUSED) {
      http_parser_pause(&c->parser, 0);
      c->srv->requests++;
      route_request(c);
    } else if (err != HPE_OK) {
      status = status_of_parse_error(c);
      n = (size_t)snprintf(msg, sizeof(msg), "%s\n",
                           status == 400 ? http_errno_description(err)
                                         : http_status_str(status));
      c->keep_alive = 0; /* the stream is unreadable from here on */
      conn_respond(c, status, NULL, "text/plain", msg, n);
    }
  }
  if (c->state != CONN_READING)
    return;

  /* Keep only the unparsed tail. */
  if (c->in_off == c->in_len) {
    c->in_off = c->in_len = 0;
  } else if (c->in_off > 0) {
    memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
    c->in_len -= c->in_off;
    c->in_off = 0;
  }

  if (c->busy)
    return;
  if (c->write_blocked) {
    conn_arm_timer(c);
    return;
  }
  if (c->eof) {
    conn_finish(c); /* nothing more will come */
    return;
  }
  conn_arm_timer(c);
}

void conn_resume(conn_t *c) {
  conn_process(c);
  conn_update_reading(c);
}

/* ------------------------------------------------------------- reading */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  conn_t *c = handle->data;
  size_t cap;
  char *in;

  (void)suggested;
  if (c->state != CONN_READING) {
    *buf = uv_buf_init(c->srv->discard, sizeof(c->srv->discard));
    return;
  }
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
  if (nread == UV_EOF) {
    c->eof = 1;
    if (c->state == CONN_READING) {
      /* Half-close: answer what was asked, then close. */
      conn_disarm_timer(c);
      conn_resume(c);
    } else if (c->shut) {
      conn_close(c); /* both sides are done */
    }
    /* Draining before our FIN is out: on_shutdown() closes. */
    return;
  }
  if (nread < 0) {
    conn_close(c); /* reset */
    return;
  }
  if (c->state != CONN_READING)
    return; /* draining: discard */
  c->in_len += (size_t)nread;
  conn_resume(c);
}

/* Reads while there is room, and so also while a job runs unless the
 * client floods us: a reset must reach us so the job's result is dropped. */
static void conn_update_reading(conn_t *c) {
  int want;

  if (c->state == CONN_CLOSED)
    return;
  want = !c->eof && (c->state == CONN_DRAINING || c->in_len < IN_HIGH);
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
      conn_close(c);
      return;
    }
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
  }
  c->reading = want;
}

/* ---------------------------------------------------------------- jobs */

/* Shutdown, once no job is in flight: closes the tandem handle.  Not
 * sooner, because tandem_close() tells running jobs to give up (their
 * tandem_work_cancelled() turns 1), and the server lets them finish. */
static void server_close_pool(server_t *srv) {
  int r;

  if (!srv->stopping || srv->jobs_in_flight > 0 || srv->pool_closing ||
      srv->mode != MODE_HYBRID)
    return;
  srv->pool_closing = 1;
  r = tandem_close(&srv->tandem, NULL);
  if (r != 0)
    fprintf(stderr, "tandem_close: %s\n", uv_strerror(r));
}

/* routes.c has queued c->job: keep c alive until its after callback. */
void conn_job_begin(conn_t *c) {
  c->busy = 1;
  c->refs++;
  c->srv->jobs_queued++;
  c->srv->jobs_in_flight++;
  conn_update_reading(c);
}

/* From the job's after callback.  Returns 1 if the connection still wants
 * the answer (then the caller responds and calls conn_resume), or 0 if it
 * has closed meanwhile: the result is dropped and c may be gone. */
int conn_job_end(conn_t *c) {
  server_t *srv = c->srv;

  c->busy = 0;
  srv->jobs_in_flight--;
  server_close_pool(srv); /* if it was the last one of a shutdown */
  if (c->state == CONN_CLOSED) {
    srv->abandoned++;
    conn_unref(c);
    return 0;
  }
  conn_unref(c); /* the handles still hold their references */
  return 1;
}

/* Jobs of open connections whose work has begun (for /stats). */
unsigned http_jobs_running(const server_t *srv) {
  const conn_t *c;
  unsigned n = 0;

  for (c = srv->conns; c != NULL; c = c->next)
    n += c->busy && atomic_load_explicit(&c->job.started, memory_order_relaxed);
  return n;
}

/* ----------------------------------------------------------- listening */

static void on_connection(uv_stream_t *listener, int status) {
  server_t *srv = container_of(listener, server_t, listener);
  conn_t *c;

  if (status < 0) {
    fprintf(stderr, "accept: %s\n", uv_strerror(status));
    return;
  }
  c = calloc(1, sizeof(*c));
  if (c == NULL) {
    fprintf(stderr, "accept: out of memory\n");
    return;
  }
  c->srv = srv;
  c->refs = 2;
  uv_tcp_init(srv->loop, &c->tcp);
  uv_timer_init(srv->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->next = srv->conns;
  if (srv->conns != NULL)
    srv->conns->prev = c;
  srv->conns = c;

  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  srv->accepted++;
  uv_tcp_nodelay(&c->tcp, 1);
  conn_update_reading(c);
  if (srv->nconns >= srv->max_conns) {
    srv->rejected++;
    conn_respond(c, 503, "Retry-After: 1\r\n", "text/plain",
                 "too many connections\n", 21);
    return;
  }
  srv->nconns++;
  c->counted = 1;
  conn_arm_timer(c);
}

/* Binds, listens and prints "listening on HOST:PORT". */
int http_listen(server_t *srv, const struct sockaddr *addr) {
  struct sockaddr_storage name;
  int len = sizeof(name);
  char host[64];
  int port, r;

  if (srv->max_header == 0)
    srv->max_header = 8192;
  http_parser_set_max_header_size(srv->max_header);
  uv_tcp_init(srv->loop, &srv->listener);
  r = uv_tcp_bind(&srv->listener, addr, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&srv->listener, 1024, on_connection);
  if (r == 0)
    r = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&name, &len);
  if (r != 0)
    return r;
  if (name.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&name, host, sizeof(host));
    port = ntohs(((struct sockaddr_in6 *)&name)->sin6_port);
  } else {
    uv_ip4_name((struct sockaddr_in *)&name, host, sizeof(host));
    port = ntohs(((struct sockaddr_in *)&name)->sin_port);
  }
  printf("listening on %s:%d\n", host, port);
  fflush(stdout);
  return 0;
}

/* Shutdown (srv->stopping is set): stop accepting; idle connections end
 * now, busy ones after their answer (srv->stopping turns keep-alive off).
 * Jobs that have not started are cancelled (their answer is 503); running
 * ones finish, and then the tandem handle closes.  A job that starts just
 * as it is cancelled gives up (tandem_cancel() returns UV_EBUSY and its
 * tandem_work_cancelled() turns 1): 503 too. */
void http_stop(server_t *srv) {
  conn_t *c, *next;

  uv_close((uv_handle_t *)&srv->listener, NULL);
  for (c = srv->conns; c != NULL; c = next) {
    next = c->next;
    if (c->busy && !atomic_load_explicit(&c->job.started, memory_order_relaxed))
      (void)tandem_cancel(&c->job.work);
    else if (c->state == CONN_READING && !c->busy)
      conn_finish(c);
  }
  server_close_pool(srv);
}
