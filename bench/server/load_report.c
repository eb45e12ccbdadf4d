/* SPDX-License-Identifier: MIT */
/*
 * load_report: what the load driver prints and writes (see load.h): one
 * table per metric with every peer side by side and its ratio to hybrid,
 * the targets, met or not, and the JSON that run.sh documents.
 */
#include "load.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "json_write.h"
#include "machine.h"

/* -------------------------------------------------------------- tables */

static int table_variants; /* the current table shows hybrid's variants */

static int column_shown(int p) {
  return res[p].selected && (table_variants || !IS_VARIANT(p));
}

static void table_head(const char *title, int variants) {
  int p;

  table_variants = variants;
  printf("\n%s\n%-26s", title, "");
  for (p = 0; p < NPEERS; p++)
    if (column_shown(p))
      printf("%14s", peer_titles[p]);
  printf("\n");
}

/* One row: v[peer] with `dec` decimals ("-" for NaN or a peer that did
 * not run); ratio rows print v[peer] / v[hybrid] as "1.23x". */
static void table_row(const char *label, const double *v, int dec, int ratio) {
  double x, h = v[PEER_HYBRID];
  char cell[32];
  int p;

  printf("  %-24s", label);
  for (p = 0; p < NPEERS; p++) {
    if (!column_shown(p))
      continue;
    x = ratio ? v[p] / h : v[p];
    if (!res[p].ran || isnan(x) || isinf(x))
      snprintf(cell, sizeof(cell), "-");
    else if (ratio)
      snprintf(cell, sizeof(cell), "%.*fx", x >= 100 ? 0 : 2, x);
    else
      snprintf(cell, sizeof(cell), "%.*f", dec, x);
    printf("%14s", cell);
  }
  printf("\n");
}

/* A row of `expr`, evaluated with r pointing at each peer's result. */
#define ROW(label, expr, dec, ratio)                                           \
  do {                                                                         \
    double v_[NPEERS];                                                         \
    int p_;                                                                    \
    for (p_ = 0; p_ < NPEERS; p_++) {                                          \
      const result_t *r = &res[p_];                                            \
      v_[p_] = (expr);                                                         \
      (void)r;                                                                 \
    }                                                                          \
    table_row(label, v_, dec, ratio);                                          \
  } while (0)

static void lat_rows(int loaded) {
#define L (loaded ? &r->loaded : &r->idle)
  ROW("samples", (double)L->n, 0, 0);
  ROW("p50", L->p50, 1, 0);
  ROW("p99", L->p99, 1, 0);
  ROW("p99.9", L->p999, 1, 0);
  ROW("max", L->max, 1, 0);
  ROW("p50 / hybrid's", L->p50, 0, 1);
  ROW("p99 / hybrid's", L->p99, 0, 1);
  ROW("p99.9 / hybrid's", L->p999, 0, 1);
#undef L
}

