/* SPDX-License-Identifier: MIT */
#include "worker_gate.h"

#include <stdlib.h>
#include <string.h>

static void gate_work_cb(tandem_work_t *req) {
  worker_gate_t *g;

  g = req->data;
  uv_sem_post(&g->entered);
  uv_sem_wait(&g->open);
}

static void gate_after_cb(tandem_work_t *req, int status) {
  worker_gate_t *g;

  g = req->data;
  if (status != 0)
    g->bad_status++;
  g->finished++;
}

int worker_gate_block(worker_gate_t *g, tandem_t *t) {
  unsigned i;
  int rc;

  memset(g, 0, sizeof(*g));
  g->n = tandem_pool_workers(t->pool);
  g->reqs = calloc(g->n, sizeof(*g->reqs));
  if (g->reqs == NULL)
    return UV_ENOMEM;
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
  g->reqs = NULL;
}
