/* SPDX-License-Identifier: MIT */
/* peer_http: parsing, routing, answers and the job of the server peers. */
#include "peer_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ABANDON_CHECK_N 25 /* as compute_server's routes.c */

/* ------------------------------------------------------------- parsing */

static int on_message_begin(http_parser *p) {
  peer_req_t *r = p->data;

  r->url_len = 0;
  r->too_long = 0;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  peer_req_t *r = p->data;

  if (len >= PEER_URL_MAX - r->url_len) {
    r->too_long = 1; /* answered with 414 once the request is complete */
    return 0;
  }
  memcpy(r->url + r->url_len, at, len);
  r->url_len += len;
  r->url[r->url_len] = '\0';
  return 0;
}

static int on_message_complete(http_parser *p) {
  peer_req_t *r = p->data;

  r->complete = 1;
  r->method = p->method;
  r->keep_alive = http_should_keep_alive(p) && !p->upgrade;
  r->http10 = p->http_major == 1 && p->http_minor == 0;
  http_parser_pause(p, 1); /* answer it before the next one is parsed */
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_message_complete = on_message_complete,
};

void peer_req_init(peer_req_t *r) {
  memset(r, 0, sizeof(*r));
  http_parser_init(&r->parser, HTTP_REQUEST);
  r->parser.data = r;
}

int peer_req_feed(peer_req_t *r, const char *buf, size_t len, size_t *used) {
  enum http_errno err;

  if (r->complete) { /* the previous request has been answered */
    r->complete = 0;
    http_parser_pause(&r->parser, 0);
  }
  *used = http_parser_execute(&r->parser, &settings, buf, len);
  err = HTTP_PARSER_ERRNO(&r->parser);
  if (err == HPE_PAUSED)
    return 1;
  return err == HPE_OK ? 0 : -1;
}

/* ------------------------------------------------------------- routing */

peer_route_t peer_route(const peer_req_t *r, unsigned *n) {
  struct http_parser_url u;
  const char *path;
  size_t len, i;
  unsigned v;

  if (r->too_long)
    return PEER_ROUTE_TOO_LONG;
  http_parser_url_init(&u);
  if (http_parser_parse_url(r->url, r->url_len, 0, &u) != 0 ||
      !(u.field_set & (1 << UF_PATH)))
    return PEER_ROUTE_BAD_ARG;
  path = r->url + u.field_data[UF_PATH].off;
  len = u.field_data[UF_PATH].len;
  if (len == 5 && memcmp(path, "/ping", 5) == 0)
    return r->method == HTTP_GET || r->method == HTTP_HEAD
               ? PEER_ROUTE_PING
               : PEER_ROUTE_BAD_METHOD;
  if (len == 6 && memcmp(path, "/stats", 6) == 0)
    return r->method == HTTP_GET || r->method == HTTP_HEAD
               ? PEER_ROUTE_STATS
               : PEER_ROUTE_BAD_METHOD;
  if (len < 5 || memcmp(path, "/fib/", 5) != 0)
    return PEER_ROUTE_NOT_FOUND;
  if (r->method != HTTP_GET && r->method != HTTP_HEAD)
    return PEER_ROUTE_BAD_METHOD;
  if (len == 5 || len > 7)
    return PEER_ROUTE_BAD_ARG;
  for (v = 0, i = 5; i < len; i++) {
    if (path[i] < '0' || path[i] > '9')
      return PEER_ROUTE_BAD_ARG;
    v = v * 10 + (unsigned)(path[i] - '0');
  }
  if (v > PEER_FIB_MAX)
    return PEER_ROUTE_BAD_ARG;
  *n = v;
  return PEER_ROUTE_FIB;
}

/* ------------------------------------------------------------- answers */

size_t peer_response(char *out, const peer_req_t *r, int status,
                     const char *body, int close) {
  return peer_response_typed(out, r, status, "text/plain", body, close);
}