void report_tables(void) {
  char title[256];

  printf("\nRatios are peer / hybrid: above 1x means hybrid is better for a "
         "latency,\nworse for a throughput.  hybrid's variants (loaded phase "
         "only): nice0 =\n--worker-nice 0; slice = loop thread given a "
         "%.1f ms EEVDF slice; idle = workers\nin SCHED_IDLE.\n",
         LOOP_SLICE_NS / 1e6);

  snprintf(title, sizeof(title),
           "== /ping latency, idle server (us): one connection, one ping "
           "every %u ms ==",
           cfg.interval_ms);
  table_head(title, 0);
  lat_rows(0);

  snprintf(title, sizeof(title),
           "== /ping latency under /fib load (us): %u connections of "
           "back-to-back /fib/%u,\n   and the same paced ping connection ==",
           cfg.fib_conns, cfg.fib_n);
  table_head(title, 1);
  lat_rows(1);
  ROW("p99 loaded / hybrid idle", r->loaded.p99 / res[PEER_HYBRID].idle.p99, 2,
      0);

  snprintf(title, sizeof(title),
           "== /fib/%u throughput under that load (requests/s); one /fib on "
           "an idle server (ms) ==",
           cfg.fib_n);
  table_head(title, 1);
  ROW("/fib req/s", r->fib_rps, 1, 0);
  ROW("req/s / hybrid's", r->fib_rps, 0, 1);
  ROW("one /fib, idle (ms)", r->fib_idle_ms, 2, 0);

  snprintf(title, sizeof(title),
           "== /ping throughput, no heavy work (requests/s): %u connections "
           "back to back ==",
           cfg.ping_conns);
  table_head(title, 0);
  ROW("/ping req/s", r->ping_rps, 0, 0);
  ROW("req/s / hybrid's", r->ping_rps, 0, 1);
  ROW("client CPU (cores)", r->s_flood.client_cpu, 2, 0);
  ROW("server main thread CPU", r->s_flood.loop_cpu, 2, 0);

  table_head("== scheduling in the loaded window (/proc/PID/task/*/schedstat,"
             " stat) ==",
             1);
  ROW("worker nice", r->worker_nice == INT_MIN ? NAN : r->worker_nice, 0, 0);
  ROW("main thread CPU (cores)", r->s_loaded.loop_cpu, 2, 0);
  ROW("other threads CPU", r->s_loaded.others_cpu, 2, 0);
  ROW("main: wait/run idle (us)", r->s_idle.loop_wait_us, 1, 0);
  ROW("main: wait/run loaded", r->s_loaded.loop_wait_us, 1, 0);
  ROW("main: sleeps/s loaded", r->s_loaded.loop_vcsw, 0, 0);
  ROW("main: preempted/s loaded", r->s_loaded.loop_ivcsw, 0, 0);
  ROW("client: wait/run loaded", r->s_loaded.client_wait_us, 1, 0);
  ROW("client CPU (cores)", r->s_loaded.client_cpu, 2, 0);
  printf("  wait/run: mean run-queue wait each time the thread got a CPU; "
         "sleeps and\n  preempted: its voluntary and involuntary context "
         "switches.  The main thread\n  is the loop thread of hybrid, inline "
         "and uvwork; the acceptor of threads.\n");

  if (!cfg.use_wrk)
    return;
  snprintf(title, sizeof(title),
           "== wrk -t1 -c%u: %u%% /fib/%u, the rest /ping, %u s "
           "(latency over all requests, us) ==",
           cfg.wrk_conns, cfg.wrk_pct, cfg.fib_n, cfg.wrk_secs);
  table_head(title, 0);
  ROW("req/s", r->mixed.ok ? r->mixed.rps : NAN, 0, 0);
  ROW("req/s / hybrid's", r->mixed.ok ? r->mixed.rps : NAN, 0, 1);
  ROW("p50", r->mixed.ok ? r->mixed.p50 : NAN, 0, 0);
  ROW("p90", r->mixed.ok ? r->mixed.p90 : NAN, 0, 0);
  ROW("p99", r->mixed.ok ? r->mixed.p99 : NAN, 0, 0);
  ROW("p99.9", r->mixed.ok ? r->mixed.p999 : NAN, 0, 0);
  ROW("p99 / hybrid's", r->mixed.ok ? r->mixed.p99 : NAN, 0, 1);
  ROW("errors", r->mixed.ok ? r->mixed.errors : NAN, 0, 0);

  snprintf(title, sizeof(title),
           "== wrk -t1 -c%u: /ping only, %u s (us) ==", cfg.wrk_conns,
           cfg.wrk_ping_secs);
  table_head(title, 0);
  ROW("req/s", r->ping.ok ? r->ping.rps : NAN, 0, 0);
  ROW("req/s / hybrid's", r->ping.ok ? r->ping.rps : NAN, 0, 1);
  ROW("p50", r->ping.ok ? r->ping.p50 : NAN, 0, 0);
  ROW("p99", r->ping.ok ? r->ping.p99 : NAN, 0, 0);
  ROW("errors", r->ping.ok ? r->ping.errors : NAN, 0, 0);
}

