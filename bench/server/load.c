/* SPDX-License-Identifier: MIT */
/*
 * load: the load driver of the HTTP server benchmark (bench/server/).
 *
 * It starts each server peer on an ephemeral loopback port, drives it from
 * this one process (a libuv client: one thread, one loop), stops it with
 * SIGTERM and checks that it exits with status 0.  The peers serve the same
 * two routes, GET /ping ("pong") and GET /fib/N (naive recursive
 * Fibonacci, the same code everywhere):
 *
 *   hybrid     examples/compute_server --mode hybrid --workers W: sockets
 *              on a libuv loop, /fib on a tandem pool (workers at its
 *              default --worker-nice 5)
 *   inline     examples/compute_server --mode inline: one thread does all
 *   threads    peer_threads: a thread per connection, blocking sockets
 *   uvwork     peer_uvwork: a libuv loop, /fib on uv_queue_work with
 *              UV_THREADPOOL_SIZE=W
 *
 * and, with --external (or named in --peers), the servers a person
 * choosing a runtime would write instead, each with the same routes and
 * bodies and --workers W (bench/peers/; cmake --build build --target
 * bench_server_peers builds them; one that is not built is skipped, not
 * failed, with the line that gets it):
 *
 *   go         Go net/http, fib in the handler goroutine, GOMAXPROCS=W
 *   node       Node http, /fib on a piscina pool of W worker threads
 *   tokio      Rust Tokio + hyper, /fib on spawn_blocking, W workers
 *
 * and three scheduling variants of hybrid, which run only the loaded
 * phase, to measure how much the kernel favours the loop thread when it
 * wakes and what would make it favour it more:
 *
 *   hybrid/nice0  --worker-nice 0: workers at the loop thread's priority
 *   hybrid/slice  hybrid, and the driver gives the server's loop thread a
 *              0.1 ms EEVDF slice (sched_setattr sched_runtime, Linux
 *              6.12+): a thread with a shorter slice preempts on wake-up
 *   hybrid/idle   hybrid, and the driver moves the workers to SCHED_IDLE:
 *              any normal thread that wakes preempts them at once
 *
 * and a control, which also runs only the loaded phase: how far the busy
 * CPUs alone stretch the /ping tail, with nothing of tandem's running:
 *
 *   hybrid/hogs   hybrid with no /fib load, while W processes of the
 *              driver's spin in SCHED_IDLE: the CPUs are as busy as under
 *              the /fib load, but the guest kernel preempts a spinner the
 *              moment the loop thread (or the client) wakes.  What is left
 *              of the tail here is the machine's (the hypervisor's vCPU
 *              scheduling, interrupts), not the runtime's.
 *
 * Every server runs from start to end; each measurement below runs in
 * ROUNDS rounds that alternate over the peers (samples pooled, throughput
 * of the flood the median round), so that the machine's other load, which
 * changes over a run, hits every peer alike.  Each phase is bounded in
 * count and in time (a watchdog ends one that overruns):
 *
 *   fib-idle   one connection, a few /fib/N one after another: the cost
 *              of one job on an idle server (also warms the pool up)
 *   idle       one connection, one /ping every I ms (paced; a ping still
 *              unanswered at a tick is followed by the next at once when
 *              its answer comes): latency p50/p99/p99.9
 *   flood      C connections sending /ping back to back: requests/s with
 *              no heavy work
 *   loaded     K connections sending /fib/N back to back (K = 2 W keeps
 *              every worker busy with one job queued behind it) and the
 *              same paced /ping connection: /ping latency while the CPUs
 *              are busy, and /fib requests/s
 *   wrk        if wrk is installed: /ping alone, then a mix of /fib/N
 *              (P %) and /ping, over wrk -t1 -c16 (bench/server/mixed.lua);
 *              in this closed loop the mix's latency is mostly the /fib
 *              queue (Little's law), so its req/s is the figure to compare
 *
 * After the loaded rounds the driver asks each server for GET /stats: the
 * "metrics" object compute_server (hybrid and its variants; inline has
 * none: null) and peer_uvwork give, their /fib jobs' wait (queued ->
 * started) and run percentiles, cumulative since the server started, so
 * the few fib-idle jobs are in them too; a server without it (threads,
 * inline) is skipped.  Beside them, the client's latency of every /fib
 * answer of the loaded rounds (latency >= wait + run, plus the network and
 * the loop).
 *
 * Latency is from just before the request is written to when the whole
 * answer has been read.  The paced client does not correct for
 * coordinated omission: a ping that waits behind a slow one is timed from
 * when it was actually sent, which flatters a peer that blocks (inline),
 * never hybrid.  N is calibrated so one /fib takes about 10 ms here.
 *
 * CPU and memory.  The server process's CPU time (/proc/PID/stat: every
 * thread, those that exited too) over the loaded windows, divided by the
 * /fib answers in them, is its CPU per /fib: what one job costs in that
 * language and runtime, the paced /pings (about one per ms) included.  Set
 * beside fib_local_ms (C, one core, here) it tells a slower fib from a
 * slower runtime.  RSS (VmRSS) is read after the loaded rounds, the peak
 * (VmHWM) as the server stops.  Every server is one process; pools are
 * threads of it (Node's piscina workers too), so both count them all.
 *
 * Scheduling.  During each window the driver reads
 * /proc/PID/task/TID/schedstat of the server's threads and of itself: the
 * loop thread's CPU use and its mean run-queue wait per time it got the
 * CPU -- the direct measure of "the kernel lets the loop thread in when
 * it wakes" -- and the workers' CPU use; /proc/PID/task/TID/stat gives
 * each thread's nice value.  The driver itself runs at nice -10 when
 * allowed (--client-nice), as if the client were another machine: its own
 * wake-ups then do not compete with the server's threads.  Servers are
 * started at nice 0; wrk inherits the driver's nice.
 *
 *   load [--quick | --tiny] [--json FILE] [--workers W] [--fib N]
 *        [--fib-conns K] [--ping-conns C] [--ping-interval-ms I]
 *        [--client-nice NICE] [--peers LIST] [--external] [--no-wrk]
 *        [--wrk PATH] [--wrk-script FILE] [--compute-server PATH]
 *        [--go-server PATH] [--node-server PATH] [--tokio-server PATH]
 *
 * Its report is JSON only (on stdout, or --json FILE), progress goes to
 * stderr; bench/tandem-bench --only server runs it and prints the tables.
 * bench/server/run.sh's header documents the JSON.
 */
