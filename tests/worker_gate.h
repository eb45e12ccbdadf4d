/* SPDX-License-Identifier: MIT */
/*
 * worker_gate: holds every worker of a pool inside a blocking job, so a test
 * can queue, cancel or close while nothing can start.
 *
 *   worker_gate_block(&g, t);   one blocking job per worker; returns once
 *                               every worker is inside one
 *   ...                         queue / cancel / close: nothing starts
 *   worker_gate_open(&g);       let them go (any thread)
 *   ...                         run the loop: the gate's after callbacks run
 *   worker_gate_destroy(&g);    once g.finished == g.n
 */
#ifndef WORKER_GATE_H
#define WORKER_GATE_H

#include <stdatomic.h>

#include "tandem.h"

typedef struct worker_gate_s {
  unsigned n; /* blocking jobs: one per worker */
  tandem_work_t *reqs;
  uv_sem_t entered; /* posted by each job when it starts */
  uv_sem_t open;    /* each job waits on it */
  atomic_int opened;
  /* loop thread only */
  unsigned finished;   /* after callbacks run */
  unsigned bad_status; /* after callbacks whose status was not 0 */
} worker_gate_t;

/* Queues one blocking job per worker of t's pool and waits until every
 * worker has started one.  Loop thread of t.  Returns 0 or the error of
 * tandem_queue_work(). */
int worker_gate_block(worker_gate_t *g, tandem_t *t);

/* Lets the blocked jobs finish.  Any thread; only the first call acts. */
void worker_gate_open(worker_gate_t *g);

/* Frees the gate once its after callbacks have run (g->finished == g->n). */
void worker_gate_destroy(worker_gate_t *g);

#endif /* WORKER_GATE_H */