size_t peer_response_typed(char *out, const peer_req_t *r, int status,
                           const char *type, const char *body, int close) {
  const char *connection;
  size_t len = strlen(body);
  int n;

  close = close || !r->keep_alive;
  if (close)
    connection = "Connection: close\r\n";
  else if (r->http10)
    connection = "Connection: keep-alive\r\n";
  else
    connection = "";
  n = snprintf(out, PEER_RESPONSE_MAX,
               "HTTP/1.1 %d %s\r\n"
               "Content-Type: %s\r\n"
               "Content-Length: %zu\r\n"
               "%s\r\n"
               "%s",
               status, http_status_str((enum http_status)status), type, len,
               connection, r->method == HTTP_HEAD ? "" : body);
  if (n < 0 || n >= PEER_RESPONSE_MAX)
    abort(); /* our own answers are never that long */
  return (size_t)n;
}

size_t peer_response_simple(char *out, const peer_req_t *r, peer_route_t route,
                            int close) {
  switch (route) {
  case PEER_ROUTE_PING:
    return peer_response(out, r, 200, "pong\n", close);
  case PEER_ROUTE_BAD_METHOD:
    return peer_response(out, r, 405, "method not allowed\n", close);
  case PEER_ROUTE_BAD_ARG:
    return peer_response(out, r, 400, "usage: /fib/N with 0 <= N <= 45\n",
                         close);
  case PEER_ROUTE_TOO_LONG:
    return peer_response(out, r, 414, "URI Too Long\n", close);
  default:
    return peer_response(out, r, 404, "not found\n", close);
  }
}

peer_next_t peer_serve_next(peer_req_t *r, const char *buf, size_t len,
                            size_t *used, int stopping, char *out,
                            size_t *out_len, unsigned *n, int *close) {
  peer_route_t route;
  int got;

  got = peer_req_feed(r, buf, len, used);
  if (got < 0) {
    *close = 1;
    *out_len = peer_response(out, r, 400, "bad request\n", 1);
    return PEER_NEXT_BAD;
  }
  if (got == 0)
    return PEER_NEXT_MORE;
  *close = stopping || !r->keep_alive;
  route = peer_route(r, n);
  if (route == PEER_ROUTE_FIB)
    return PEER_NEXT_FIB;
  if (route == PEER_ROUTE_STATS) {
    *out_len = peer_response_simple(out, r, PEER_ROUTE_NOT_FOUND, *close);
    return PEER_NEXT_STATS;
  }
  *out_len = peer_response_simple(out, r, route, *close);
  return PEER_NEXT_ANSWER;
}

size_t peer_fib_response(char *out, const peer_req_t *r, uint64_t result,
                         int close) {
  char num[32];

  snprintf(num, sizeof(num), "%llu\n", (unsigned long long)result);
  return peer_response(out, r, 200, num, close);
}

/* ---------------------------------------------------------------- main */

int peer_main_args(int argc, char **argv, const char *what, unsigned *port) {
  unsigned long v = 8080;
  char *end;

  if (argc == 2 &&
      (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    printf("usage: %s [--port PORT]\n"
           "The HTTP peer of bench/server (%s) on\n"
           "127.0.0.1:PORT [8080], 0 = any free port.  SIGTERM stops it.\n",
           argv[0], what);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "--port") == 0) {
    v = strtoul(argv[2], &end, 10);
    if (*end != '\0' || end == argv[2] || v > 65535)
      argc = 0;
  }
  if (argc != 1 && argc != 3) {
    fprintf(stderr, "usage: %s [--port PORT]\n", argv[0]);
    return 2;
  }
  *port = (unsigned)v;
  return -1;
}

/* ----------------------------------------------------------------- job */

uint64_t peer_fib(unsigned n, atomic_int *abandoned) {
  if (n < 2)
    return n;
  if (n >= ABANDON_CHECK_N &&
      atomic_load_explicit(abandoned, memory_order_relaxed))
    return 0;
  return peer_fib(n - 1, abandoned) + peer_fib(n - 2, abandoned);
}
