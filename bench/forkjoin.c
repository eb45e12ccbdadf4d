/* SPDX-License-Identifier: MIT */
/*
 * forkjoin: what a fork costs, and how well a coarse kernel scales, on
 * tandem's fork-join API against oneTBB, OpenMP and Rayon, all in one
 * process.
 *
 * Two kernels, each run by every peer with the same number of threads
 * (--workers N), repetitions interleaved with the peers' order rotated
 * from one repetition to the next:
 *
 *   fib(30), no cutoff: every call with n >= 2 forks once (the smaller
 *   half is spawned, the larger runs inline), so the work is nothing but
 *   spawns.  serial: plain recursion; tandem: tandem_join, the root started
 *   on a worker through a tandem_group_t; tbb: tbb::parallel_invoke, and a
 *   tbb::task_group per call, inside a task_arena (the bar is against the
 *   faster of the two); omp: `omp task` + `taskwait` inside parallel/single;
 *   rayon: rayon::join, the root run by ThreadPool::install.
 *   Each parallel peer starts its clock on the thread that runs the root,
 *   so only the computation is timed.  Figures: wall time, wall time per
 *   spawn (spawns = calls that fork, counted exactly), the ratio to tandem.
 *
 *   A Mandelbrot image (2048 x 2048, 256 iterations at most), shared out
 *   by rows; every peer calls the same row kernel.  serial: one loop;
 *   tandem: tandem_parallel_for with grain 0 (lazy binary splitting) and
 *   with a grain of 1 row; tbb: parallel_for over a blocked_range, auto
 *   partitioner; omp: parallel for schedule(dynamic); rayon: into_par_iter
 *   over the rows, adaptive splitting.  Timed from the
 *   calling thread around the whole call.  Figures: wall time, speedup over
 *   serial, the ratio to the fastest peer.
 *
 * The report is JSON (cli.h: on stdout, or --json FILE); bench/tandem-bench
 * prints its tables.  Its targets hold tandem to the bar: per spawn, no slower
 * than the faster oneTBB form and faster than OpenMP; on the image, at least
 * 0.95 x workers times faster than serial (1.9x on 2 workers) and within 5%
 * of the fastest peer, for each of the two grains.
 *
 * Every run is checked: each fib must return the right number, each image
 * must have the serial image's checksum (the buffer is poisoned before each
 * run).  A peer whose toolchain was missing at build time is compiled out
 * and reported as skipped, with the Debian package that brings it.
 *
 * Rayon is Rust: it lives in a shared library, bench/peers/rust/rayon_peer
 * (librayon_peer.so, built by `cmake --build BUILD --target rust_peers`),
 * that this program dlopen()s at start (--rayon-lib PATH, default: where
 * that target puts it in this build tree).  Absent, its peer is reported
 * as not built, with the command that builds it; the run goes on.
 *
 * Every pool lives in this process, so each must be idle while another
 * runs: tandem's workers park, Rayon's and oneTBB's threads sleep, OpenMP's
 * sleep after their spin count.  The pause between measurements (SETTLE_NS)
 * gives them time to, and is checked: the process's CPU time is read over
 * its first half (the previous peer's pool winding down: "cpu_after_ns" of
 * that peer) and its second half ("cpu_later_ns" of that peer, and
 * "quiet_cpu_ns" of the run: near 0 when every pool is asleep as the next
 * measurement starts).
 *
 * Run:   build/bench/forkjoin [--workers N] [--reps R] [--quick]
 *                             [--json FILE] [--only PEERS] [--kernel K]
 *                             [--rayon-lib PATH]
 * --workers defaults to the online CPUs, --reps to 9 (5 with --quick, which
 * also uses a 1024 x 1024 image: about 10 s on an idle 2-core VM, the
 * default run about 40 s); --only runs just some peers (serial, tandem,
 * tbb, omp, rayon: a comma-separated list), --kernel just fib or mandel, e.g.
 * for `perf record -g build/bench/forkjoin --only tandem --kernel fib`.  Every
 * measurement is bounded by a watchdog of WATCHDOG_S seconds.
 */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "tandem.h"

#include "cli.h"
#include "json_write.h"
#include "peers/forkjoin_peers.h"
#include "stats.h"

#define MAX_REPS BENCH_MAX_REPS
#define WATCHDOG_S 120     /* one measurement gives up after this */
#define SETTLE_NS 20000000 /* pause between measurements: 20 ms */
#define SETTLE_SAMPLES ((MAX_REPS + 1) * NKERNELS * MAX_PEERS)
#define FIB_N 30
#define FIB_MAX_N 40
#define MANDEL_SIDE 2048
#define MANDEL_SIDE_QUICK 1024
#define MANDEL_MAX_ITER 256

/* Families, for --only and for the report's skipped lines. */
enum { FAM_SERIAL, FAM_TANDEM, FAM_TBB, FAM_OMP, FAM_RAYON, NFAMS };
static const char *const fam_keys[NFAMS] = {"serial", "tandem", "tbb", "omp",
                                            "rayon"};

enum { K_FIB, K_MANDEL, NKERNELS };
static const char *const kernel_keys[NKERNELS] = {"fib", "mandelbrot"};

typedef int (*measure_fn)(double *ns);

