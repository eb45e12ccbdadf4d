/* SPDX-License-Identifier: MIT */
#include "run_until.h"

#include <stdlib.h>

typedef struct run_until_s {
  uv_timer_t timer;
  run_until_pred pred;
  void *arg;
  uint64_t deadline;
  int held;
  int closed;
} run_until_t;

unsigned timeout_multiplier(void) {
  const char *s;
  long m;

  s = getenv("CK_TIMEOUT_MULTIPLIER");
  if (s == NULL)
    return 1;
  m = strtol(s, NULL, 10);
  return m > 0 ? (unsigned)m : 1;
}

static void run_until_timer_cb(uv_timer_t *timer) {
  run_until_t *r;

  r = timer->data;
  if (r->pred(r->arg))
    r->held = 1;
  if (r->held || uv_now(timer->loop) >= r->deadline)
    uv_stop(timer->loop);
}

static void run_until_close_cb(uv_handle_t *handle) {
  run_until_t *r;

  r = handle->data;
  r->closed = 1;
}

int run_until(uv_loop_t *loop, run_until_pred pred, void *arg,
              uint64_t max_ms) {
  run_until_t r;

  r.pred = pred;
  r.arg = arg;
  r.held = pred(arg);
  r.closed = 0;
  if (r.held)
    return 1;

  uv_update_time(loop);
  r.deadline = uv_now(loop) + max_ms * timeout_multiplier();
  if (uv_timer_init(loop, &r.timer) != 0)
    abort();
  r.timer.data = &r;
  if (uv_timer_start(&r.timer, run_until_timer_cb, 1, 1) != 0)
    abort();

  /* uv_stop() ends one uv_run(); run again if something else stopped it. */
  while (!r.held && uv_now(loop) < r.deadline)
    uv_run(loop, UV_RUN_DEFAULT);

  uv_close((uv_handle_t *)&r.timer, run_until_close_cb);
  while (!r.closed)
    uv_run(loop, UV_RUN_NOWAIT);

  return r.held || pred(arg);
}
