/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http.c: a libFuzzer target over the example compute_server's request
 * handling (examples/compute_server/http.c and routes.c, compiled in).
 *
 * An input is the byte stream one client sends on one connection: one or
 * more requests, pipelined, well formed or not.  Every input is sent to two
 * servers running in this process, one in each mode of the example:
 *
 *   inline  (MODE_INLINE)  the bytes in one write; jobs run on the loop;
 *   hybrid  (MODE_HYBRID)  the bytes in up to 8 pieces, the server reading
 *                          each before the next is sent, so that requests
 *                          reach the parser split at odd places; jobs run
 *                          on a 2-worker tandem pool.
 *
 * and for one input in four, a third time to the hybrid server, where the
 * client then resets the connection instead of reading: a job may still be
 * queued or running, so conn_close's cancel and the abandoned-result path
 * of the after callback run.  The first two answers must be byte for byte
 * the same: neither where a job runs nor where the bytes were cut changes
 * what is said.  Exception: /stats, which reports the mode and live
 * counters.  (This comparison found H1: a long target's answer depended
 * on where TCP split it; http.c now answers 414 only after the head.
 * And H2: an oversized head with a bad byte past the limit got 400 in one
 * read, 431 when cut, as http-parser's fast path looks ahead; http.c now
 * never hands the parser a byte past the limit.)
 *
 * Why a real loopback socket, not a connection object fed through the
 * callbacks libuv would call: the server's input and output both go
 * through its uv_tcp_t (uv_accept, uv_read_start, uv_write, uv_shutdown,
 * uv_close), and the interesting endings -- the client's FIN while a job
 * runs, a reset, the drain after "Connection: close" -- are socket events.
 * A fake stream would have to reimplement those, and could only agree with
 * itself.  The cost is a connect per run, small next to a request's work.
 * Client and servers share one loop on the fuzzer's thread, so apart from
 * the pool's workers everything happens in a fixed order.
 *
 * Each run ends only when the client has closed, the server has closed
 * the connection, no job of the server is in flight (every after callback
 * ran) and the loop holds no handle beyond the servers' own: so ASan's
 * leak check sees a connection's memory freed within its input.  A run
 * that is not over after RUN_DEADLINE_MS aborts with what it waited for.
 *
 * Bounds.  The heavy routes are capped at compile time in this build
 * (tests/fuzz/CMakeLists.txt: FIB_MAX, PRIMES_MAX, PRIMES_GRAIN,
 * ABANDON_CHECK_N, which server.h and routes.c let a build override), so
 * /fib/40 gets 400 here as /fib/46 does in the real server, and no request
 * computes for more than a fraction of a millisecond.  The server options
 * main.c would set are set below, with --max-body and --max-header lowered
 * so that 413 and 431 are within reach of a short input.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <sys/ioctl.h>

#include "server.h"

#define POOL_WORKERS 2
#define MAX_BODY 1024
#define MAX_HEADER 2048
#define MAX_PIECES 8
#define RUN_DEADLINE_MS 10000
#define WATCHDOG_MS 100

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_shutdown_t shutdown;
  int connected; /* 1 once connected, negative on failure */
  int ended;     /* EOF or error on reading */
  int closed;    /* close callback ran */
  char *out;     /* everything the server sent */
  size_t out_len, out_cap;
} client_t;

typedef struct {
  server_t *srv;
  const char *name;
  const uint8_t *data;
  size_t size;
  size_t cuts[MAX_PIECES]; /* piece ends, the last one == size */
  unsigned npieces;
  int reset; /* reset the connection once everything was read */
  client_t cl;
  uint64_t deadline;
  const char *waiting; /* for the abort message */
} run_t;

static uv_loop_t loop;
static server_t servers[2]; /* indexed by server_mode_t */
static struct sockaddr_in addrs[2];
static uv_timer_t watchdog;
static unsigned baseline_handles;
static int show; /* TANDEM_FUZZ_SHOW=1: print each run's answers */

/* ----------------------------------------------------------- helpers */

