/* SPDX-License-Identifier: MIT */
/*
 * load.h: the parts of the server benchmark's load driver (load.c).
 *
 *   load_client.c  phases: client connections that send /ping and /fib/N
 *                  over keep-alive HTTP/1.1, paced or back to back, and
 *                  time every answer
 *   load_proc.c    server processes: start, read the port, SIGTERM, check
 *                  the exit; their threads' schedstat and nice values
 *   load.c         the peers, the runs, wrk, main
 *   load_report.c  the targets and the JSON report
 *
 * Everything runs on one thread and one libuv loop.
 */
#ifndef BENCH_SERVER_LOAD_H
#define BENCH_SERVER_LOAD_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define LOAD_MAX_THREADS 256 /* server threads tracked in schedstat */

/* ------------------------------------------------------ load_proc.c */

/* The schedstat counters of every thread of a process, and of ours. */
typedef struct snap_s {
  uint64_t t_ns;
  unsigned n;
  int tid[LOAD_MAX_THREADS];
  uint64_t run[LOAD_MAX_THREADS], wait[LOAD_MAX_THREADS];
  uint64_t slices[LOAD_MAX_THREADS];
  uint64_t self_run, self_wait, self_slices;
  uint64_t main_vcsw, main_ivcsw; /* the main thread's context switches */
  uint64_t proc_cpu_ns; /* the whole process's user + system time, every
                           thread's, those that have exited included */
} snap_t;

/* What a process's threads did between two snapshots. */
typedef struct sched_s {
  int ok;              /* the main thread was found in both */
  double loop_cpu;     /* cores the main thread used */
  double loop_wait_us; /* its mean run-queue wait per time on a CPU */
  double others_cpu;   /* cores the other threads used */
  double client_cpu;   /* cores the calling (driver) thread used */
  double client_wait_us;
  double loop_vcsw, loop_ivcsw; /* main thread: voluntary and involuntary
                                   context switches per second */
  double proc_cpu;              /* cores the whole server process used */
} sched_t;

/* Sums of what happened between pairs of snapshots of one process. */
typedef struct sched_acc_s {
  double secs;
  int ok;
  uint64_t loop_run, loop_wait, loop_slices, others_run;
  uint64_t self_run, self_wait, self_slices;
  uint64_t loop_vcsw, loop_ivcsw;
  uint64_t proc_cpu_ns;
} sched_acc_t;

/* pid <= 0: only the calling thread's counters. */
void snap_take(snap_t *s, int pid);

/* Adds what pid's threads (its main thread apart) and the calling thread
 * did from a to b. */
void sched_add(sched_acc_t *acc, const snap_t *a, const snap_t *b, int pid);
void sched_get(const sched_acc_t *acc, sched_t *out);

/* The highest nice value among pid's non-main threads; INT_MIN if none. */
int proc_workers_nice(int pid);

/* pid's resident set (VmRSS) and its peak so far (VmHWM), in bytes; NaN
 * where /proc says nothing.  Threads share them: a pool of threads (Node's
 * piscina workers included) is in them. */
void proc_rss(int pid, double *rss, double *peak);

/* Sets the EEVDF slice (sched_runtime of a SCHED_OTHER thread, Linux
 * 6.12+; a short slice lets a waking thread preempt the running one) of
 * thread tid of pid, keeping its nice value.  Returns 0 or -errno. */
int proc_set_slice(int pid, int tid, uint64_t ns);

/* Moves pid's non-main threads to SCHED_IDLE (any normal thread that
 * wakes preempts them at once).  Returns how many, or -errno. */
int proc_workers_sched_idle(int pid);

/* Starts n processes that spin in SCHED_IDLE (hybrid/hogs): they keep
 * every CPU busy, and any normal thread that wakes preempts them at once.
 * Fills pids[0..n).  Returns 0 or -errno (none left running). */
int proc_spinners_start(unsigned n, int *pids);
/* Kills and reaps them. */
void proc_spinners_stop(unsigned n, const int *pids);

