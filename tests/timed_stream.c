/* SPDX-License-Identifier: MIT */
/*
 * timed_stream: see timed_stream.h.
 */
#include "timed_stream.h"

#include <check.h>
#include <stdlib.h>

static void timed_stream_work_cb(tandem_work_t *req) {
  timed_stream_job_t *job = (timed_stream_job_t *)req;

  atomic_fetch_add_explicit(&job->ran, 1, memory_order_relaxed);
}

static void timed_stream_after_cb(tandem_work_t *req, int status);

static void timed_stream_queue(timed_stream_t *s, timed_stream_job_t *job) {
  int rc;

  rc = tandem_queue_work(s->tandem, &job->req, timed_stream_work_cb,
                         timed_stream_after_cb);
  if (rc != 0) {
    if (s->queue_error == 0)
      s->queue_error = rc;
    return;
  }
  job->queued++;
  s->queued++;
}

static void timed_stream_after_cb(tandem_work_t *req, int status) {
  timed_stream_job_t *job = (timed_stream_job_t *)req;
  timed_stream_t *s = req->data;
  uv_thread_t self = uv_thread_self();

  if (!uv_thread_equal(&self, &s->loop_thread))
    s->off_thread++;
  if (status != 0)
    s->bad_status++;
  job->called++;
  s->called++;
  if (uv_hrtime() < s->deadline && s->queue_error == 0)
    timed_stream_queue(s, job);
}

int timed_stream_start(timed_stream_t *s, tandem_t *t, unsigned width,
                       uint64_t deadline) {
  unsigned i;

  s->tandem = t;
  s->loop_thread = uv_thread_self();
  s->width = width;
  s->deadline = deadline;
  s->queued = 0;
  s->called = 0;
  s->bad_status = 0;
  s->off_thread = 0;
  s->queue_error = 0;
  s->jobs = calloc(width, sizeof(*s->jobs));
  if (s->jobs == NULL)
    return UV_ENOMEM;
  for (i = 0; i < width && s->queue_error == 0; i++) {
    s->jobs[i].req.data = s;
    timed_stream_queue(s, &s->jobs[i]);
  }
  return s->queue_error;
}

int timed_stream_done(const timed_stream_t *s) {
  return s->called == s->queued;
}

void timed_stream_check(const timed_stream_t *s) {
  unsigned bad;
  unsigned i;

  ck_assert_int_eq(s->queue_error, 0);
  ck_assert_uint_eq(s->called, s->queued);
  ck_assert_uint_ge(s->queued, s->width);
  bad = 0;
  for (i = 0; i < s->width; i++)
    if (s->jobs[i].called != s->jobs[i].queued ||
        atomic_load(&s->jobs[i].ran) != s->jobs[i].queued)
      bad++;
  ck_assert_msg(bad == 0,
                "%u of %u requests not run and called back "
                "exactly once per queue",
                bad, s->width);
  ck_assert_uint_eq(s->bad_status, 0);
  ck_assert_uint_eq(s->off_thread, 0);
}

void timed_stream_free(timed_stream_t *s) {
  free(s->jobs);
  s->jobs = NULL;
}