static void count_handle(uv_handle_t *h, void *arg) {
  (void)h;
  (*(unsigned *)arg)++;
}

static unsigned loop_handles(void) {
  unsigned n = 0;

  uv_walk(&loop, count_handle, &n);
  return n;
}

static void on_watchdog(uv_timer_t *t) {
  (void)t; /* only wakes uv_run so that deadlines are checked */
}

static void stuck(run_t *r) {
  server_t *srv = r->srv;

  fprintf(stderr,
          "fuzz_http: %s run stuck for %d ms waiting for %s "
          "(client connected=%d ended=%d closed=%d; server conns=%s "
          "jobs_in_flight=%u; handles %u, baseline %u)\n",
          r->name, RUN_DEADLINE_MS, r->waiting, r->cl.connected, r->cl.ended,
          r->cl.closed, srv->conns != NULL ? "open" : "none",
          srv->jobs_in_flight, loop_handles(), baseline_handles);
  abort();
}

/* One turn of the loop, and the run's deadline. */
static void step(run_t *r) {
  uv_run(&loop, UV_RUN_ONCE);
  if (uv_hrtime() > r->deadline)
    stuck(r);
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;

  while (n-- > 0)
    h = (h ^ *p++) * 0x100000001b3ull;
  return h;
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Up to MAX_PIECES pieces, cut at places drawn from the input's hash: the
 * same input is always cut the same way. */
static void plan_pieces(run_t *r, uint64_t seed) {
  size_t cut, tmp;
  unsigned want, i, j;

  r->npieces = 0;
  want = r->size > 1 ? (unsigned)(splitmix(&seed) % MAX_PIECES) : 0;
  for (i = 0; i < want; i++) {
    cut = 1 + (size_t)(splitmix(&seed) % (r->size - 1));
    for (j = 0; j < r->npieces && r->cuts[j] != cut; j++)
      ;
    if (j == r->npieces)
      r->cuts[r->npieces++] = cut;
  }
  for (i = 1; i < r->npieces; i++) /* insertion sort, a few elements */
    for (j = i; j > 0 && r->cuts[j - 1] > r->cuts[j]; j--) {
      tmp = r->cuts[j];
      r->cuts[j] = r->cuts[j - 1];
      r->cuts[j - 1] = tmp;
    }
  r->cuts[r->npieces++] = r->size;
}

/* ------------------------------------------------------------ client */

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  client_t *cl = h->data;
  size_t cap;
  char *out;

  (void)suggested;
  if (cl->out_cap - cl->out_len < 4096) {
    cap = cl->out_cap ? 2 * cl->out_cap : 8192;
    out = realloc(cl->out, cap);
    if (out == NULL)
      abort();
    cl->out = out;
    cl->out_cap = cap;
  }
  *buf =
      uv_buf_init(cl->out + cl->out_len, (unsigned)(cl->out_cap - cl->out_len));
}

static void client_closed(uv_handle_t *h) {
  ((client_t *)h->data)->closed = 1;
}

static void client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  client_t *cl = s->data;

  (void)buf;
  if (nread > 0) {
    cl->out_len += (size_t)nread;
    return;
  }
  if (nread == 0)
    return;
  /* EOF: the server has answered and closed.  A reset is the server
   * closing with our input unread (e.g. after an error): also an end. */
  cl->ended = 1;
  uv_read_stop(s);
  if (!uv_is_closing((uv_handle_t *)s))
    uv_close((uv_handle_t *)s, client_closed);
}

static void client_connected(uv_connect_t *req, int status) {
  client_t *cl = req->handle->data;

  cl->connected = status == 0 ? 1 : status;
  if (status == 0)
    uv_read_start((uv_stream_t *)&cl->tcp, client_alloc, client_read);
}

static void client_shut(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status; /* the server may have reset us: the read side says so */
}

/* Writes at once, in this loop iteration: the piece is in the server's
 * socket when this returns.  Returns 0, or < 0 if the server is gone. */
