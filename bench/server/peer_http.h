/* SPDX-License-Identifier: MIT */
/*
 * peer_http: what the benchmark's own server peers (peer_threads.c,
 * peer_uvwork.c) share, so that they serve exactly what
 * examples/compute_server serves for the two routes the benchmark uses:
 *
 *   GET /ping    "pong\n"
 *   GET /fib/N   naive recursive Fibonacci, N <= PEER_FIB_MAX, "%llu\n"
 *
 * and /stats, which a peer that keeps figures answers itself (peer_uvwork:
 * its jobs' wait and run, with compute_server's keys) and the others
 * answer 404 (peer_serve_next() writes that answer for them).
 *
 * The request parser is http-parser, as in compute_server, fed one buffer
 * at a time and paused after each complete request; the answers are the
 * same bytes compute_server sends (status line, Content-Type,
 * Content-Length, Connection only when it must be said); the Fibonacci is
 * the same code, with the same relaxed look at an "abandoned" flag now and
 * then, so a job costs the same in every peer.  Any thread; no state but
 * the caller's.
 */
#ifndef BENCH_SERVER_PEER_HTTP_H
#define BENCH_SERVER_PEER_HTTP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#define PEER_URL_MAX 1024 /* as compute_server: longer targets get 414 */
#define PEER_FIB_MAX 45
#define PEER_RESPONSE_MAX 1024 /* /stats's answer included */

typedef enum {
  PEER_ROUTE_PING,
  PEER_ROUTE_FIB,
  PEER_ROUTE_STATS,
  PEER_ROUTE_NOT_FOUND,
  PEER_ROUTE_BAD_METHOD,
  PEER_ROUTE_BAD_ARG,
  PEER_ROUTE_TOO_LONG
} peer_route_t;

/* One connection's parser and the request it has just parsed. */
typedef struct peer_req_s {
  http_parser parser;
  int complete;   /* a whole request is parsed; peer_req_feed() paused */
  int keep_alive; /* of the complete request */
  int http10;
  int method; /* enum http_method */
  int too_long;
  char url[PEER_URL_MAX];
  size_t url_len;
} peer_req_t;

void peer_req_init(peer_req_t *r);

/* Parses from buf[0..len) until a request is complete or the bytes run
 * out; *used gets the bytes consumed.  Returns 1 when a request is complete
 * (r->complete; answer it, then call again with the rest), 0 when more
 * bytes are needed, -1 when the stream is not HTTP (answer 400, close). */
int peer_req_feed(peer_req_t *r, const char *buf, size_t len, size_t *used);

/* Routes the complete request; *n gets N for PEER_ROUTE_FIB. */
peer_route_t peer_route(const peer_req_t *r, unsigned *n);

/* Writes into out (PEER_RESPONSE_MAX bytes) the whole answer, head and
 * body, byte for byte as compute_server's conn_respond() would; `close`
 * adds "Connection: close".  Returns its length. */
size_t peer_response(char *out, const peer_req_t *r, int status,
                     const char *body, int close);

/* peer_response() with another Content-Type ("application/json"). */
size_t peer_response_typed(char *out, const peer_req_t *r, int status,
                           const char *type, const char *body, int close);

/* The answer to a routed request that needs no computation (everything
 * but PEER_ROUTE_FIB), as peer_response() writes it. */
size_t peer_response_simple(char *out, const peer_req_t *r, peer_route_t route,
                            int close);

/* What peer_serve_next() found in the bytes read so far. */
typedef enum {
  PEER_NEXT_MORE,   /* no whole request: read more */
  PEER_NEXT_ANSWER, /* out holds the whole answer: send it */
  PEER_NEXT_FIB,    /* compute fib(*n), then send peer_fib_response() */
  PEER_NEXT_STATS,  /* GET /stats: out holds a 404; a peer that keeps
                       figures replaces it with its own answer */
  PEER_NEXT_BAD     /* out holds a 400: send it, then close */
} peer_next_t;

/* The read path both peers share: parses the next request out of
 * buf[0..len) (*used gets the bytes consumed) and routes it.  For an
 * answer that needs no computation it writes the answer into out
 * (PEER_RESPONSE_MAX bytes) and its length into *out_len.  *close says
 * whether to close after this answer (the request asked for it, the
 * stream is bad, or `stopping`); for PEER_NEXT_FIB, pass it on to
 * peer_fib_response(). */
peer_next_t peer_serve_next(peer_req_t *r, const char *buf, size_t len,
                            size_t *used, int stopping, char *out,
                            size_t *out_len, unsigned *n, int *close);

/* The answer to /fib/N with its result, as peer_response() writes it. */
size_t peer_fib_response(char *out, const peer_req_t *r, uint64_t result,
                         int close);

/* A peer's command line, [--port PORT] or --help (`what` describes the
 * peer in the help).  Returns -1 with *port set: go on; or, after
 * printing, the status to exit with: 0 for --help, 2 for a usage error. */
int peer_main_args(int argc, char **argv, const char *what, unsigned *port);

/* compute_server's fib(): returns 0 early once *abandoned is set. */
uint64_t peer_fib(unsigned n, atomic_int *abandoned);

#endif /* BENCH_SERVER_PEER_HTTP_H */
