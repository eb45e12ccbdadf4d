/* SPDX-License-Identifier: MIT */
/*
 * job_probe: a job that records what happened to it -- how often its work
 * callback ran, its place in the start order, how often and with what
 * status its after callback ran, and whether that was off the loop thread
 * -- for the suites that queue jobs through tandem_queue_work_ex().
 *
 *   job_probe_t p;
 *   job_probe_init(&p, &fx);          counters cleared, status 1 (never called)
 *   p.hold = &hold;                   optional: the job waits in it
 *   job_probe_queue(&p, TANDEM_PRIO_HIGH, 0, 0);
 *   ... run the loop until p.called ...
 *
 * A suite that records more embeds a job_probe_t as the first member of its
 * own struct and sets the optional hooks; the probe's counters stay the
 * same for every suite.
 */
#ifndef JOB_PROBE_H
#define JOB_PROBE_H

#include <stdatomic.h>
#include <stdint.h>

#include "fixture.h"
#include "hold.h"
#include "tandem.h"

typedef struct job_probe_s job_probe_t;

/* A hook of the probe; the thread is the one of the callback calling it. */
typedef void (*job_probe_hook_t)(job_probe_t *p);

struct job_probe_s {
  tandem_work_t req; /* first: a job_probe_t * is its tandem_work_t * */
  /* public: set after job_probe_init(), before the job is queued */
  const char *name;          /* a label for messages; NULL unless set */
  hold_t *hold;              /* if set, the job waits in it once counted */
  atomic_int *tickets;       /* if set, the job takes `ticket` from it */
  job_probe_hook_t on_start; /* worker: before the job is counted */
  job_probe_hook_t on_run;   /* worker: once counted and past `hold` */
  job_probe_hook_t on_after; /* loop thread: once the after is counted */
  /* read-only */
  atomic_int ran;    /* work callbacks run */
  atomic_int ticket; /* its place in the start order; -1 before (or none) */
  /* read-only, loop thread only */
  int called;          /* after callbacks run */
  int status;          /* status of the last one; 1 before */
  int off_loop_thread; /* after callbacks run on another thread */
  /* private */
  fixture_t *fx; /* the pool, loop and handle it is queued on */
};

/* Clears p for a job on fx's handle; no hooks, no hold, no tickets. */
void job_probe_init(job_probe_t *p, fixture_t *fx);

/* The probe's callbacks, for tandem_queue_work() and the like. */
void job_probe_work_cb(tandem_work_t *req);
void job_probe_after_cb(tandem_work_t *req, int status);

/* Loop thread.  tandem_queue_work_ex() of p with these options; returns
 * what it returns. */
int job_probe_queue(job_probe_t *p, int priority, unsigned flags,
                    uint64_t deadline);

#endif /* JOB_PROBE_H */