#define _GNU_SOURCE /* memmem */
#include "load.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <uv.h>

#include "cli.h"
#include "machine.h"
#include "peer_http.h"
#include "stats.h"

#ifndef LOAD_COMPUTE_SERVER
#define LOAD_COMPUTE_SERVER "compute_server"
#endif
#ifndef LOAD_PEER_THREADS
#define LOAD_PEER_THREADS "peer_threads"
#endif
#ifndef LOAD_PEER_UVWORK
#define LOAD_PEER_UVWORK "peer_uvwork"
#endif
#ifndef LOAD_PEER_GO
#define LOAD_PEER_GO "go_server"
#endif
#ifndef LOAD_PEER_NODE
#define LOAD_PEER_NODE "server.js"
#endif
#ifndef LOAD_NODE
#define LOAD_NODE "node"
#endif
#ifndef LOAD_PEER_TOKIO
#define LOAD_PEER_TOKIO "tokio_server"
#endif
#ifndef LOAD_PEERS_HINT
#define LOAD_PEERS_HINT                                                        \
  "scripts/install-deps.sh --peers && cmake --build build --target "           \
  "bench_server_peers"
#endif
#ifndef LOAD_TOKIO_HINT
#define LOAD_TOKIO_HINT                                                        \
  "scripts/install-deps.sh --peers && bench/peers/rust/build.sh build"
#endif
#ifndef LOAD_WRK_SCRIPT
#define LOAD_WRK_SCRIPT "mixed.lua"
#endif

#define START_TIMEOUT_MS 5000 /* a server prints its port by then */
#define STOP_TIMEOUT_MS 5000  /* and exits by then after SIGTERM */
#define TARGET_MS 10.0        /* one /fib/N takes about this */
#define STATS_TIMEOUT_MS 2000 /* a server answers GET /stats by then */
#define STATS_MAX 65536       /* the longest /stats answer read */
#define FIB_LAT_CAP 100000    /* /fib latencies kept per loaded round */

/* JSON keys, and the names in the tables. */
const char *const peer_keys[NPEERS] = {
    "hybrid",       "inline",       "threads",           "uvwork",
    "go",           "node",         "tokio",             "hybrid_nice0",
    "hybrid_slice", "hybrid_sched_idle", "hybrid_hogs"};
const char *const peer_titles[NPEERS] = {
    "hybrid",       "inline",       "threads",     "uvwork",
    "go",           "node",         "tokio",       "hybrid/nice0",
    "hybrid/slice", "hybrid/idle",  "hybrid/hogs"};
/* hybrid and its variants back to back, so the machine changes least. */
static const int run_order[NPEERS] = {
    PEER_HYBRID, PEER_HOGS,    PEER_NICE0,  PEER_SLICE,
    PEER_IDLE,   PEER_INLINE,  PEER_THREADS, PEER_UVWORK,
    PEER_GO,     PEER_NODE,    PEER_TOKIO};

cfg_t cfg;
result_t res[NPEERS];
double fib_local_ms;
static uv_loop_t *loop;
static uint64_t fib_expect;
static char fib_req[96];

/* ----------------------------------------------------------------- wrk */

static double json_get(const char *s, const char *key) {
  char pat[64];
  const char *p;

  snprintf(pat, sizeof(pat), "\"%s\":", key);
  p = strstr(s, pat);
  return p != NULL ? strtod(p + strlen(pat), NULL) : NAN;
}

/* wrk -t1 for `secs` with `pct` % of /fib/N; fills *o from mixed.lua's
 * WRK_JSON line.  Returns 0, or -1 with a reason in note. */