/* A child process whose stdout we read. */
typedef struct proc_s {
  uv_loop_t *loop;
  uv_process_t proc;
  uv_pipe_t out;
  uv_timer_t timer;
  int spawned; /* uv_spawn() succeeded: proc.pid is the child's */
  int handles; /* open handles; proc_release() closes them */
  int exited, out_eof, timed_out;
  int64_t exit_status;
  int term_signal;
  char *buf; /* its standard output so far, NUL-terminated */
  size_t len, cap;
} proc_t;

/* Starts argv[0] (env NULL: ours).  restore_nice != 0: the calling thread
 * runs at that nice value; the child starts at nice 0 instead.  Returns 0
 * or a libuv error; call proc_release() either way. */
int proc_spawn(proc_t *pr, uv_loop_t *loop, char *const *argv, char **env,
               int restore_nice);

/* Runs the loop until the child printed "listening on" (or exited), or
 * until it exited and closed its stdout; returns 0, or -1 after ms. */
int proc_wait_port(proc_t *pr, uint64_t ms);
int proc_wait_exit(proc_t *pr, uint64_t ms);

/* The port of "listening on HOST:PORT", or -1. */
int proc_port(const proc_t *pr);

/* SIGTERM, then SIGKILL if it has not exited in timeout_ms.  Returns its
 * exit status (128 + signal if a signal ended it), or -1 if it had to be
 * killed or never started. */
int proc_stop(proc_t *pr, uint64_t timeout_ms);

void proc_release(proc_t *pr);

/* environ with `assign` ("NAME=value") replacing NAME; free() it. */
char **proc_env_with(const char *assign);

/* ---------------------------------------------------- load_client.c */

typedef struct lat_s {
  size_t n;
  double mean, p50, p99, p999, max;
} lat_t;

void lat_summarize(const double *v, size_t n, lat_t *out);

typedef struct load_conn_s load_conn_t;

/* One phase: connections to one server, a warm-up, a measured window and
 * a drain, each bounded in time; requests bounded in count.
 *
 *   n_paced  connections sending a /ping every interval_ms (the next goes
 *            as soon as the answer comes if a tick found one unanswered)
 *   n_flood  connections sending /ping back to back
 *   n_fib    connections sending /fib/N back to back, from the warm-up on
 *
 * The window opens after warm_ms and closes after window_ms, or as soon as
 * max_pings pings (or max_fibs fibs) have been sent and answered.  Latency
 * samples go to ping_lat/fib_lat (caller-allocated, cap_* entries) in
 * microseconds; answers are checked ("pong\n", the right Fibonacci
 * number); anything wrong counts as an error. */
typedef struct phase_s {
  /* set by the caller (phase_new() fills the defaults) */
  uv_loop_t *loop;
  int port, pid; /* pid: whose threads to snapshot */
  unsigned n_paced, n_flood, n_fib, interval_ms;
  uint64_t max_pings, max_fibs;
  uint64_t warm_ms, window_ms, drain_ms;
  const char *fib_req; /* "GET /fib/N ..." */
  uint64_t fib_expect; /* fib(N) */
  double *ping_lat, *fib_lat;
  size_t cap_ping_lat, cap_fib_lat;
  /* results */
  size_t n_ping_lat, n_fib_lat;
  uint64_t pings_sent, fibs_sent, pings_in_window, fibs_in_window;
  uint64_t t_open, t_close; /* the window, ns */
  unsigned errors, unfinished;
  char first_error[160];
  snap_t snap_open, snap_close;
  /* private */
  load_conn_t *conns;
  unsigned nconns, connecting, outstanding, handles;
  int stage;
  uv_timer_t pace, clock, watchdog;
} phase_t;

/* A zeroed phase for a server on port whose process is pid; NULL if out
 * of memory.  phase_free() frees it and its sample arrays. */
phase_t *phase_new(uv_loop_t *loop, int port, int pid);
void phase_free(phase_t *ph);

/* Runs the phase to its end, with every handle of it closed. */
void phase_run(phase_t *ph);

/* The window's length in seconds (NaN if it never opened). */
double phase_window_secs(const phase_t *ph);

/* ------------------------------------------- load.c, load_report.c */

