/* SPDX-License-Identifier: MIT */
/*
 * What /stats (stats_json.c) and /metrics (prometheus.c) share: a snapshot
 * of everything tandem says at one moment, and a growing text buffer that
 * becomes the answer.  Loop thread only.
 */
#ifndef COMPUTE_SERVER_REPORT_H
#define COMPUTE_SERVER_REPORT_H

#include <stdint.h>

#include "server.h"

/* Everything tandem says about the pool and the loop, at one moment. */
typedef struct {
  tandem_stats_t st;
  tandem_metrics_t m;
  tandem_loop_metrics_t loop;
  int pool;  /* there is a pool: st holds its counters */
  int timed; /* and it records time: m and loop hold it */
} snapshot_t;

/* Takes the snapshot (tandem_pool_stats, _metrics, tandem_loop_metrics). */
void snapshot_take(server_t *srv, snapshot_t *s);

/* The workers listed one by one: tandem reports the first
 * TANDEM_STATS_MAX_WORKERS. */
unsigned listed_workers(unsigned workers);

/* Jobs waiting to start (see queue_depth in report.c). */
uint64_t queue_depth(const tandem_stats_t *st);

typedef struct {
  char *buf; /* NULL once an allocation failed: the answer is then 500 */
  size_t len, cap;
} sbuf_t;

/* A buffer of `cap` bytes to start with (it grows). */
void sb_init(sbuf_t *sb, size_t cap);
/* Room for `more` bytes and a NUL; 0 (and no buffer) if out of memory. */
int sb_reserve(sbuf_t *sb, size_t more);
/* Appends; on an allocation failure the buffer is dropped (buf NULL). */
void sb_printf(sbuf_t *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Answers with the buffer (or 500 if it was dropped) and frees it. */
void sb_respond(conn_t *c, sbuf_t *sb, const char *content_type);

#endif /* COMPUTE_SERVER_REPORT_H */
