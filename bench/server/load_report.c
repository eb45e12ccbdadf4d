/* SPDX-License-Identifier: MIT */
/*
 * load_report: the load driver's report (see load.h): every figure of
 * every peer and the targets, met or not, as the flat JSON that run.sh
 * documents.  bench/tandem-bench prints it as tables.
 */
#include "load.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "json_write.h"

/* ------------------------------------------------------------- targets */

typedef struct target_s {
  const char *key;
  double value, bar;
  int known, met;
} target_t;

#define NTARGETS 5
static target_t targets[NTARGETS];

/* Sets target i; `higher`: the value must reach the bar, else stay under
 * it; `ran`: what it needs was measured. */
static void target_set(int i, const char *key, double value, double bar,
                       int higher, int ran) {
  target_t *t = &targets[i];

  t->key = key;
  t->value = value;
  t->bar = bar;
  t->known = ran && !isnan(value);
  t->met = t->known && (higher ? value >= bar : value <= bar);
}

static void evaluate_targets(void) {
  const result_t *h = &res[PEER_HYBRID], *in = &res[PEER_INLINE];

  target_set(0, "hybrid_loaded_p99_vs_idle", h->loaded.p99 / h->idle.p99, 2, 0,
             h->ran);
  target_set(1, "inline_vs_hybrid_loaded_p99", in->loaded.p99 / h->loaded.p99,
             20, 1, h->ran && in->ran);
  target_set(2, "hybrid_vs_inline_fib_rps", h->fib_rps / in->fib_rps, 1.8, 1,
             h->ran && in->ran);
  target_set(3, "hybrid_vs_inline_ping_rps", h->ping_rps / in->ping_rps, 0.9, 1,
             h->ran && in->ran);
  /* The kernel lets the loop thread in when it wakes: under load its mean
   * run-queue wait per run stays within 50 us (or twice its idle wait),
   * far below a time slice of the workers it must preempt. */
  target_set(4, "hybrid_loop_wait_loaded_us", h->s_loaded.loop_wait_us,
             fmax(50, 2 * h->s_idle.loop_wait_us), 0, h->ran && h->s_loaded.ok);
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

/* P.wait_n, P.wait_{mean,p50,p90,p99,p999,max}_ns (or run_...). */
static void jobtime_json(FILE *f, const char *peer, const char *what,
                         const jobtime_t *t) {
  static const char *const keys[] = {"n",      "mean_ns", "p50_ns", "p90_ns",
                                     "p99_ns", "p999_ns", "max_ns"};
  const double v[] = {t->count, t->mean, t->p50, t->p90,
                      t->p99,   t->p999, t->max};
  char key[32];
  size_t i;

  for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
    snprintf(key, sizeof(key), "%s_%s", what, keys[i]);
    jnum(f, peer, key, v[i]);
  }
}

int report_json(const bench_cli_t *cli, const char *kernel, double load0,
                double load1, double others_cores) {
  const result_t *r;
  const char *k;
  size_t j;
  int p, i;
  FILE *f;

  evaluate_targets();
  f = bench_report_open(cli, NULL, cfg.workers, ROUNDS);
  if (f == NULL)
    return UV_EIO;
  fprintf(f, "},\n  \"schema\": \"tandem-bench-server/1\"");
  jstr(f, "", "kernel", kernel);
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
    jnum(f, k, "skipped", r->skipped);
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
    jnum(f, k, "cpu_per_fib_ms", r->cpu_ms_per_fib);
    jnum(f, k, "cpu_loaded", r->s_loaded.proc_cpu);
    jnum(f, k, "rss_mib", r->rss / (1 << 20));
    jnum(f, k, "rss_peak_mib", r->rss_peak / (1 << 20));
    jnum(f, k, "loaded_fib_n", (double)r->loaded_fib.n);
    jnum(f, k, "loaded_fib_mean_us", r->loaded_fib.mean);
    jnum(f, k, "loaded_fib_p50_us", r->loaded_fib.p50);
    jnum(f, k, "loaded_fib_p99_us", r->loaded_fib.p99);
    jnum(f, k, "loaded_fib_p999_us", r->loaded_fib.p999);
    if (r->has_jobtime) {
      jobtime_json(f, k, "wait", &r->wait);
      jobtime_json(f, k, "run", &r->run);
    }
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
  fprintf(f, "\n");
  return bench_report_close(cli, f);
}
