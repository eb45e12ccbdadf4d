/* SPDX-License-Identifier: MIT */
/*
 * What /stats (stats_json.c) and /metrics (prometheus.c) share: a snapshot
 * of everything tandem says at one moment, and a growing text buffer that
 * becomes the answer.  Loop thread only.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "server.h"

/* ----------------------------------------------------------- snapshots */

void snapshot_take(server_t *srv, snapshot_t *s) {
  s->pool = srv->pool != NULL && tandem_pool_stats(srv->pool, &s->st) == 0;
  /* tandem_loop_metrics() refuses a handle whose close has finished (a
   * request answered during shutdown): then there is no time to show. */
  s->timed = s->pool && tandem_pool_metrics(srv->pool, &s->m) == 0 &&
             s->m.enabled && tandem_loop_metrics(&srv->tandem, &s->loop) == 0 &&
             s->loop.enabled;
}

/* The workers listed one by one: tandem reports the first
 * TANDEM_STATS_MAX_WORKERS. */
unsigned listed_workers(unsigned workers) {
  return workers < TANDEM_STATS_MAX_WORKERS ? workers
                                            : TANDEM_STATS_MAX_WORKERS;
}

/* Jobs waiting to start: with --max-queued the pool counts every waiting
 * job (queued), else those in its injection queue and worker deques. */
uint64_t queue_depth(const tandem_stats_t *st) {
  return st->queued != 0 ? st->queued : st->inject_depth + st->total.depth;
}

/* -------------------------------------------------------- text buffers */
void sb_init(sbuf_t *sb, size_t cap) {
  sb->buf = malloc(cap);
  sb->cap = cap;
  sb->len = 0;
}

/* Room for `more` bytes and a NUL; 0 (and no buffer) if out of memory. */
int sb_reserve(sbuf_t *sb, size_t more) {
  size_t cap = sb->cap;
  char *buf;

  while (more >= cap - sb->len)
    cap *= 2;
  if (cap == sb->cap)
    return 1;
  buf = realloc(sb->buf, cap);
  if (buf == NULL) {
    free(sb->buf);
    sb->buf = NULL;
    return 0;
  }
  sb->buf = buf;
  sb->cap = cap;
  return 1;
}

void sb_printf(sbuf_t *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void sb_printf(sbuf_t *sb, const char *fmt, ...) {
  va_list ap;
  int n;

  if (sb->buf == NULL)
    return; /* an earlier allocation failed */
  va_start(ap, fmt);
  n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
  va_end(ap);
  if (n >= 0 && (size_t)n >= sb->cap - sb->len) { /* cut: grow, again */
    if (!sb_reserve(sb, (size_t)n))
      return;
    va_start(ap, fmt);
    n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
    va_end(ap);
  }
  if (n < 0) {
    free(sb->buf);
    sb->buf = NULL;
    return;
  }
  sb->len += (size_t)n;
}

/* Answers with the buffer and frees it. */
void sb_respond(conn_t *c, sbuf_t *sb, const char *content_type) {
  static const char oom[] = "out of memory\n";

  if (sb->buf == NULL) {
    conn_respond(c, 500, NULL, "text/plain", oom, sizeof(oom) - 1);
    return;
  }
  conn_respond(c, 200, NULL, content_type, sb->buf, sb->len);
  free(sb->buf);
}
