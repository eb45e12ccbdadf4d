/* SPDX-License-Identifier: MIT */
#include "worker_gate.h"

#include <stdlib.h>
#include <string.h>

static void gate_work_cb(tandem_work_t *req) {
  worker_gate_t *g;

  g = req->data;
  uv_sem_post(&g->entered);
  uv_sem_wait(&g->open);
  atomic_store(&g->stopped[req - g->reqs], tandem_work_cancelled(req));
}

static void gate_after_cb(tandem_work_t *req, int status) {
  worker_gate_t *g;

  g = req->data;
  if (status == UV_ECANCELED)
    g->cancelled++;
  /* A job that saw it was asked to stop cannot finish with 0; otherwise
   * the flag may have come after it looked, hence WORKER_GATE_EITHER. */
  if (g->expect == WORKER_GATE_EITHER ? status != 0 && status != UV_ECANCELED
                                      : status != g->expect)
    g->bad_status++;
  else if (status == 0 && atomic_load(&g->stopped[req - g->reqs]))
    g->bad_status++;
  g->finished++;
}

int worker_gate_block(worker_gate_t *g, tandem_t *t) {
  unsigned i;
  int rc;

  memset(g, 0, sizeof(*g));
  g->n = tandem_pool_workers(t->pool);
  g->reqs = calloc(g->n, sizeof(*g->reqs));
  g->stopped = calloc(g->n, sizeof(*g->stopped));
  if (g->reqs == NULL || g->stopped == NULL) {
    free(g->reqs);
    free(g->stopped);
    g->reqs = NULL;
    g->stopped = NULL;
    return UV_ENOMEM;
  }
  for (i = 0; i < g->n; i++)
    atomic_init(&g->stopped[i], 0);
  if (uv_sem_init(&g->entered, 0) != 0 || uv_sem_init(&g->open, 0) != 0)
    abort();
  atomic_init(&g->opened, 0);

  for (i = 0; i < g->n; i++) {
    g->reqs[i].data = g;
    rc = tandem_queue_work(t, &g->reqs[i], gate_work_cb, gate_after_cb);
    if (rc != 0) {
      /* Release the jobs already queued so the caller can still clean up. */
      g->n = i;
      worker_gate_open(g);
      return rc;
    }
  }

  /* A worker runs one blocking job at a time: n entered means n workers. */
  for (i = 0; i < g->n; i++)
    uv_sem_wait(&g->entered);
  return 0;
}

static void never_runs_cb(tandem_work_t *req) {
  (void)req;
}

int worker_gate_run_in_drain(tandem_t *t, tandem_work_t *req,
                             tandem_after_work_cb after) {
  int err;

  err = tandem_queue_work(t, req, never_runs_cb, after);
  return err != 0 ? err : tandem_cancel(req);
}

void worker_gate_open(worker_gate_t *g) {
  unsigned i;

  if (atomic_exchange(&g->opened, 1) != 0)
    return;
  for (i = 0; i < g->n; i++)
    uv_sem_post(&g->open);
}

void worker_gate_destroy(worker_gate_t *g) {
  uv_sem_destroy(&g->entered);
  uv_sem_destroy(&g->open);
  free(g->reqs);
  free(g->stopped);
  g->reqs = NULL;
  g->stopped = NULL;
}