/* ------------------------------------------------------------- targets */

typedef struct target_s {
  const char *key;
  char text[400];
  double value, bar;
  int known, met;
} target_t;

#define NTARGETS 5
static target_t targets[NTARGETS];

/* " hybrid/x: p99 P us, wait W us, /fib F req/s;" for a variant that ran. */
static void variant_text(char *out, size_t len, int p) {
  const result_t *v = &res[p];

  if (!v->ran) {
    out[0] = '\0';
    return;
  }
  snprintf(out, len, "; %s: p99 %.0f us, wait %.0f us, /fib %.0f/s",
           peer_titles[p], v->loaded.p99, v->s_loaded.loop_wait_us, v->fib_rps);
}

static void evaluate_targets(void) {
  const result_t *h = &res[PEER_HYBRID], *in = &res[PEER_INLINE];
  char v0[96], v1[96], v2[96];
  target_t *t;

  t = &targets[0];
  t->key = "hybrid_loaded_p99_vs_idle";
  t->bar = 2;
  t->value = h->loaded.p99 / h->idle.p99;
  t->known = h->ran && !isnan(t->value);
  t->met = t->known && t->value <= t->bar;
  snprintf(t->text, sizeof(t->text),
           "hybrid /ping p99 under /fib load <= 2x its idle p99: %.1f us vs "
           "%.1f us idle = %.2fx",
           h->loaded.p99, h->idle.p99, t->value);

  t = &targets[1];
  t->key = "inline_vs_hybrid_loaded_p99";
  t->bar = 20;
  t->value = in->loaded.p99 / h->loaded.p99;
  t->known = h->ran && in->ran && !isnan(t->value);
  t->met = t->known && t->value >= t->bar;
  snprintf(t->text, sizeof(t->text),
           "hybrid /ping p99 under load >= 20x better than inline's: inline "
           "%.0f us / hybrid %.1f us = %.1fx",
           in->loaded.p99, h->loaded.p99, t->value);

  t = &targets[2];
  t->key = "hybrid_vs_inline_fib_rps";
  t->bar = 1.8;
  t->value = h->fib_rps / in->fib_rps;
  t->known = h->ran && in->ran && !isnan(t->value);
  t->met = t->known && t->value >= t->bar;
  snprintf(t->text, sizeof(t->text),
           "/fib throughput with %u workers >= 1.8x inline's: %.1f vs %.1f "
           "req/s = %.2fx%s",
           cfg.workers, h->fib_rps, in->fib_rps, t->value,
           cfg.workers == 2 ? "" : " (the bar is for 2 workers)");

  t = &targets[3];
  t->key = "hybrid_vs_inline_ping_rps";
  t->bar = 0.9;
  t->value = h->ping_rps / in->ping_rps;
  t->known = h->ran && in->ran && !isnan(t->value);
  t->met = t->known && t->value >= t->bar;
  snprintf(t->text, sizeof(t->text),
           "/ping throughput, no heavy work, within 10%% of inline's: %.0f vs "
           "%.0f req/s = %.2fx%s",
           h->ping_rps, in->ping_rps, t->value,
           h->s_flood.client_cpu > 0.9 || in->s_flood.client_cpu > 0.9
               ? " (the client used ~1 core: may be client-bound, see wrk)"
               : "");

  /* The kernel lets the loop thread in when it wakes: under load its mean
   * run-queue wait per run stays within 50 us (or twice its idle wait),
   * far below a time slice of the workers it must preempt. */
  t = &targets[4];
  t->key = "hybrid_loop_wait_loaded_us";
  t->bar = fmax(50, 2 * h->s_idle.loop_wait_us);
  t->value = h->s_loaded.loop_wait_us;
  t->known = h->ran && h->s_loaded.ok && !isnan(t->value);
  t->met = t->known && t->value <= t->bar;
  variant_text(v0, sizeof(v0), PEER_NICE0);
  variant_text(v1, sizeof(v1), PEER_SLICE);
  variant_text(v2, sizeof(v2), PEER_IDLE);
  snprintf(t->text, sizeof(t->text),
           "the kernel prefers the loop thread when it wakes: run-queue "
           "wait %.1f us per run under load (idle %.1f, bar %.0f), workers at "
           "nice %d, /ping p99 %.0f us%s%s%s",
           t->value, h->s_idle.loop_wait_us, t->bar,
           h->worker_nice == INT_MIN ? 0 : h->worker_nice, h->loaded.p99, v0,
           v1, v2);
}

