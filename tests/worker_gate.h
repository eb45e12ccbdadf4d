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
 *
 * The gate's jobs are running, so a tandem_close of their handle (or a
 * tandem_cancel of one) while they block asks them to stop: they get
 * UV_ECANCELED (issue #13).  A test that does so says it expects that:
 * g.expect = UV_ECANCELED after worker_gate_block.
 */
#ifndef WORKER_GATE_H
#define WORKER_GATE_H

#include <stdatomic.h>

#include "tandem.h"

/* g.expect: either 0 or UV_ECANCELED, for a handle closed just as the
 * gate's jobs return (tandem_close racing worker_gate_open). */
#define WORKER_GATE_EITHER 1

typedef struct worker_gate_s {
  unsigned n; /* blocking jobs: one per worker */
  tandem_work_t *reqs;
  atomic_int *stopped; /* [n]: tandem_work_cancelled was 1 as it returned */
  uv_sem_t entered;    /* posted by each job when it starts */
  uv_sem_t open;       /* each job waits on it */
  atomic_int opened;
  /* loop thread only */
  int expect;          /* the status each after callback must get: 0 (set
                          by worker_gate_block), UV_ECANCELED or
                          WORKER_GATE_EITHER */
  unsigned finished;   /* after callbacks run */
  unsigned cancelled;  /* of them with UV_ECANCELED */
  unsigned bad_status; /* with a status other than `expect`, or 0 though
                          the job saw tandem_work_cancelled() as it
                          returned */
} worker_gate_t;

/* Queues one blocking job per worker of t's pool and waits until every
 * worker has started one.  Loop thread of t.  Returns 0 or the error of
 * tandem_queue_work(). */
int worker_gate_block(worker_gate_t *g, tandem_t *t);

/* Loop thread of t, while the gate holds every worker: queues `req` and
 * cancels it at once, so that `after` runs inside a drain, where after
 * callbacks run (with UV_ECANCELED), on the loop's next turn.  Returns 0
 * or the first error. */
int worker_gate_run_in_drain(tandem_t *t, tandem_work_t *req,
                             tandem_after_work_cb after);

/* Lets the blocked jobs finish.  Any thread; only the first call acts. */
void worker_gate_open(worker_gate_t *g);

/* Frees the gate once its after callbacks have run (g->finished == g->n). */
void worker_gate_destroy(worker_gate_t *g);

#endif /* WORKER_GATE_H */