/* In the order of the tables' columns. */
enum {
  PEER_HYBRID,
  PEER_INLINE,
  PEER_THREADS,
  PEER_UVWORK,
  PEER_GO, /* the other runtimes' servers (--external), bench/peers/ */
  PEER_NODE,
  PEER_TOKIO,
  PEER_NICE0, /* the variants of hybrid */
  PEER_SLICE,
  PEER_IDLE,
  PEER_HOGS, /* a control: hybrid, no /fib, the CPUs kept busy by others */
  NPEERS
};
#define IS_VARIANT(p) ((p) >= PEER_NICE0)
#define IS_EXTERNAL(p) ((p) >= PEER_GO && (p) <= PEER_TOKIO)
#define LOOP_SLICE_NS 100000 /* hybrid/slice */

/* JSON keys, and the names in the tables. */
extern const char *const peer_keys[NPEERS];
extern const char *const peer_titles[NPEERS];

typedef struct wrk_s {
  int ok;
  double rps, p50, p90, p99, p999, mean, max;
  double requests, errors;
} wrk_t;

#define ROUNDS 3 /* each measurement alternates over the peers this often */

/* What a server's GET /stats says of its /fib jobs' wait or run ("metrics"
 * ."wait" / ."run": compute_server's and peer_uvwork's keys), in ns; NaN
 * where it said nothing. */
typedef struct jobtime_s {
  double count, mean, max, p50, p90, p99, p999;
} jobtime_t;

/* A /ping latency sample pooled over the rounds, in us. */
typedef struct sample_s {
  double *v;
  size_t n, cap;
} sample_t;

typedef struct result_s {
  int selected;
  int skipped;    /* an external server that is not built: not a failure */
  int ran;        /* the server started and was measured */
  char note[320]; /* why not, or what went wrong */
  proc_t pr;      /* the server */
  int port, pid;
  int worker_nice; /* of the non-main threads; INT_MIN: none */
  double fib_idle_ms;
  sample_t idle_lat, loaded_lat;
  lat_t idle, loaded;
  sample_t fib_lat; /* every /fib answer of the loaded rounds, us */
  lat_t loaded_fib;
  int has_jobtime;     /* its /stats had "metrics" with a wait */
  jobtime_t wait, run; /* read after the loaded rounds */
  uint64_t fibs;       /* answered in the loaded windows */
  double fib_secs;     /* their length */
  double flood_rps[ROUNDS];
  unsigned n_flood;
  double fib_rps, ping_rps; /* ping_rps: the median round */
  double cpu_ms_per_fib;    /* the process's CPU in the loaded windows per
                               /fib answered in them */
  double rss, rss_peak;     /* bytes: after the loaded rounds; at the end */
  sched_acc_t a_idle, a_flood, a_loaded;
  sched_t s_idle, s_flood, s_loaded;
  unsigned errors, unfinished;
  int exit_code; /* 0 clean; >0 status; 128+sig; -1 killed after timeout */
  wrk_t mixed, ping;
} result_t;

typedef struct cfg_s {
  int quick; /* --quick or --tiny */
  int tiny;
  unsigned workers, fib_conns, ping_conns, interval_ms;
  unsigned fib_n;
  int client_nice, boosted;
  size_t idle_pings;
  uint64_t flood_ms, warm_ms, loaded_ms, drain_ms;
  unsigned fib_idle_count;
  int use_wrk;
  const char *wrk, *wrk_script, *json;
  unsigned wrk_secs, wrk_ping_secs, wrk_conns, wrk_pct;
  int worker_nice_flag;       /* compute_server takes --worker-nice */
  int quiet_flag;             /* compute_server takes --quiet */
  const char *compute_server; /* its path */
  int external;               /* --external: go, node, tokio too */
  const char *go_server, *node_server, *node, *tokio_server; /* paths */
} cfg_t;

extern cfg_t cfg;
extern result_t res[NPEERS];
extern double fib_local_ms; /* fib(N) on one core here */

/* load_report.c: evaluates the targets and writes every figure, and
 * them, as the JSON report (cli.h: stdout or --json FILE; run.sh lists
 * the keys).  Returns 0 or a libuv error. */
struct bench_cli_s;
int report_json(const struct bench_cli_s *cli, const char *kernel, double load0,
                double load1, double others_cores);

#endif /* BENCH_SERVER_LOAD_H */