/* A peer of one kernel. */
typedef struct peer_s {
  const char *key;     /* JSON key */
  const char *label;   /* its name in the report, before "(threads)" */
  const char *variant; /* after it, or "" */
  const char *how;     /* one line in the header */
  int fam;
  measure_fn run; /* NULL: compiled out */
} peer_t;

#define MAX_PEERS 6

/* Rayon, from librayon_peer.so (bench/peers/rust/rayon_peer/src/lib.rs,
 * which documents each call).  RAYON_PEER_ABI must equal the library's
 * rayon_peer_abi(): a library built from other sources is refused. */
#define RAYON_PEER_ABI 1
#ifndef FORKJOIN_RAYON_LIB /* CMake sets it: the build tree's copy */
#define FORKJOIN_RAYON_LIB "librayon_peer.so"
#endif
#ifndef FORKJOIN_RAYON_BUILD
#define FORKJOIN_RAYON_BUILD "cmake --build BUILD --target rust_peers"
#endif

typedef struct rayon_peer_s {
  const char *path;
  const char *why; /* NULL once loaded */
  char why_buf[512];
  unsigned (*abi)(void);
  const char *(*version)(void);
  const char *(*rustc_version)(void);
  unsigned (*init)(unsigned threads);
  void (*fini)(void);
  double (*fib_ns)(int n, long *result);
  double (*mandel_ns)(void (*rows)(size_t, size_t, void *), void *image,
                      size_t height);
} rayon_peer_t;

typedef struct bench_s {
  bench_cli_t cli;
  unsigned workers;
  unsigned reps;
  unsigned only; /* bit per family; 0 = all */
  int kernel;    /* -1 = both */
  unsigned threads[NFAMS];
  int fib_n;
  long fib_expected;
  uint64_t fib_calls;
  uint64_t fib_spawns; /* calls that fork: n >= 2 */
  forkjoin_mandel_t mandel;
  uint64_t mandel_checksum; /* of the serial image */
  tandem_pool_t *pool;
  int npeers[NKERNELS];
  const peer_t *peers[NKERNELS];
  double ns[NKERNELS][MAX_PEERS][MAX_REPS];
  double steals[NKERNELS][MAX_PEERS][MAX_REPS];    /* tandem's, per run */
  double cpu_after[NKERNELS][MAX_PEERS][MAX_REPS]; /* see settle() */
  double cpu_later[NKERNELS][MAX_PEERS][MAX_REPS];
  double quiet_cpu[SETTLE_SAMPLES];
  unsigned nquiet;
  int last_k; /* the last measurement, whose pause is running out */
  int last_p;
  int last_rep; /* < 0: none, or a warm-up */
  rayon_peer_t rayon;
} bench_t;

static bench_t bench;

/* ------------------------------------------------------------- kernels */

static long fib_serial(int n) {
  if (n < 2)
    return n;
  return fib_serial(n - 1) + fib_serial(n - 2);
}

/* The exact value, and how many calls and forks the recursion makes. */
static void fib_count(int n, long *value, uint64_t *calls, uint64_t *spawns) {
  uint64_t c[FIB_MAX_N + 1];
  uint64_t s[FIB_MAX_N + 1];
  long f[FIB_MAX_N + 1];
  int i;

  for (i = 0; i <= n; i++) {
    if (i < 2) {
      f[i] = i;
      c[i] = 1;
      s[i] = 0;
    } else {
      f[i] = f[i - 1] + f[i - 2];
      c[i] = 1 + c[i - 1] + c[i - 2];
      s[i] = 1 + s[i - 1] + s[i - 2];
    }
  }
  *value = f[n];
  *calls = c[n];
  *spawns = s[n];
}

/* The region [-2, 0.5] x [-1.25, 1.25]: the whole set, with rows that cost
 * from a few iterations per pixel to max_iter. */
void forkjoin_mandel_rows(size_t lo, size_t hi, void *ctx) {
  const forkjoin_mandel_t *m = ctx;
  double dx = 2.5 / m->width;
  double dy = 2.5 / m->height;
  double cr;
  double ci;
  double zr;
  double zi;
  double zr2;
  double zi2;
  uint16_t *row;
  unsigned x;
  unsigned i;
  size_t y;

  for (y = lo; y < hi; y++) {
    row = m->pixels + y * m->width;
    ci = -1.25 + (double)y * dy;
    for (x = 0; x < m->width; x++) {
      cr = -2.0 + (double)x * dx;
      zr = zi = zr2 = zi2 = 0.0;
      for (i = 0; i < m->max_iter && zr2 + zi2 <= 4.0; i++) {
        zi = 2.0 * zr * zi + ci;
        zr = zr2 - zi2 + cr;
        zr2 = zr * zr;
        zi2 = zi * zi;
      }
      row[x] = (uint16_t)i;
    }
  }
}