void report_targets(void) {
  int i;

  evaluate_targets();
  printf("\n== targets ==\n");
  for (i = 0; i < NTARGETS; i++)
    printf("  [%-7s] %s\n",
           !targets[i].known ? "unknown"
           : targets[i].met  ? "met"
                             : "NOT met",
           targets[i].text);
}

/* ---------------------------------------------------------------- JSON */

static void jnum(FILE *f, const char *peer, const char *key, double v) {
  fprintf(f, ",\n  \"%s%s%s\": ", peer, peer[0] ? "." : "", key);
  json_write_number(f, v);
}

static void jstr(FILE *f, const char *peer, const char *key, const char *s) {
  fprintf(f, ",\n  \"%s%s%s\": ", peer, peer[0] ? "." : "", key);
  json_write_string(f, s);
}

void report_json(const char *path, const char *kernel, double load0,
                 double load1, double others_cores) {
  char model[128];
  FILE *f = fopen(path, "w");
  const result_t *r;
  const char *k;
  size_t j;
  int p, i;

  if (f == NULL) {
    fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    return;
  }
  machine_cpu_model(model, sizeof(model));
  fprintf(f, "{\n  \"schema\": \"tandem-bench-server/1\"");
  jstr(f, "", "cpu_model", model);
  jstr(f, "", "kernel", kernel);
  jnum(f, "", "cores", machine_cores());
  jnum(f, "", "loadavg_start", load0);
  jnum(f, "", "loadavg_end", load1);
  jnum(f, "", "other_cpu_cores", others_cores);
  jnum(f, "", "quick", cfg.quick);
  jnum(f, "", "rounds", ROUNDS);
  jnum(f, "", "workers", cfg.workers);
  jnum(f, "", "fib_n", cfg.fib_n);
  jnum(f, "", "fib_local_ms", fib_local_ms);
  jnum(f, "", "fib_conns", cfg.fib_conns);
  jnum(f, "", "ping_conns", cfg.ping_conns);
  jnum(f, "", "ping_interval_ms", cfg.interval_ms);
  jnum(f, "", "client_nice", cfg.boosted ? cfg.client_nice : 0);
  jnum(f, "", "wrk_ran", cfg.use_wrk);
  jnum(f, "", "wrk_conns", cfg.wrk_conns);
  jnum(f, "", "wrk_fib_pct", cfg.wrk_pct);
  jnum(f, "", "wrk_secs", cfg.wrk_secs);
  jnum(f, "", "wrk_ping_secs", cfg.wrk_ping_secs);
  jnum(f, "", "loop_slice_ns", LOOP_SLICE_NS);
  for (p = 0; p < NPEERS; p++) {
    r = &res[p];
    k = peer_keys[p];
    if (!r->selected)
      continue;
    jnum(f, k, "ran", r->ran);
    jstr(f, k, "note", r->note);
    jnum(f, k, "exit_code", r->ran ? r->exit_code : NAN);
    jnum(f, k, "errors", r->errors);
    jnum(f, k, "worker_nice", r->worker_nice == INT_MIN ? NAN : r->worker_nice);
    jnum(f, k, "fib_idle_ms", r->fib_idle_ms);
    jnum(f, k, "idle_ping_n", (double)r->idle.n);
    jnum(f, k, "idle_ping_p50_us", r->idle.p50);
    jnum(f, k, "idle_ping_p99_us", r->idle.p99);
    jnum(f, k, "idle_ping_p999_us", r->idle.p999);
    jnum(f, k, "idle_ping_max_us", r->idle.max);
    jnum(f, k, "loaded_ping_n", (double)r->loaded.n);
    jnum(f, k, "loaded_ping_p50_us", r->loaded.p50);
    jnum(f, k, "loaded_ping_p99_us", r->loaded.p99);
    jnum(f, k, "loaded_ping_p999_us", r->loaded.p999);
    jnum(f, k, "loaded_ping_max_us", r->loaded.max);
    jnum(f, k, "loaded_fib_rps", r->fib_rps);
    jnum(f, k, "ping_rps", r->ping_rps);
    jnum(f, k, "ping_client_cpu", r->s_flood.client_cpu);
    jnum(f, k, "loop_wait_idle_us", r->s_idle.loop_wait_us);
    jnum(f, k, "loop_wait_loaded_us", r->s_loaded.loop_wait_us);
    jnum(f, k, "loop_cpu_loaded", r->s_loaded.loop_cpu);
    jnum(f, k, "loop_sleeps_per_s_loaded", r->s_loaded.loop_vcsw);
    jnum(f, k, "loop_preempted_per_s_loaded", r->s_loaded.loop_ivcsw);
    jnum(f, k, "workers_cpu_loaded", r->s_loaded.others_cpu);
    jnum(f, k, "client_wait_loaded_us", r->s_loaded.client_wait_us);
    jnum(f, k, "wrk_mixed_rps", r->mixed.ok ? r->mixed.rps : NAN);
    jnum(f, k, "wrk_mixed_p50_us", r->mixed.ok ? r->mixed.p50 : NAN);
    jnum(f, k, "wrk_mixed_p90_us", r->mixed.ok ? r->mixed.p90 : NAN);
    jnum(f, k, "wrk_mixed_p99_us", r->mixed.ok ? r->mixed.p99 : NAN);
    jnum(f, k, "wrk_mixed_p999_us", r->mixed.ok ? r->mixed.p999 : NAN);
    jnum(f, k, "wrk_mixed_mean_us", r->mixed.ok ? r->mixed.mean : NAN);
    jnum(f, k, "wrk_mixed_max_us", r->mixed.ok ? r->mixed.max : NAN);
    jnum(f, k, "wrk_mixed_errors", r->mixed.ok ? r->mixed.errors : NAN);
    jnum(f, k, "wrk_ping_rps", r->ping.ok ? r->ping.rps : NAN);
    jnum(f, k, "wrk_ping_p50_us", r->ping.ok ? r->ping.p50 : NAN);
    jnum(f, k, "wrk_ping_p99_us", r->ping.ok ? r->ping.p99 : NAN);
    jnum(f, k, "wrk_ping_errors", r->ping.ok ? r->ping.errors : NAN);
  }
  for (i = 0; i < NTARGETS; i++) {
    jnum(f, "target", targets[i].key, targets[i].value);
    fprintf(f, ",\n  \"target.%s.bar\": ", targets[i].key);
    json_write_number(f, targets[i].bar);
    fprintf(f, ",\n  \"target.%s.met\": %s", targets[i].key,
            !targets[i].known ? "null"
            : targets[i].met  ? "true"
                              : "false");
  }
  for (p = 0; p < NPEERS; p++) {
    r = &res[p];
    if (!r->selected || !r->ran)
      continue;
    fprintf(f, ",\n  \"samples.%s.loaded_ping_us\": [", peer_keys[p]);
    for (j = 0; j < r->loaded_lat.n; j++) {
      if (j > 0)
        fputc(',', f);
      fprintf(f, "%.1f", r->loaded_lat.v[j]);
    }
    fputc(']', f);
  }
  fprintf(f, "\n}\n");
  if (fclose(f) != 0)
    fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
}