static int client_send(run_t *r, const uint8_t *p, size_t n) {
  uv_buf_t buf;
  int w;

  while (n > 0) {
    buf = uv_buf_init((char *)p, (unsigned)n);
    w = uv_try_write((uv_stream_t *)&r->cl.tcp, &buf, 1);
    if (w == UV_EAGAIN) {
      r->waiting = "room in the socket";
      step(r);
      continue;
    }
    if (w < 0)
      return w; /* EPIPE, ECONNRESET: the server closed first */
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* ------------------------------------------------------------ waiting */

/* Has the server read everything sent so far (or closed)? */
static int server_has_read(server_t *srv) {
  int fd;
  int n;

  if (srv->conns == NULL)
    return 1;
  if (uv_fileno((uv_handle_t *)&srv->conns->tcp, &fd) != 0 ||
      ioctl(fd, FIONREAD, &n) != 0)
    return 1;
  return n == 0;
}

static int run_over(run_t *r) {
  return r->cl.closed && r->srv->conns == NULL && r->srv->jobs_in_flight == 0 &&
         loop_handles() == baseline_handles;
}

/* --------------------------------------------------------------- runs */

static void run(run_t *r) {
  server_t *srv = r->srv;
  uint64_t accepted = srv->accepted;
  size_t from;
  unsigned i;

  memset(&r->cl, 0, sizeof(r->cl));
  r->deadline = uv_hrtime() + (uint64_t)RUN_DEADLINE_MS * 1000000;
  uv_tcp_init(&loop, &r->cl.tcp);
  r->cl.tcp.data = &r->cl;
  if (uv_tcp_connect(&r->cl.connect, &r->cl.tcp,
                     (const struct sockaddr *)&addrs[srv->mode],
                     client_connected) != 0)
    abort();
  r->waiting = "connect and accept";
  while (r->cl.connected == 0 || srv->accepted == accepted)
    step(r);
  if (r->cl.connected < 0) {
    fprintf(stderr, "fuzz_http: connect: %s\n", uv_strerror(r->cl.connected));
    abort();
  }

  for (i = 0, from = 0; i < r->npieces; from = r->cuts[i++]) {
    if (r->cl.ended || client_send(r, r->data + from, r->cuts[i] - from) != 0)
      break; /* the server has closed: the rest is not wanted */
    r->waiting = "the server to read a piece";
    while (!server_has_read(srv))
      step(r);
  }

  if (show)
    fprintf(stderr, "%s: %u piece(s)%s\n", r->name, r->npieces,
            r->reset ? ", then a reset" : "");
  if (r->reset) {
    if (!uv_is_closing((uv_handle_t *)&r->cl.tcp))
      uv_tcp_close_reset(&r->cl.tcp, client_closed);
  } else if (!r->cl.ended) {
    /* Half-close: the server answers what was asked, then closes. */
    if (uv_shutdown(&r->cl.shutdown, (uv_stream_t *)&r->cl.tcp, client_shut) !=
        0)
      abort();
  }
  r->waiting = "the connection to end and its jobs to call back";
  while (!run_over(r))
    step(r);
  if (srv->nconns != 0) {
    fprintf(stderr, "fuzz_http: %s: nconns %u after the run\n", r->name,
            srv->nconns);
    abort();
  }
}

static void print_escaped(const char *label, const char *p, size_t n) {
  size_t i;

  fprintf(stderr, "%s (%zu bytes):\n", label, n);
  for (i = 0; i < n && i < 2048; i++) {
    if (p[i] == '\n')
      fputs("\\n\n", stderr);
    else if (p[i] == '\r')
      fputs("\\r", stderr);
    else if (p[i] >= 0x20 && p[i] < 0x7f)
      fputc(p[i], stderr);
    else
      fprintf(stderr, "\\x%02x", (unsigned char)p[i]);
  }
  fputc('\n', stderr);
}

static int mentions(const uint8_t *data, size_t size, const char *s) {
  size_t i, n = strlen(s);

  for (i = 0; i + n <= size; i++)
    if (memcmp(data + i, s, n) == 0)
      return 1;
  return 0;
}

/* /stats and /metrics report the mode, the pool and the time: their
 * answers differ between the two servers. */
static int mentions_stats(const uint8_t *data, size_t size) {
  return mentions(data, size, "/stats") || mentions(data, size, "/metrics");
}

/* ------------------------------------------------------------- set-up */

static void start_server(server_mode_t mode) {
  server_t *srv = &servers[mode];
  tandem_options_t topt;
  struct sockaddr_in any;
  int len = sizeof(addrs[mode]);
  int r;

  srv->loop = &loop;
  srv->mode = mode;
  srv->max_conns = 1024;
  srv->max_body = MAX_BODY;
  srv->max_header = MAX_HEADER;
  /* Never reached by a healthy run: a run that needs a timer to end is
   * stuck, and the deadline says so. */
  srv->header_timeout_ms = 60000;
  if (mode == MODE_HYBRID) {
    memset(&topt, 0, sizeof(topt));
    topt.workers = POOL_WORKERS;
    r = tandem_pool_new(&srv->pool, &topt);
    if (r == 0)
      r = tandem_init(&loop, &srv->tandem, srv->pool);
    if (r != 0) {
      fprintf(stderr, "fuzz_http: tandem: %s\n", uv_strerror(r));
      abort();
    }
  }
  uv_ip4_addr("127.0.0.1", 0, &any);
  if (http_listen(srv, (const struct sockaddr *)&any) != 0 ||
      uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&addrs[mode],
                         &len) != 0)
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  show = getenv("TANDEM_FUZZ_SHOW") != NULL;
  /* Writing to a socket the peer has closed must give EPIPE, not kill. */
  signal(SIGPIPE, SIG_IGN);
  if (uv_loop_init(&loop) != 0)
    abort();
  start_server(MODE_INLINE);
  start_server(MODE_HYBRID);
  uv_timer_init(&loop, &watchdog);
  uv_timer_start(&watchdog, on_watchdog, WATCHDOG_MS, WATCHDOG_MS);
  baseline_handles = loop_handles();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t h = fnv1a(data, size);
  run_t whole, split, reset;

  if (size == 0)
    return 0;

  memset(&whole, 0, sizeof(whole));
  whole.srv = &servers[MODE_INLINE];
  whole.name = "inline";
  whole.data = data;
  whole.size = size;
  whole.npieces = 1;
  whole.cuts[0] = size;
  run(&whole);

  memset(&split, 0, sizeof(split));
  split.srv = &servers[MODE_HYBRID];
  split.name = "hybrid";
  split.data = data;
  split.size = size;
  plan_pieces(&split, h);
  run(&split);

  if ((whole.cl.out_len != split.cl.out_len ||
       memcmp(whole.cl.out, split.cl.out, whole.cl.out_len) != 0) &&
      !mentions_stats(data, size)) {
    fprintf(stderr,
            "fuzz_http: the modes answered differently (hybrid in %u "
            "pieces)\n",
            split.npieces);
    print_escaped("inline", whole.cl.out, whole.cl.out_len);
    print_escaped("hybrid", split.cl.out, split.cl.out_len);
    abort();
  }
  if (show)
    print_escaped("answer", whole.cl.out, whole.cl.out_len);
  free(whole.cl.out);
  free(split.cl.out);

  if (h >> 62 == 0) {
    memset(&reset, 0, sizeof(reset));
    reset.srv = &servers[MODE_HYBRID];
    reset.name = "hybrid-reset";
    reset.data = data;
    reset.size = size;
    reset.reset = 1;
    plan_pieces(&reset, h ^ 0x5bd1e995);
    run(&reset);
    free(reset.cl.out);
  }
  if (show)
    fprintf(stderr,
            "hybrid server so far: %" PRIu64 " requests, %" PRIu64
            " jobs, %" PRIu64 " abandoned\n",
            servers[MODE_HYBRID].requests, servers[MODE_HYBRID].jobs_queued,
            servers[MODE_HYBRID].abandoned);
  return 0;
}