/* FNV-1a over the pixels. */
static uint64_t mandel_checksum(const forkjoin_mandel_t *m) {
  const uint16_t *p = m->pixels;
  size_t n = (size_t)m->width * m->height;
  uint64_t h = 0xcbf29ce484222325ull;
  size_t i;

  for (i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

/* Every pixel 0xffff, which none reaches (max_iter < 65535): a row that a
 * peer skipped cannot pass the checksum. */
static void mandel_poison(forkjoin_mandel_t *m) {
  memset(m->pixels, 0xff, (size_t)m->width * m->height * sizeof(uint16_t));
}

/* ------------------------------------------------------- serial, tandem */

static int fib_check(const char *who, long got) {
  if (got == bench.fib_expected)
    return 0;
  fprintf(stderr, "forkjoin: %s computed fib(%d) = %ld, expected %ld\n", who,
          bench.fib_n, got, bench.fib_expected);
  return UV_EPROTO;
}

static int fib_serial_run(double *ns) {
  uint64_t t0;
  long r;

  t0 = stats_now_ns();
  r = fib_serial(bench.fib_n);
  *ns = (double)(stats_now_ns() - t0);
  return fib_check("serial", r);
}

typedef struct fib_arg_s {
  int n;
  long r;
} fib_arg_t;

static void fib_tandem(void *arg) {
  fib_arg_t *f = arg;
  fib_arg_t a;
  fib_arg_t b;

  if (f->n < 2) {
    f->r = f->n;
    return;
  }
  a.n = f->n - 1;
  b.n = f->n - 2;
  tandem_join(fib_tandem, &a, fib_tandem, &b);
  f->r = a.r + b.r;
}

/* The root task, on a worker: the clock runs there. */
typedef struct fib_root_s {
  tandem_task_t task;
  fib_arg_t arg;
  uint64_t t0;
  uint64_t t1;
} fib_root_t;

static void fib_root_run(tandem_task_t *task) {
  fib_root_t *root = (fib_root_t *)task;

  root->t0 = stats_now_ns();
  fib_tandem(&root->arg);
  root->t1 = stats_now_ns();
}

static int fib_tandem_run(double *ns) {
  tandem_group_t g;
  fib_root_t root;
  int err;

  memset(&root, 0, sizeof(root));
  root.arg.n = bench.fib_n;
  err = tandem_group_init(&g, bench.pool);
  if (err == 0)
    err = tandem_group_spawn(&g, &root.task, fib_root_run);
  if (err == 0)
    err = tandem_group_wait(&g);
  if (err != 0)
    return err;
  *ns = (double)(root.t1 - root.t0);
  return fib_check("tandem", root.arg.r);
}

static int mandel_check(const char *who) {
  uint64_t sum;

  sum = mandel_checksum(&bench.mandel);
  if (sum == bench.mandel_checksum)
    return 0;
  fprintf(stderr,
          "forkjoin: %s image checksum %016" PRIx64 ", serial %016" PRIx64 "\n",
          who, sum, bench.mandel_checksum);
  return UV_EPROTO;
}

static int mandel_serial_run(double *ns) {
  uint64_t t0;

  mandel_poison(&bench.mandel);
  t0 = stats_now_ns();
  forkjoin_mandel_rows(0, bench.mandel.height, &bench.mandel);
  *ns = (double)(stats_now_ns() - t0);
  return mandel_check("serial");
}

static int mandel_tandem(size_t grain, const char *who, double *ns) {
  uint64_t t0;
  int err;

  mandel_poison(&bench.mandel);
  t0 = stats_now_ns();
  err = tandem_parallel_for(bench.pool, 0, bench.mandel.height, grain,
                            forkjoin_mandel_rows, &bench.mandel);
  *ns = (double)(stats_now_ns() - t0);
  if (err != 0)
    return err;
  return mandel_check(who);
}

static int mandel_tandem_auto_run(double *ns) {
  return mandel_tandem(0, "tandem grain=0", ns);
}

static int mandel_tandem_row_run(double *ns) {
  return mandel_tandem(1, "tandem grain=1", ns);
}

/* ---------------------------------------------------------- tbb and omp */

#ifdef FORKJOIN_HAVE_TBB
static int fib_tbb(int use_group, double *ns) {
  long r = 0;

  *ns = tbb_fib_ns(bench.fib_n, use_group, &r);
  if (*ns < 0)
    return UV_ENOMEM;
  return fib_check(use_group ? "tbb task_group" : "tbb parallel_invoke", r);
}

static int fib_tbb_invoke_run(double *ns) {
  return fib_tbb(0, ns);
}

static int fib_tbb_group_run(double *ns) {
  return fib_tbb(1, ns);
}

static int mandel_tbb_run(double *ns) {
  mandel_poison(&bench.mandel);
  *ns = tbb_mandel_ns(&bench.mandel);
  if (*ns < 0)
    return UV_ENOMEM;
  return mandel_check("tbb");
}
#define FIB_TBB_INVOKE_RUN fib_tbb_invoke_run
#define FIB_TBB_GROUP_RUN fib_tbb_group_run
#define MANDEL_TBB_RUN mandel_tbb_run
#else
#define FIB_TBB_INVOKE_RUN NULL
#define FIB_TBB_GROUP_RUN NULL
#define MANDEL_TBB_RUN NULL
#endif

#ifdef FORKJOIN_HAVE_OMP
static int fib_omp_run(double *ns) {
  long r = 0;

  *ns = omp_fib_ns(bench.fib_n, bench.threads[FAM_OMP], &r);
  return fib_check("omp", r);
}

static int mandel_omp_run(double *ns) {
  mandel_poison(&bench.mandel);
  *ns = omp_mandel_ns(&bench.mandel, bench.threads[FAM_OMP]);
  return mandel_check("omp");
}
#define FIB_OMP_RUN fib_omp_run
#define MANDEL_OMP_RUN mandel_omp_run
#else
#define FIB_OMP_RUN NULL
#define MANDEL_OMP_RUN NULL
#endif

/* ---------------------------------------------------------------- rayon */

/* dlsym into a function pointer: POSIX guarantees the two have one
 * representation. */
static int rayon_sym(void *lib, const char *name, void *fn) {
  void *sym;

  sym = dlsym(lib, name);
  if (sym == NULL)
    return -1;
  memcpy(fn, &sym, sizeof(sym));
  return 0;
}

/* Loads bench.rayon.path.  Returns 0, or -1 with bench.rayon.why saying
 * why and what to do: a missing or stale library is a skipped peer, not an
 * error.  Never dlclose()d: Rayon's threads run its code until exit. */
static int rayon_load(void) {
  rayon_peer_t *r = &bench.rayon;
  const char *err;
  void *lib;

  r->why = r->why_buf;
  if (access(r->path, F_OK) != 0) {
    snprintf(r->why_buf, sizeof(r->why_buf),
             "not built (no %s): scripts/install-deps.sh --peers installs "
             "Rust and the crates, then: %s",
             r->path, FORKJOIN_RAYON_BUILD);
    return -1;
  }
  lib = dlopen(r->path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    err = dlerror();
    snprintf(r->why_buf, sizeof(r->why_buf), "cannot load it: %s",
             err != NULL ? err : r->path);
    return -1;
  }
  if (rayon_sym(lib, "rayon_peer_abi", &r->abi) != 0 ||
      r->abi() != RAYON_PEER_ABI ||
      rayon_sym(lib, "rayon_peer_version", &r->version) != 0 ||
      rayon_sym(lib, "rayon_peer_rustc_version", &r->rustc_version) != 0 ||
      rayon_sym(lib, "rayon_peer_init", &r->init) != 0 ||
      rayon_sym(lib, "rayon_peer_fini", &r->fini) != 0 ||
      rayon_sym(lib, "rayon_peer_fib_ns", &r->fib_ns) != 0 ||
      rayon_sym(lib, "rayon_peer_mandel_ns", &r->mandel_ns) != 0) {
    snprintf(r->why_buf, sizeof(r->why_buf),
             "%s is not this forkjoin's (ABI %d expected): rebuild it: %s",
             r->path, RAYON_PEER_ABI, FORKJOIN_RAYON_BUILD);
    return -1;
  }
  r->why = NULL;
  return 0;
}

static int fib_rayon_run(double *ns) {
  long r = 0;

  *ns = bench.rayon.fib_ns(bench.fib_n, &r);
  if (*ns < 0)
    return UV_ENOMEM;
  return fib_check("rayon", r);
}

static int mandel_rayon_run(double *ns) {
  mandel_poison(&bench.mandel);
  *ns = bench.rayon.mandel_ns(forkjoin_mandel_rows, &bench.mandel,
                              bench.mandel.height);
  if (*ns < 0)
    return UV_ENOMEM;
  return mandel_check("rayon");
}

static const peer_t fib_peers[] = {
    {"serial", "serial", "", "plain recursion on the calling thread",
     FAM_SERIAL, fib_serial_run},
    {"tandem", "tandem", "", "tandem_join recursion, root spawned on a group",
     FAM_TANDEM, fib_tandem_run},
    {"tbb_invoke", "tbb", " invoke",
     "tbb::parallel_invoke recursion in a task_arena", FAM_TBB,
     FIB_TBB_INVOKE_RUN},
    {"tbb_task_group", "tbb", " group",
     "tbb::task_group (run + wait) recursion in a task_arena", FAM_TBB,
     FIB_TBB_GROUP_RUN},
    {"omp", "omp", "", "omp task + taskwait in parallel/single", FAM_OMP,
     FIB_OMP_RUN},
    {"rayon", "rayon", "",
     "rayon::join recursion, root run by ThreadPool::install", FAM_RAYON,
     fib_rayon_run},
};

static const peer_t mandel_peers[] = {
    {"serial", "serial", "", "one loop over the rows", FAM_SERIAL,
     mandel_serial_run},
    {"tandem_grain0", "tandem", " g=0",
     "tandem_parallel_for, grain 0 (lazy binary splitting)", FAM_TANDEM,
     mandel_tandem_auto_run},
    {"tandem_grain1", "tandem", " g=1", "tandem_parallel_for, grain 1 row",
     FAM_TANDEM, mandel_tandem_row_run},
    {"tbb", "tbb", "", "tbb::parallel_for, blocked_range, auto_partitioner",
     FAM_TBB, MANDEL_TBB_RUN},
    {"omp", "omp", "", "omp parallel for schedule(dynamic)", FAM_OMP,
     MANDEL_OMP_RUN},
    {"rayon", "rayon", "",
     "(0..height).into_par_iter(), a row per item, in ThreadPool::install",
     FAM_RAYON, mandel_rayon_run},
};

enum {
  FIB_SERIAL,
  FIB_TANDEM,
  FIB_TBB_INVOKE,
  FIB_TBB_GROUP,
  FIB_OMP,
  FIB_RAYON
};
_Static_assert(sizeof(fib_peers) / sizeof(fib_peers[0]) <= MAX_PEERS,
               "MAX_PEERS too small for fib");
_Static_assert(sizeof(mandel_peers) / sizeof(mandel_peers[0]) <= MAX_PEERS,
               "MAX_PEERS too small for mandelbrot");
enum { MB_SERIAL, MB_TANDEM0, MB_TANDEM1, MB_TBB, MB_OMP, MB_RAYON };

/* Why a family is missing, and what brings it. */
static const char *fam_missing(int fam) {
  if (fam == FAM_TBB)
    return "no oneTBB or C++ at build time (Debian: g++ libtbb-dev)";
  if (fam == FAM_OMP)
    return "no OpenMP at build time (Debian: gcc with libgomp1; clang: "
           "libomp-dev)";
  if (fam == FAM_RAYON && bench.rayon.why != NULL)
    return bench.rayon.why;
  return "not built";
}

static int fam_selected(int fam) {
  return bench.only == 0 || (bench.only & (1u << fam)) != 0;
}

static int kernel_selected(int k) {
  return bench.kernel < 0 || bench.kernel == k;
}

/* Is the peer there: compiled in, and for Rayon, loaded? */
static int peer_built(const peer_t *peer) {
  return peer->run != NULL &&
         (peer->fam != FAM_RAYON || bench.rayon.why == NULL);
}

/* Is (kernel, peer) measured in this run? */
static int measured(int k, int p) {
  const peer_t *peer = &bench.peers[k][p];

  return kernel_selected(k) && peer_built(peer) && fam_selected(peer->fam);
}

/* ------------------------------------------------------------ measuring */

static void watchdog_fire(int sig) {
  static const char msg[] = "forkjoin: a measurement ran past the watchdog, "
                            "giving up\n";
  ssize_t n;

  (void)sig;
  n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
  (void)n;
  _exit(EXIT_FAILURE);
}

static uint64_t process_cpu_ns(void) {
  struct timespec ts;

  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Half the pause between measurements; returns the CPU time every thread
 * of the process used meanwhile: this thread sleeps, so it is the pools'. */
static double settle(void) {
  struct timespec ts = {0, SETTLE_NS / 2};
  uint64_t t0;

  t0 = process_cpu_ns();
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  return (double)(process_cpu_ns() - t0);
}

static int report_err(const char *what, int err) {
  return bench_cli_error(&bench.cli, what, err);
}

/* Items tandem's workers have stolen from each other so far. */
static uint64_t tandem_steals(void) {
  tandem_stats_t st;

  if (tandem_pool_stats(bench.pool, &st) != 0)
    return 0;
  return st.total.steals;
}

/* The second half of the pause, charged to the last measurement. */
static void settle_late(void) {
  double quiet;

  quiet = settle();
  if (bench.last_rep < 0)
    return;
  bench.cpu_later[bench.last_k][bench.last_p][bench.last_rep] = quiet;
  if (bench.nquiet < SETTLE_SAMPLES)
    bench.quiet_cpu[bench.nquiet++] = quiet;
}

/* One measurement of (kernel, peer), under the watchdog, stored as
 * repetition `rep` (none when rep < 0: a warm-up), between the two halves
 * of the pause: the CPU used before it (every pool should be asleep) and
 * after it (this peer's pool going to sleep). */
static int measure(int k, int p, int rep) {
  const peer_t *peer = &bench.peers[k][p];
  char what[64];
  uint64_t steals;
  double quiet;
  double ns;
  int err;

  settle_late();
  steals = tandem_steals();
  alarm(WATCHDOG_S);
  err = peer->run(&ns);
  alarm(0);
  if (err != 0) {
    snprintf(what, sizeof(what), "%s, %s", kernel_keys[k], peer->key);
    return report_err(what, err);
  }
  if (rep >= 0) {
    bench.ns[k][p][rep] = ns;
    bench.steals[k][p][rep] = (double)(tandem_steals() - steals);
  }
  quiet = settle();
  if (rep >= 0)
    bench.cpu_after[k][p][rep] = quiet;
  bench.last_k = k;
  bench.last_p = p;
  bench.last_rep = rep;
  return 0;
}

/* A first run of everything: starts threads and faults pages in. */
static int warm_up(void) {
  int k;
  int p;
  int err;

  for (k = 0; k < NKERNELS; k++)
    for (p = 0; p < bench.npeers[k]; p++)
      if (measured(k, p) && (err = measure(k, p, -1)) != 0)
        return err;
  return 0;
}

static int measure_all(void) {
  unsigned rep;
  int k;
  int i;
  int p;
  int err;

  bench.last_rep = -1;
  err = warm_up();
  for (rep = 0; err == 0 && rep < bench.reps; rep++) {
    fprintf(stderr, "forkjoin: rep %u of %u\n", rep + 1, bench.reps);
    for (k = 0; err == 0 && k < NKERNELS; k++) {
      /* Rotate the order so no peer always runs right after another. */
      for (i = 0; err == 0 && i < bench.npeers[k]; i++) {
        p = (int)((rep + (unsigned)i) % (unsigned)bench.npeers[k]);
        if (measured(k, p))
          err = measure(k, p, (int)rep);
      }
    }
  }
  if (err == 0)
    settle_late(); /* the last measurement's */
  return err;
}

/* --------------------------------------------------------------- figures */

static double median_ns(int k, int p) {
  if (!measured(k, p))
    return NAN;
  return stats_median(bench.ns[k][p], bench.reps);
}

static double fib_per_spawn(int p) {
  return median_ns(K_FIB, p) / (double)bench.fib_spawns;
}

static double mandel_speedup(int p) {
  return median_ns(K_MANDEL, MB_SERIAL) / median_ns(K_MANDEL, p);
}

/* The fastest parallel peer's median time. */
static double mandel_best(void) {
  double best = NAN;
  double v;
  int p;

  for (p = 1; p < bench.npeers[K_MANDEL]; p++) {
    v = median_ns(K_MANDEL, p);
    if (!isnan(v) && (isnan(best) || v < best))
      best = v;
  }
  return best;
}

static void peer_label(int k, int p, char *buf, size_t len) {
  const peer_t *peer = &bench.peers[k][p];

  if (peer->fam == FAM_SERIAL)
    snprintf(buf, len, "%s%s", peer->label, peer->variant);
  else
    snprintf(buf, len, "%s(%u)%s", peer->label, bench.threads[peer->fam],
             peer->variant);
}

/* The bar, as figures: value, goal, and whether it holds. */
typedef struct target_s {
  char what[64];
  char goal[16];
  double value;
  int met; /* -1: could not be measured in this run */
} target_t;

#define MAX_TARGETS 8

static int targets(target_t *t) {
  char label[32];
  double bar;
  int n;
  int p;

  n = 0;
  /* Against oneTBB's faster form: fmin ignores one that was not run. */
  snprintf(t[n].what, sizeof(t[n].what),
           "fib(%d) ns/spawn, tandem / best tbb(%u)", bench.fib_n,
           bench.threads[FAM_TBB]);
  snprintf(t[n].goal, sizeof(t[n].goal), "<= 1");
  t[n].value = fib_per_spawn(FIB_TANDEM) / fmin(fib_per_spawn(FIB_TBB_INVOKE),
                                                fib_per_spawn(FIB_TBB_GROUP));
  t[n].met = isnan(t[n].value) ? -1 : t[n].value <= 1.0;
  n++;
  snprintf(t[n].what, sizeof(t[n].what), "fib(%d) ns/spawn, tandem / omp(%u)",
           bench.fib_n, bench.threads[FAM_OMP]);
  snprintf(t[n].goal, sizeof(t[n].goal), "< 1");
  t[n].value = fib_per_spawn(FIB_TANDEM) / fib_per_spawn(FIB_OMP);
  t[n].met = isnan(t[n].value) ? -1 : t[n].value < 1.0;
  n++;
  /* Issue #15: no slower per join than Rayon, in this same run. */
  snprintf(t[n].what, sizeof(t[n].what), "fib(%d) ns/spawn, tandem / rayon(%u)",
           bench.fib_n, bench.threads[FAM_RAYON]);
  snprintf(t[n].goal, sizeof(t[n].goal), "<= 1");
  t[n].value = fib_per_spawn(FIB_TANDEM) / fib_per_spawn(FIB_RAYON);
  t[n].met = isnan(t[n].value) ? -1 : t[n].value <= 1.0;
  n++;
  /* 1.9x on 2 workers: 95% parallel efficiency. */
  bar = 0.95 * bench.threads[FAM_TANDEM];
  for (p = MB_TANDEM0; p <= MB_TANDEM1; p++) {
    peer_label(K_MANDEL, p, label, sizeof(label));
    snprintf(t[n].what, sizeof(t[n].what), "mandelbrot speedup, %s", label);
    snprintf(t[n].goal, sizeof(t[n].goal), ">= %.2f", bar);
    t[n].value = mandel_speedup(p);
    t[n].met = isnan(t[n].value) ? -1 : t[n].value >= bar;
    n++;
  }
  for (p = MB_TANDEM0; p <= MB_TANDEM1; p++) {
    peer_label(K_MANDEL, p, label, sizeof(label));
    snprintf(t[n].what, sizeof(t[n].what), "mandelbrot time / best, %s", label);
    snprintf(t[n].goal, sizeof(t[n].goal), "<= 1.05");
    t[n].value = median_ns(K_MANDEL, p) / mandel_best();
    t[n].met = isnan(t[n].value) ? -1 : t[n].value <= 1.05;
    n++;
  }
  return n;
}

/* ----------------------------------------------------------- JSON report */

static void json_peer(FILE *f, int k, int p) {
  const peer_t *peer = &bench.peers[k][p];
  double v[MAX_REPS];
  unsigned rep;

  fprintf(f, "    {\"peer\": \"%s\", \"family\": \"%s\", \"threads\": %u, ",
          peer->key, fam_keys[peer->fam],
          peer->fam == FAM_SERIAL ? 1 : bench.threads[peer->fam]);
  fprintf(f, "\"how\": ");
  json_write_string(f, peer->how);
  if (!measured(k, p)) {
    fprintf(f, ", \"measured\": false, \"why\": ");
    json_write_string(f, !peer_built(peer) && fam_selected(peer->fam)
                             ? fam_missing(peer->fam)
                             : "not selected (--only)");
    fprintf(f, "}");
    return;
  }
  fprintf(f, ", \"measured\": true,\n     ");
  json_write_sample(f, "elapsed_ns", bench.ns[k][p], bench.reps);
  fprintf(f, ",\n     ");
  json_write_sample(f, "cpu_after_ns", bench.cpu_after[k][p], bench.reps);
  fprintf(f, ",\n     ");
  json_write_sample(f, "cpu_later_ns", bench.cpu_later[k][p], bench.reps);
  if (peer->fam == FAM_TANDEM) {
    fprintf(f, ",\n     ");
    json_write_sample(f, "steals", bench.steals[k][p], bench.reps);
  }
  if (k == K_FIB) {
    for (rep = 0; rep < bench.reps; rep++)
      v[rep] = bench.ns[k][p][rep] / (double)bench.fib_spawns;
    fprintf(f, ",\n     ");
    json_write_sample(f, "ns_per_spawn", v, bench.reps);
    fprintf(f, ",\n     \"over_tandem\": ");
    json_write_number(f, median_ns(k, p) / median_ns(k, FIB_TANDEM));
  } else {
    fprintf(f, ",\n     \"speedup\": ");
    json_write_number(f, mandel_speedup(p));
    fprintf(f, ", \"over_best\": ");
    json_write_number(f, median_ns(k, p) / mandel_best());
  }
  fprintf(f, "}");
}

static void json_targets(FILE *f) {
  target_t t[MAX_TARGETS];
  int n;
  int i;

  n = targets(t);
  fprintf(f, "  \"targets\": [\n");
  for (i = 0; i < n; i++) {
    fprintf(f, "    {\"what\": ");
    json_write_string(f, t[i].what);
    fprintf(f, ", \"goal\": ");
    json_write_string(f, t[i].goal);
    fprintf(f, ", \"value\": ");
    json_write_number(f, t[i].value);
    fprintf(f, ", \"met\": %s}%s\n",
            t[i].met < 0 ? "null"
            : t[i].met   ? "true"
                         : "false",
            i + 1 < n ? "," : "");
  }
  fprintf(f, "  ]\n");
}

static int write_json(void) {
  FILE *f;
  int k;
  int p;

  f = bench_report_open(&bench.cli, TANDEM_VERSION_STRING, bench.workers,
                        bench.reps);
  if (f == NULL)
    return UV_EIO;
  fprintf(f, ", \"settle_ns\": %d,\n  ", SETTLE_NS);
  if (bench.nquiet > 0)
    json_write_sample(f, "quiet_cpu_ns", bench.quiet_cpu, bench.nquiet);
  else
    fprintf(f, "\"quiet_cpu_ns\": null");
  fprintf(f, ",\n");
  fprintf(f,
          "  \"fib\": {\"n\": %d, \"value\": %ld, \"calls\": %" PRIu64
          ", \"spawns\": %" PRIu64 "},\n",
          bench.fib_n, bench.fib_expected, bench.fib_calls, bench.fib_spawns);
  fprintf(f,
          "  \"mandelbrot\": {\"width\": %u, \"height\": %u, \"max_iter\": "
          "%u, \"checksum\": ",
          bench.mandel.width, bench.mandel.height, bench.mandel.max_iter);
  if (kernel_selected(K_MANDEL))
    fprintf(f, "\"%016" PRIx64 "\"},\n", bench.mandel_checksum);
  else
    fprintf(f, "null},\n");
  fprintf(f,
          "  \"threads\": {\"tandem\": %u, \"tbb\": %u, \"omp\": %u, "
          "\"rayon\": %u}},\n",
          bench.threads[FAM_TANDEM], bench.threads[FAM_TBB],
          bench.threads[FAM_OMP], bench.threads[FAM_RAYON]);
  fprintf(f, " \"tbb_version\": ");
#ifdef FORKJOIN_HAVE_TBB
  json_write_string(f, tbb_peer_version());
#else
  fprintf(f, "null");
#endif
  fprintf(f, ", \"openmp_version\": ");
#ifdef FORKJOIN_HAVE_OMP
  fprintf(f, "%d", omp_peer_version());
#else
  fprintf(f, "null");
#endif
  fprintf(f, ",\n \"rayon_lib\": ");
  json_write_string(f, bench.rayon.path);
  fprintf(f, ", \"rayon_version\": ");
  if (bench.rayon.why == NULL)
    json_write_string(f, bench.rayon.version());
  else
    fprintf(f, "null");
  fprintf(f, ", \"rustc_version\": ");
  if (bench.rayon.why == NULL)
    json_write_string(f, bench.rayon.rustc_version());
  else
    fprintf(f, "null");
  fprintf(f, ",\n");
  for (k = 0; k < NKERNELS; k++) {
    fprintf(f, "  \"%s\": [\n", kernel_keys[k]);
    for (p = 0; p < bench.npeers[k]; p++) {
      json_peer(f, k, p);
      fprintf(f, p + 1 < bench.npeers[k] ? ",\n" : "\n");
    }
    fprintf(f, "  ],\n");
  }
  json_targets(f);
  return bench_report_close(&bench.cli, f);
}

/* --------------------------------------------------------------- options */

static const char usage[] =
    "usage: forkjoin [--workers N] [--reps R] [--quick | --tiny] [--json "
    "FILE]\n"
    "                [--only PEERS] [--kernel fib|mandel] [--fib N]\n"
    "                [--rayon-lib PATH]\n"
    "  --workers N   threads of every parallel peer (default: the online "
    "CPUs)\n"
    "  --reps R      repetitions (default 9, --quick 5, --tiny 1)\n"
    "  --quick       fewer reps and a 1024x1024 image, for a quick look\n"
    "  --tiny        --quick with one rep and fib(20): a smoke test\n"
    "  --json FILE   write the JSON report to FILE (default: stdout)\n"
    "  --only PEERS  run only these peers: a comma-separated list of\n"
    "                serial, tandem, tbb, omp, rayon (e.g. for perf "
    "record)\n"
    "  --kernel K    run only fib or only mandel\n"
    "  --fib N       fib(N), 2..40, instead of fib(30)\n"
    "  --rayon-lib PATH  the Rayon peer, librayon_peer.so (default:\n"
    "                " FORKJOIN_RAYON_LIB ");\n"
    "                absent, the peer is skipped\n";

/* forkjoin's own options, as bench_cli_option_fn. */
static int own_option(void *ctx, const char *a, const char *val) {
  uint64_t v;

  (void)ctx;
  if (strcmp(a, "--fib") == 0) {
    if (bench_cli_count(val, 2, FIB_MAX_N, &v) != 0)
      return -1;
    bench.fib_n = (int)v;
    return 2;
  }
  if (strcmp(a, "--rayon-lib") == 0) {
    if (val == NULL || val[0] == '\0')
      return -1;
    bench.rayon.path = val;
    return 2;
  }
  if (strcmp(a, "--only") == 0)
    return bench_cli_pick(val, fam_keys, NFAMS, &bench.only) == 0 ? 2 : -1;
  if (strcmp(a, "--kernel") == 0) {
    if (val == NULL || (strcmp(val, "fib") != 0 && strcmp(val, "mandel") != 0))
      return -1;
    bench.kernel = strcmp(val, "fib") == 0 ? K_FIB : K_MANDEL;
    return 2;
  }
  return 0;
}

/* ------------------------------------------------------------- set-up */

static int set_up(void) {
  tandem_options_t opts;
  unsigned side;
  int err;

  bench.workers = bench_cli_workers(&bench.cli);
  bench.reps = bench_cli_reps(&bench.cli, 1, 5, 9);
  if (bench.cli.tiny && bench.fib_n == FIB_N)
    bench.fib_n = 20;
  bench.peers[K_FIB] = fib_peers;
  bench.npeers[K_FIB] = (int)(sizeof(fib_peers) / sizeof(fib_peers[0]));
  bench.peers[K_MANDEL] = mandel_peers;
  bench.npeers[K_MANDEL] =
      (int)(sizeof(mandel_peers) / sizeof(mandel_peers[0]));
  fib_count(bench.fib_n, &bench.fib_expected, &bench.fib_calls,
            &bench.fib_spawns);

  side = bench.cli.quick || bench.cli.tiny ? MANDEL_SIDE_QUICK : MANDEL_SIDE;
  bench.mandel.width = side;
  bench.mandel.height = side;
  bench.mandel.max_iter = MANDEL_MAX_ITER;
  if (kernel_selected(K_MANDEL)) {
    bench.mandel.pixels = malloc((size_t)side * side * sizeof(uint16_t));
    if (bench.mandel.pixels == NULL)
      return report_err("image", UV_ENOMEM);
    /* The reference image, which every run is checked against. */
    forkjoin_mandel_rows(0, side, &bench.mandel);
    bench.mandel_checksum = mandel_checksum(&bench.mandel);
  }

  memset(&opts, 0, sizeof(opts));
  opts.workers = bench.workers;
  err = tandem_pool_new(&bench.pool, &opts);
  if (err != 0)
    return report_err("tandem_pool_new", err);
  bench.threads[FAM_SERIAL] = 1;
  bench.threads[FAM_TANDEM] = tandem_pool_workers(bench.pool);
  bench.threads[FAM_TBB] = bench.workers;
  bench.threads[FAM_OMP] = bench.workers;
  bench.threads[FAM_RAYON] = bench.workers;
  if (fam_selected(FAM_RAYON) && rayon_load() == 0) {
    bench.threads[FAM_RAYON] = bench.rayon.init(bench.workers);
    if (bench.threads[FAM_RAYON] == 0)
      return report_err("rayon ThreadPoolBuilder", UV_ENOMEM);
  }
#ifdef FORKJOIN_HAVE_TBB
  if (fam_selected(FAM_TBB)) {
    bench.threads[FAM_TBB] = tbb_peer_init(bench.workers);
    if (bench.threads[FAM_TBB] == 0)
      return report_err("tbb task_arena", UV_ENOMEM);
  }
#endif
#ifdef FORKJOIN_HAVE_OMP
  if (fam_selected(FAM_OMP))
    bench.threads[FAM_OMP] = omp_peer_threads(bench.workers);
#endif
  return 0;
}

static int tear_down(void) {
  int err = 0;

#ifdef FORKJOIN_HAVE_TBB
  tbb_peer_fini();
#endif
  if (bench.rayon.why == NULL)
    bench.rayon.fini();
  if (bench.pool != NULL && (err = tandem_pool_free(bench.pool)) != 0)
    report_err("tandem_pool_free", err);
  free(bench.mandel.pixels);
  return err;
}

int main(int argc, char **argv) {
  struct sigaction sa;
  int err;

  bench.cli.name = "forkjoin";
  bench.cli.usage = usage;
  bench.kernel = -1;
  bench.fib_n = FIB_N;
  bench.rayon.path = FORKJOIN_RAYON_LIB;
  bench.rayon.why = "not loaded";
  if (bench_cli_parse(&bench.cli, argc, argv, own_option, NULL) != 0)
    return 2;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = watchdog_fire;
  sigaction(SIGALRM, &sa, NULL);
  err = set_up();
  if (err == 0)
    err = measure_all();
  if (tear_down() != 0 && err == 0)
    err = UV_EBUSY;
  if (err == 0)
    err = write_json();
  return err == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
