/* SPDX-License-Identifier: MIT */
/* job_probe: a job that records what happened to it (job_probe.h). */
#include "job_probe.h"

#include <string.h>

void job_probe_init(job_probe_t *p, fixture_t *fx) {
  memset(p, 0, sizeof(*p));
  p->fx = fx;
  atomic_init(&p->ran, 0);
  atomic_init(&p->ticket, -1);
  p->status = 1; /* neither 0 nor an error code: "never called" */
}

void job_probe_work_cb(tandem_work_t *req) {
  job_probe_t *p;

  p = (job_probe_t *)req;
  if (p->on_start != NULL)
    p->on_start(p);
  if (p->tickets != NULL)
    atomic_store(&p->ticket, atomic_fetch_add(p->tickets, 1));
  atomic_fetch_add(&p->ran, 1);
  if (p->hold != NULL)
    hold_wait(p->hold);
  if (p->on_run != NULL)
    p->on_run(p);
}

void job_probe_after_cb(tandem_work_t *req, int status) {
  uv_thread_t self;
  job_probe_t *p;

  p = (job_probe_t *)req;
  self = uv_thread_self();
  if (!uv_thread_equal(&self, &p->fx->loop_thread))
    p->off_loop_thread++;
  p->called++;
  p->status = status;
  if (p->on_after != NULL)
    p->on_after(p);
}

int job_probe_queue(job_probe_t *p, int priority, unsigned flags,
                    uint64_t deadline) {
  tandem_job_opts_t opts;

  memset(&opts, 0, sizeof(opts));
  opts.priority = priority;
  opts.flags = flags;
  opts.deadline = deadline;
  return tandem_queue_work_ex(&p->fx->tandem, &p->req, job_probe_work_cb,
                              job_probe_after_cb, &opts);
}
