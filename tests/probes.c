/* SPDX-License-Identifier: MIT */
/*
 * probes: see probes.h.
 */
#include "probes.h"

#include <check.h>
#include <string.h>

void probes_open(probes_t *ps, unsigned workers, probe_t *probe, int width,
                 int total, tandem_work_cb work) {
  tandem_options_t opts;

  memset(ps, 0, sizeof(*ps));
  memset(probe, 0, (size_t)width * sizeof(*probe));
  opts = fixture_options(workers);
  fixture_open(&ps->f, &opts);
  ps->probe = probe;
  ps->width = width;
  ps->total = total;
  ps->work = work;
}

void probes_close(probes_t *ps) {
  fixture_finish(&ps->f);
}

int probes_queue(probes_t *ps, probe_t *p) {
  int err;

  err = tandem_queue_work(&ps->f.tandem, &p->req, ps->work, ps->after);
  if (err == 0) {
    p->queued++;
    ps->queued_total++;
  }
  return err;
}

void probes_start(probes_t *ps, tandem_after_work_cb after) {
  int i;

  ps->after = after;
  for (i = 0; i < ps->width; i++)
    ck_assert_int_eq(probes_queue(ps, &ps->probe[i]), 0);
}

void probes_count(probes_t *ps, probe_t *p, int status) {
  uv_thread_t self = uv_thread_self();

  if (!uv_thread_equal(&self, &ps->f.loop_thread))
    ps->afters_off_thread++;
  ps->afters++;
  p->called++;
  if (status == UV_ECANCELED)
    ps->cancelled++;
  else if (status != 0)
    ps->bad_status++;
}

void probes_requeue(probes_t *ps, probe_t *p) {
  if (!ps->stop_requeue && ps->queued_total < ps->total &&
      probes_queue(ps, p) != 0)
    ps->bad_calls++;
}

probe_t *probes_cancel_one(probes_t *ps, probe_t *newest) {
  int err;

  if (newest->called == newest->queued)
    return NULL; /* not queued again: the run is over or stopped */
  err = tandem_cancel(&newest->req);
  if (err == 0)
    return newest;
  ps->bad_calls++; /* nothing could have taken it */
  return NULL;
}

int probes_ran(probes_t *ps) {
  int ran;
  int i;

  for (ran = 0, i = 0; i < ps->width; i++)
    ran += atomic_load(&ps->probe[i].ran);
  return ran;
}

void probes_check_once(const probes_t *ps) {
  int i;

  for (i = 0; i < ps->width; i++)
    ck_assert_int_eq(ps->probe[i].called, ps->probe[i].queued);
  ck_assert_int_eq(ps->afters, ps->queued_total);
  ck_assert_int_eq(ps->afters_off_thread, 0);
  ck_assert_int_eq(ps->bad_status, 0);
  ck_assert_int_eq(ps->bad_calls, 0);
}