static int run_wrk(int port, unsigned secs, unsigned pct, wrk_t *o, char *note,
                   size_t note_len) {
  char conns[16], dur[16], url[64], n[16], p[16];
  char *argv[] = {
      (char *)cfg.wrk,        "-t1", conns, dur, "--timeout", "5s", "-s",
      (char *)cfg.wrk_script, url,   "--",  n,   p,           NULL};
  const char *line;
  proc_t pr;
  int r, code;

  memset(o, 0, sizeof(*o));
  snprintf(conns, sizeof(conns), "-c%u", cfg.wrk_conns);
  snprintf(dur, sizeof(dur), "-d%us", secs);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
  snprintf(n, sizeof(n), "%u", cfg.fib_n);
  snprintf(p, sizeof(p), "%u", pct);
  r = proc_spawn(&pr, loop, argv, NULL, 0);
  if (r == 0 && proc_wait_exit(&pr, secs * 1000u + 15000) != 0)
    r = UV_ETIMEDOUT;
  code = proc_stop(&pr, STOP_TIMEOUT_MS);
  line = strstr(pr.buf, "WRK_JSON ");
  if (r != 0 || code != 0 || line == NULL) {
    snprintf(note, note_len, "wrk failed (%s, exit %d)",
             r != 0 ? uv_strerror(r) : "no WRK_JSON line", code);
    proc_release(&pr);
    return -1;
  }
  o->ok = 1;
  o->requests = json_get(line, "requests");
  o->rps = o->requests / (json_get(line, "duration_us") / 1e6);
  o->errors = json_get(line, "connect_errors") + json_get(line, "read_errors") +
              json_get(line, "write_errors") + json_get(line, "status_errors") +
              json_get(line, "timeouts");
  o->mean = json_get(line, "lat_mean_us");
  o->max = json_get(line, "lat_max_us");
  o->p50 = json_get(line, "lat_p50_us");
  o->p90 = json_get(line, "lat_p90_us");
  o->p99 = json_get(line, "lat_p99_us");
  o->p999 = json_get(line, "lat_p999_us");
  proc_release(&pr);
  return 0;
}

/* -------------------------------------------------------------- /stats */

/* GET `path` from 127.0.0.1:port on a blocking socket (the server is
 * another process; this thread waits at most STATS_TIMEOUT_MS per call):
 * the whole answer into buf, NUL-terminated.  Returns the status code of a
 * complete answer, or -1. */
static int http_get(int port, const char *path, char *buf, size_t cap) {
  struct timeval tv = {STATS_TIMEOUT_MS / 1000, STATS_TIMEOUT_MS % 1000 * 1000};
  struct sockaddr_in addr;
  char req[128];
  size_t len = 0;
  ssize_t n;
  int status = -1;
  int fd;

  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  n = snprintf(req, sizeof(req),
               "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Connection: close\r\n\r\n",
               path);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0 &&
      connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
      send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
    /* "Connection: close": the answer ends where the stream does. */
    while (len + 1 < cap && (n = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
      len += (size_t)n;
    buf[len] = '\0';
    if (n == 0 && sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
      status = -1;
  }
  close(fd);
  return status;
}

/* The first object "key":{...} in s (one with no object inside), as a
 * string of its own in out; 0, or -1 if there is none. */
static int json_object(const char *s, const char *key, char *out, size_t cap) {
  char pat[64];
  const char *p, *end;

  snprintf(pat, sizeof(pat), "\"%s\":{", key);
  p = strstr(s, pat);
  if (p == NULL || (end = strchr(p, '}')) == NULL ||
      (size_t)(end - p) + 2 > cap)
    return -1;
  memcpy(out, p, (size_t)(end - p) + 1);
  out[end - p + 1] = '\0';
  return 0;
}

static void jobtime_parse(const char *obj, jobtime_t *t) {
  t->count = json_get(obj, "count");
  t->mean = json_get(obj, "mean_ns");
  t->max = json_get(obj, "max_ns");
  t->p50 = json_get(obj, "p50_ns");
  t->p90 = json_get(obj, "p90_ns");
  t->p99 = json_get(obj, "p99_ns");
  t->p999 = json_get(obj, "p999_ns");
}

/* Reads the /fib jobs' wait and run from the server's GET /stats
 * "metrics", if it has them (has_jobtime); says nothing otherwise: a
 * server without them (inline, threads) is simply not in that table. */
static void read_jobtime(int p) {
  static char buf[STATS_MAX];
  char obj[1024];
  result_t *r = &res[p];
  const char *metrics;

  r->wait.count = r->run.count = NAN;
  if (http_get(r->port, "/stats", buf, sizeof(buf)) != 200)
    return;
  /* The object: compute_server also counts requests to an endpoint
   * called "metrics" (a number), and says "metrics":null without a pool. */
  metrics = strstr(buf, "\"metrics\":{");
  if (metrics == NULL || json_object(metrics, "wait", obj, sizeof(obj)) != 0)
    return;
  jobtime_parse(obj, &r->wait);
  if (json_object(metrics, "run", obj, sizeof(obj)) == 0)
    jobtime_parse(obj, &r->run);
  else
    r->run.count = r->run.p50 = r->run.p90 = r->run.p99 = r->run.p999 =
        r->run.mean = r->run.max = NAN;
  r->has_jobtime = !isnan(r->wait.count);
}

/* ------------------------------------------------------- one peer's run */

static void progress(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void progress(const char *fmt, ...) {
  va_list ap;

  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fflush(stderr);
}

static void note_phase(result_t *r, const char *phase, const phase_t *ph) {
  r->errors += ph->errors;
  r->unfinished += ph->unfinished;
  if (ph->errors > 0 && r->note[0] == '\0')
    snprintf(r->note, sizeof(r->note), "%s: %u error(s), first: %s", phase,
             ph->errors, ph->first_error);
}

/* A phase with what every phase of this run shares. */
static phase_t *new_phase(int port, int pid) {
  phase_t *ph = phase_new(loop, port, pid);

  if (ph == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  ph->interval_ms = cfg.interval_ms;
  ph->drain_ms = cfg.drain_ms;
  ph->fib_req = fib_req;
  ph->fib_expect = fib_expect;
  return ph;
}

static int start_server(int peer, proc_t *pr, char *note, size_t note_len) {
  static char assign[48];
  char w[16];
  char *argv[12] = {NULL};
  char **env = NULL;
  int i = 0, r;

  snprintf(w, sizeof(w), "%u", cfg.workers);
  switch (peer) {
  case PEER_THREADS:
    argv[i++] = LOAD_PEER_THREADS;
    argv[i++] = "--port";
    argv[i++] = "0";
    break;
  case PEER_UVWORK:
    argv[i++] = LOAD_PEER_UVWORK;
    argv[i++] = "--port";
    argv[i++] = "0";
    snprintf(assign, sizeof(assign), "UV_THREADPOOL_SIZE=%u", cfg.workers);
    env = proc_env_with(assign);
    break;
  case PEER_GO:
  case PEER_TOKIO:
  case PEER_NODE: /* the same options, the same start line */
    if (peer == PEER_NODE) {
      argv[i++] = (char *)cfg.node;
      argv[i++] = (char *)cfg.node_server;
    } else {
      argv[i++] = (char *)(peer == PEER_GO ? cfg.go_server : cfg.tokio_server);
    }
    argv[i++] = "--port";
    argv[i++] = "0";
    argv[i++] = "--host";
    argv[i++] = "127.0.0.1";
    argv[i++] = "--workers";
    argv[i++] = w;
    break;
  default: /* compute_server */
    argv[i++] = (char *)cfg.compute_server;
    argv[i++] = "--port";
    argv[i++] = "0";
    argv[i++] = "--mode";
    argv[i++] = peer == PEER_INLINE ? "inline" : "hybrid";
    if (peer != PEER_INLINE) {
      argv[i++] = "--workers";
      argv[i++] = w;
    }
    if (peer == PEER_NICE0 && cfg.worker_nice_flag) {
      argv[i++] = "--worker-nice";
      argv[i++] = "0";
    }
    if (cfg.quiet_flag) /* its log would interleave with our report */
      argv[i++] = "--quiet";
    break;
  }
  r = proc_spawn(pr, loop, argv, env, cfg.boosted ? cfg.client_nice : 0);
  free(env);
  if (r == 0 && proc_wait_port(pr, START_TIMEOUT_MS) != 0)
    r = UV_ETIMEDOUT;
  if (r == 0 && proc_port(pr) <= 0)
    r = UV_EIO;
  if (r != 0) {
    snprintf(note, note_len, "%s did not start: %s", argv[0],
             r == UV_EIO ? "it exited" : uv_strerror(r));
    proc_stop(pr, STOP_TIMEOUT_MS);
    proc_release(pr);
    return -1;
  }
  /* The variants the server has no option for: the driver applies them. */
  r = 0;
  if (peer == PEER_SLICE)
    r = proc_set_slice(pr->proc.pid, pr->proc.pid, LOOP_SLICE_NS);
  else if (peer == PEER_IDLE)
    r = proc_workers_sched_idle(pr->proc.pid);
  if (r < 0)
    snprintf(note, note_len, "could not change the scheduling: %s",
             strerror(-r));
  return proc_port(pr);
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n > 0 ? n : 1, size);

  if (p == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

/* Appends n latencies to a pooled sample. */
static void sample_add(sample_t *s, const double *v, size_t n) {
  if (s->n + n > s->cap) {
    s->cap = 2 * (s->n + n);
    s->v = realloc(s->v, s->cap * sizeof(double));
    if (s->v == NULL) {
      fprintf(stderr, "out of memory\n");
      exit(1);
    }
  }
  memcpy(s->v + s->n, v, n * sizeof(double));
  s->n += n;
}

/* Appends a phase's /ping samples to a pooled sample. */
static void sample_take(sample_t *s, const phase_t *ph) {
  sample_add(s, ph->ping_lat, ph->n_ping_lat);
}

static int have_program(const char *name);

/* An external server that is not built or has no runtime: why, in note,
 * with the line that gets it; 0 if it is there. */
static int external_missing(int p, char *note, size_t len) {
  static char modules[4096];
  const char *path = p == PEER_GO     ? cfg.go_server
                     : p == PEER_NODE ? cfg.node_server
                                      : cfg.tokio_server;
  const char *slash;

  if (p == PEER_NODE && !have_program(cfg.node)) {
    snprintf(note, len, "no %s (Node.js): %s", cfg.node, LOAD_PEERS_HINT);
    return 1;
  }
  if (access(path, p == PEER_NODE ? R_OK : X_OK) != 0) {
    snprintf(note, len, "%s is not built: %s", path,
             p == PEER_TOKIO ? LOAD_TOKIO_HINT : LOAD_PEERS_HINT);
    return 1;
  }
  /* server.js finds piscina in node_modules beside it (npm ci). */
  slash = strrchr(path, '/');
  snprintf(modules, sizeof(modules), "%.*snode_modules/piscina/package.json",
           slash != NULL ? (int)(slash - path + 1) : 0, path);
  if (p == PEER_NODE && access(modules, R_OK) != 0) {
    snprintf(note, len, "no piscina beside %s (npm ci): %s", path,
             LOAD_PEERS_HINT);
    return 1;
  }
  return 0;
}

/* Starts a server and runs fib-idle on it: the cost of one job on an idle
 * server, and its pool warmed up. */
static void start_peer(int p) {
  result_t *r = &res[p];
  phase_t *ph;

  if (IS_EXTERNAL(p) && external_missing(p, r->note, sizeof(r->note))) {
    r->skipped = 1;
    progress("[%s] %s\n", peer_titles[p], r->note);
    return;
  }
  progress("[%s] starting\n", peer_titles[p]);
  r->port = start_server(p, &r->pr, r->note, sizeof(r->note));
  if (r->port < 0) {
    progress("[%s] %s\n", peer_titles[p], r->note);
    return;
  }
  r->pid = r->pr.proc.pid;
  r->ran = 1;

  ph = new_phase(r->port, r->pid);
  ph->n_fib = 1;
  ph->max_fibs = cfg.fib_idle_count;
  ph->window_ms = 5000;
  ph->cap_fib_lat = cfg.fib_idle_count;
  ph->fib_lat = xcalloc(ph->cap_fib_lat, sizeof(double));
  phase_run(ph);
  r->fib_idle_ms = stats_median(ph->fib_lat, ph->n_fib_lat) / 1e3;
  note_phase(r, "fib-idle", ph);
  phase_free(ph);
  /* After a job: libuv starts its pool threads on the first one. */
  r->worker_nice = proc_workers_nice(r->pid);
}

/* One round of the idle phase: paced pings, nothing else. */
static void round_idle(int p, size_t pings) {
  result_t *r = &res[p];
  phase_t *ph = new_phase(r->port, r->pid);

  ph->n_paced = 1;
  ph->max_pings = pings;
  ph->window_ms = pings * cfg.interval_ms * 3 + 2000;
  ph->cap_ping_lat = pings;
  ph->ping_lat = xcalloc(pings, sizeof(double));
  phase_run(ph);
  sample_take(&r->idle_lat, ph);
  sched_add(&r->a_idle, &ph->snap_open, &ph->snap_close, r->pid);
  note_phase(r, "idle", ph);
  phase_free(ph);
}

/* One round of the flood phase: pings back to back on C connections. */
static void round_flood(int p, uint64_t ms) {
  result_t *r = &res[p];
  phase_t *ph = new_phase(r->port, r->pid);

  ph->n_flood = cfg.ping_conns;
  ph->max_pings = 100000000;
  ph->window_ms = ms;
  phase_run(ph);
  if (r->n_flood < ROUNDS)
    r->flood_rps[r->n_flood++] =
        (double)ph->pings_in_window / phase_window_secs(ph);
  sched_add(&r->a_flood, &ph->snap_open, &ph->snap_close, r->pid);
  note_phase(r, "flood", ph);
  phase_free(ph);
}

/* One round of the loaded phase: K /fib connections and the paced pings
 * (hybrid/hogs: no /fib, W spinners instead). */
static void round_loaded(int p, uint64_t ms) {
  result_t *r = &res[p];
  phase_t *ph = new_phase(r->port, r->pid);
  int spinners[BENCH_MAX_WORKERS];
  double secs;
  int err;

  ph->n_paced = 1;
  ph->n_fib = p == PEER_HOGS ? 0 : cfg.fib_conns;
  ph->max_pings = ms / cfg.interval_ms + 1000;
  ph->max_fibs = 10000000;
  ph->warm_ms = cfg.warm_ms;
  ph->window_ms = ms;
  ph->cap_ping_lat = (size_t)ph->max_pings;
  ph->ping_lat = xcalloc(ph->cap_ping_lat, sizeof(double));
  ph->cap_fib_lat = FIB_LAT_CAP;
  ph->fib_lat = xcalloc(ph->cap_fib_lat, sizeof(double));
  if (p == PEER_HOGS) {
    err = proc_spinners_start(cfg.workers, spinners);
    if (err != 0) {
      snprintf(r->note, sizeof(r->note), "no spinners: %s", strerror(-err));
      phase_free(ph);
      return;
    }
  }
  phase_run(ph);
  if (p == PEER_HOGS)
    proc_spinners_stop(cfg.workers, spinners);
  sample_add(&r->fib_lat, ph->fib_lat, ph->n_fib_lat);
  secs = phase_window_secs(ph);
  if (!isnan(secs) && p != PEER_HOGS) { /* hogs: no /fib rate to report */
    r->fibs += ph->fibs_in_window;
    r->fib_secs += secs;
  }
  sample_take(&r->loaded_lat, ph);
  sched_add(&r->a_loaded, &ph->snap_open, &ph->snap_close, r->pid);
  note_phase(r, "loaded", ph);
  phase_free(ph);
}

static void stop_peer(int p) {
  result_t *r = &res[p];
  double rss; /* r->rss stays the one read after the loaded rounds */

  proc_rss(r->pid, &rss, &r->rss_peak);
  r->exit_code = proc_stop(&r->pr, STOP_TIMEOUT_MS);
  proc_release(&r->pr);
  if (r->exit_code != 0)
    progress("[%s] exit code %d after SIGTERM%s\n", peer_titles[p],
             r->exit_code,
             r->exit_code < 0 ? " (killed: it did not exit)" : "");
}

static void summarize_peer(int p) {
  result_t *r = &res[p];

  if (!r->ran) {
    r->worker_nice = INT_MIN;
    r->fib_idle_ms = NAN;
    r->rss = r->rss_peak = NAN;
  }
  lat_summarize(r->idle_lat.v, r->idle_lat.n, &r->idle);
  lat_summarize(r->loaded_lat.v, r->loaded_lat.n, &r->loaded);
  lat_summarize(r->fib_lat.v, r->fib_lat.n, &r->loaded_fib);
  r->fib_rps = r->fib_secs > 0 ? (double)r->fibs / r->fib_secs : NAN;
  r->cpu_ms_per_fib =
      r->fibs > 0 && r->a_loaded.ok
          ? (double)r->a_loaded.proc_cpu_ns / 1e6 / (double)r->fibs
          : NAN;
  r->ping_rps = stats_median(r->flood_rps, r->n_flood);
  sched_get(&r->a_idle, &r->s_idle);
  sched_get(&r->a_flood, &r->s_flood);
  sched_get(&r->a_loaded, &r->s_loaded);
}

/* Every server up at once; each measurement in ROUNDS rounds that
 * alternate over the peers, so a change in the machine's other load hits
 * them alike; the servers not being measured sit idle. */
static void run_all(void) {
  unsigned round;
  int i, p;

  for (i = 0; i < NPEERS; i++)
    if (res[run_order[i]].selected)
      start_peer(run_order[i]);

  progress("idle /ping: %u rounds of %zu pings, one every %u ms\n", ROUNDS,
           cfg.idle_pings / ROUNDS, cfg.interval_ms);
  for (round = 0; round < ROUNDS; round++)
    for (i = 0; i < NPEERS; i++)
      if (p = run_order[i], res[p].ran && !IS_VARIANT(p))
        round_idle(p, cfg.idle_pings / ROUNDS);

  progress("/ping throughput: %u rounds of %.1f s, %u connections\n", ROUNDS,
           (double)cfg.flood_ms / ROUNDS / 1e3, cfg.ping_conns);
  for (round = 0; round < ROUNDS; round++)
    for (i = 0; i < NPEERS; i++)
      if (p = run_order[i], res[p].ran && !IS_VARIANT(p))
        round_flood(p, cfg.flood_ms / ROUNDS);

  progress("loaded: %u rounds of %.1f s, %u connections of /fib/%u + the "
           "paced /ping\n",
           ROUNDS, (double)cfg.loaded_ms / ROUNDS / 1e3, cfg.fib_conns,
           cfg.fib_n);
  for (round = 0; round < ROUNDS; round++)
    for (i = 0; i < NPEERS; i++)
      if (p = run_order[i], res[p].ran)
        round_loaded(p, cfg.loaded_ms / ROUNDS);
  /* Before wrk adds jobs of its own: the wait and run of the loaded
   * rounds' jobs (and of the few fib-idle ones); the memory they left. */
  for (i = 0; i < NPEERS; i++) {
    if (p = run_order[i], !res[p].ran)
      continue;
    read_jobtime(p);
    proc_rss(res[p].pid, &res[p].rss, &res[p].rss_peak);
  }

  /* /ping alone first, then the mix: each server rests between them. */
  for (i = 0; i < NPEERS && cfg.use_wrk; i++) {
    p = run_order[i];
    if (!res[p].ran || IS_VARIANT(p))
      continue;
    progress("[%s] wrk: /ping only for %u s\n", peer_titles[p],
             cfg.wrk_ping_secs);
    (void)run_wrk(res[p].port, cfg.wrk_ping_secs, 0, &res[p].ping, res[p].note,
                  sizeof(res[p].note));
  }
  for (i = 0; i < NPEERS && cfg.use_wrk; i++) {
    p = run_order[i];
    if (!res[p].ran || IS_VARIANT(p))
      continue;
    progress("[%s] wrk: %u%% /fib/%u, the rest /ping, for %u s\n",
             peer_titles[p], cfg.wrk_pct, cfg.fib_n, cfg.wrk_secs);
    (void)run_wrk(res[p].port, cfg.wrk_secs, cfg.wrk_pct, &res[p].mixed,
                  res[p].note, sizeof(res[p].note));
  }

  for (p = 0; p < NPEERS; p++) {
    if (res[p].ran)
      stop_peer(p);
    summarize_peer(p); /* NaN for what was not measured */
  }
}

/* ---------------------------------------------------------------- main */

/* Picks N so that one fib(N) takes about TARGET_MS here (fastest of 3). */
static void calibrate_fib(void) {
  atomic_int no = 0;
  double best_err = INFINITY, ms, fastest, err;
  uint64_t t0, v = 0;
  unsigned n, rep;

  for (n = 20; n <= PEER_FIB_MAX; n++) {
    fastest = INFINITY;
    for (rep = 0; rep < 3; rep++) {
      t0 = stats_now_ns();
      v = peer_fib(n, &no);
      ms = (double)(stats_now_ns() - t0) / 1e6;
      fastest = fmin(fastest, ms);
    }
    err = fabs(log(fastest / TARGET_MS));
    if (err < best_err) {
      best_err = err;
      cfg.fib_n = n;
      fib_local_ms = fastest;
      fib_expect = v;
    }
    if (fastest > 2 * TARGET_MS)
      break;
  }
}

/* Seconds of CPU the whole machine has been busy (/proc/stat), and in
 * *ours those of this process and its waited-for children. */
static double cpu_busy_secs(double *ours) {
  unsigned long long v[8] = {0};
  struct rusage a, b;
  double hz = (double)sysconf(_SC_CLK_TCK);
  FILE *f = fopen("/proc/stat", "r");
  int n = 0;

  if (f != NULL) {
    n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
               &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
  }
  getrusage(RUSAGE_SELF, &a);
  getrusage(RUSAGE_CHILDREN, &b);
  *ours = (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec +
                   b.ru_stime.tv_sec) +
          (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec +
                   b.ru_utime.tv_usec + b.ru_stime.tv_usec) /
              1e6;
  if (n != 8)
    return NAN;
  /* user nice system (idle iowait) irq softirq steal */
  return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
}

static double loadavg(void) {
  double v = NAN;
  FILE *f = fopen("/proc/loadavg", "r");

  if (f != NULL) {
    if (fscanf(f, "%lf", &v) != 1)
      v = NAN;
    fclose(f);
  }
  return v;
}

/* Does the file at path contain s?  (Is an option in a binary's usage.) */
static int file_contains(const char *path, const char *s) {
  size_t n = strlen(s), len;
  char *buf;
  FILE *f = fopen(path, "rb");
  int found = 0;

  if (f == NULL)
    return 0;
  buf = malloc(1 << 22);
  if (buf != NULL) {
    len = fread(buf, 1, 1 << 22, f);
    found = memmem(buf, len, s, n) != NULL;
    free(buf);
  }
  fclose(f);
  return found;
}

/* Is `name` an executable (a path, or found on PATH)? */
static int have_program(const char *name) {
  char path[4096];
  const char *p, *e;

  if (strchr(name, '/') != NULL)
    return access(name, X_OK) == 0;
  for (p = getenv("PATH"); p != NULL && *p != '\0'; p = *e ? e + 1 : e) {
    e = strchr(p, ':');
    if (e == NULL)
      e = p + strlen(p);
    snprintf(path, sizeof(path), "%.*s/%s", (int)(e - p), p, name);
    if (access(path, X_OK) == 0)
      return 1;
  }
  return 0;
}

static const char usage[] =
    "usage: load [--quick | --tiny] [--json FILE] [--workers W] [--fib N]\n"
    "            [--fib-conns K] [--ping-conns C] [--ping-interval-ms I]\n"
    "            [--client-nice NICE] [--peers LIST] [--external] [--no-wrk]\n"
    "            [--wrk PATH] [--wrk-script FILE] [--compute-server PATH]\n"
    "            [--go-server PATH] [--node-server PATH] [--tokio-server "
    "PATH]\n"
    "       load --help\n"
    "LIST: comma-separated, of hybrid inline threads uvwork go node tokio\n"
    "      hybrid_nice0 hybrid_slice hybrid_sched_idle hybrid_hogs [all but\n"
    "      go, node and tokio]\n"
    "--external: also the Go, Node and Tokio servers (bench/peers/; one not\n"
    "      built is skipped, with the line that builds it)\n"
    "Starts each server, measures /ping latency under a /fib load and\n"
    "throughput, and writes a JSON report (stdout, or FILE) that\n"
    "bench/tandem-bench --only server prints as tables; bench/server/run.sh's\n"
    "header explains the keys.  --tiny: a smoke test, no wrk.\n";

/* Marks the peers of a comma-separated list; -1 for an unknown name. */
static int select_peers(const char *list) {
  unsigned bits;
  int p;

  if (bench_cli_pick(list, peer_keys, NPEERS, &bits) != 0)
    return -1;
  for (p = 0; p < NPEERS; p++)
    res[p].selected = (bits >> p) & 1;
  return 0;
}

static const char *peers_list; /* --peers */

/* load's own options, as bench_cli_option_fn. */
static int own_option(void *ctx, const char *name, const char *value) {
  static const struct {
    const char *name;
    long min, max;
    unsigned *to;
  } counts[] = {
      {"--fib", 1, PEER_FIB_MAX, &cfg.fib_n},
      {"--fib-conns", 1, 256, &cfg.fib_conns},
      {"--ping-conns", 1, 256, &cfg.ping_conns},
      {"--ping-interval-ms", 1, 1000, &cfg.interval_ms},
  };
  const char **strings[] = {
      &peers_list,    &cfg.wrk,         &cfg.wrk_script,  &cfg.compute_server,
      &cfg.go_server, &cfg.node_server, &cfg.tokio_server};
  static const char *const string_names[] = {
      "--peers",     "--wrk",         "--wrk-script",  "--compute-server",
      "--go-server", "--node-server", "--tokio-server"};
  char *end;
  long v;
  size_t i;

  (void)ctx;
  if (strcmp(name, "--no-wrk") == 0)
    return cfg.use_wrk = 0, 1;
  if (strcmp(name, "--external") == 0)
    return cfg.external = 1, 1;
  for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
    if (strcmp(name, string_names[i]) == 0)
      return value != NULL ? (*strings[i] = value, 2) : -1;
  if (strcmp(name, "--client-nice") == 0) {
    v = value != NULL ? strtol(value, &end, 10) : 99;
    if (value == NULL || *end != '\0' || end == value || v < -20 || v > 19)
      return -1;
    cfg.client_nice = (int)v;
    return 2;
  }
  for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
    if (strcmp(name, counts[i].name) != 0)
      continue;
    v = value != NULL ? strtol(value, &end, 10) : 0;
    if (value == NULL || *end != '\0' || end == value || v < counts[i].min ||
        v > counts[i].max)
      return -1;
    *counts[i].to = (unsigned)v;
    return 2;
  }
  return 0;
}

int main(int argc, char **argv) {
  static bench_cli_t cli = {"load", usage, 0, 0, 0, 0, NULL};
  char model[128], kernel[160];
  struct utsname u;
  double load0, load1, cpu0, cpu1, ours0, ours1, wall, others;
  uint64_t wall0;
  int broken = 0;
  atomic_int no = 0;
  uint64_t t0;
  int p;

  cfg.use_wrk = 1;
  cfg.wrk = "wrk";
  cfg.wrk_script = LOAD_WRK_SCRIPT;
  cfg.compute_server = LOAD_COMPUTE_SERVER;
  cfg.go_server = LOAD_PEER_GO;
  cfg.node_server = LOAD_PEER_NODE;
  cfg.node = LOAD_NODE;
  cfg.tokio_server = LOAD_PEER_TOKIO;
  cfg.client_nice = -10;
  cfg.interval_ms = 1;
  cfg.ping_conns = 8;
  if (bench_cli_parse(&cli, argc, argv, own_option, NULL) != 0)
    return 2;
  if (peers_list != NULL && select_peers(peers_list) != 0) {
    fprintf(stderr, "load: --peers: unknown peer in '%s'\n%s", peers_list,
            usage);
    return 2;
  }
  cfg.quick = cli.quick || cli.tiny;
  cfg.tiny = cli.tiny;
  cfg.json = cli.json_path;
  cfg.workers = bench_cli_workers(&cli);
  if (cfg.tiny)
    cfg.use_wrk = 0;
  if (cfg.fib_conns == 0)
    cfg.fib_conns = 2 * cfg.workers;
  cfg.wrk_conns = 16;
  cfg.wrk_pct = 10;
  cfg.fib_idle_count = cfg.quick ? 3 : 5;
  /* Totals over the ROUNDS rounds. */
  cfg.idle_pings = cfg.tiny ? 90 : cfg.quick ? 900 : 4800;
  cfg.flood_ms = cfg.tiny ? 300 : cfg.quick ? 1500 : 4500;
  cfg.warm_ms = cfg.tiny ? 100 : cfg.quick ? 200 : 400; /* per loaded round */
  cfg.loaded_ms = cfg.tiny ? 600 : cfg.quick ? 3000 : 9000;
  cfg.drain_ms = 3000;
  cfg.wrk_secs = cfg.quick ? 3 : 8;
  cfg.wrk_ping_secs = cfg.quick ? 1 : 4;

  for (p = 0; p < NPEERS; p++)
    if ((peers_list == NULL && !IS_EXTERNAL(p)) ||
        (cfg.external && IS_EXTERNAL(p)))
      res[p].selected = 1;
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();

  cfg.worker_nice_flag = file_contains(cfg.compute_server, "--worker-nice");
  cfg.quiet_flag = file_contains(cfg.compute_server, "--quiet");
  if (!cfg.worker_nice_flag && res[PEER_NICE0].selected)
    progress("compute_server takes no --worker-nice: hybrid/nice0 is hybrid "
             "as it is\n");
  if (cfg.client_nice != 0) {
    errno = 0;
    cfg.boosted = setpriority(PRIO_PROCESS, 0, cfg.client_nice) == 0;
  }
  if (cfg.fib_n == 0) {
    calibrate_fib();
  } else {
    t0 = stats_now_ns();
    fib_expect = peer_fib(cfg.fib_n, &no);
    fib_local_ms = (double)(stats_now_ns() - t0) / 1e6;
  }
  snprintf(fib_req, sizeof(fib_req),
           "GET /fib/%u HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", cfg.fib_n);
  if (cfg.use_wrk && !have_program(cfg.wrk)) {
    cfg.use_wrk = 0;
    progress("wrk: not found (Debian: apt-get install wrk): the wrk runs are "
             "skipped\n");
  }
  if (cfg.use_wrk && access(cfg.wrk_script, R_OK) != 0) {
    cfg.use_wrk = 0;
    progress("wrk: no script at %s: the wrk runs are skipped\n",
             cfg.wrk_script);
  }

  machine_cpu_model(model, sizeof(model));
  if (uname(&u) == 0)
    snprintf(kernel, sizeof(kernel), "%s %s", u.sysname, u.release);
  else
    snprintf(kernel, sizeof(kernel), "unknown");
  load0 = loadavg();
  progress("load: %u cores, %s, %s; load average %.2f; %u workers; /fib/%u "
           "takes %.1f ms here; client at nice %d%s\n",
           machine_cores(), model, kernel, load0, cfg.workers, cfg.fib_n,
           fib_local_ms, cfg.boosted ? cfg.client_nice : 0,
           cfg.client_nice != 0 && !cfg.boosted ? " (raising it was refused)"
                                                : "");
  wall0 = stats_now_ns();

  cpu0 = cpu_busy_secs(&ours0);
  /* hybrid and its variant back to back, so the machine changes least. */
  run_all();
  cpu1 = cpu_busy_secs(&ours1);
  wall = (double)(stats_now_ns() - wall0) / 1e9;
  load1 = loadavg();

  for (p = 0; p < NPEERS; p++) {
    if (!res[p].selected || res[p].skipped ||
        (res[p].ran && res[p].errors == 0 && res[p].exit_code == 0))
      continue;
    broken = 1;
    progress("load: %s: %s; errors %u, exit code %d%s%s\n", peer_titles[p],
             res[p].ran ? "ran" : "did not run", res[p].errors,
             res[p].exit_code, res[p].note[0] ? "; " : "", res[p].note);
  }
  others = fmax(0, (cpu1 - cpu0 - (ours1 - ours0)) / wall);
  if (report_json(&cli, kernel, load0, load1, others) != 0)
    broken = 1;
  for (p = 0; p < NPEERS; p++) {
    free(res[p].idle_lat.v);
    free(res[p].loaded_lat.v);
    free(res[p].fib_lat.v);
  }
  uv_loop_close(loop);
  return broken ? 1 : 0;
}
