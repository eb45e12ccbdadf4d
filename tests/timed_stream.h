/* SPDX-License-Identifier: MIT */
/*
 * timed_stream: a loop keeps `width` requests in flight on a tandem_t,
 * queueing each again from its after callback until a deadline, and counts
 * what the suites check: every request called back exactly as often as it
 * was queued, its work callback run as often, status 0, on the loop thread.
 *
 * Nothing here calls ck_assert but timed_stream_check(): the stream may run
 * on a loop thread that is not the test's, and Check is not thread-safe.
 */
#ifndef TIMED_STREAM_H
#define TIMED_STREAM_H

#include <stdatomic.h>
#include <stdint.h>

#include "tandem.h"

typedef struct timed_stream_job_s {
  tandem_work_t req; /* first: a request is its job */
  atomic_uint ran;   /* work callbacks */
  unsigned queued;   /* loop thread only */
  unsigned called;   /* after callbacks; loop thread only */
} timed_stream_job_t;

typedef struct timed_stream_s {
  tandem_t *tandem;
  uv_thread_t loop_thread;
  timed_stream_job_t *jobs; /* [width] */
  unsigned width;
  uint64_t deadline; /* uv_hrtime(): no job is queued again from then on */
  /* loop thread only */
  uint64_t queued;
  uint64_t called;
  unsigned bad_status;
  unsigned off_thread;
  int queue_error; /* the first error of tandem_queue_work, or 0 */
} timed_stream_t;

/* The loop thread of `t`: queues `width` jobs, each queued again from its
 * after callback until uv_hrtime() reaches `deadline`.  They keep uv_run()
 * alive until the last is called back.  Returns 0, UV_ENOMEM, or the
 * first error of tandem_queue_work. */
int timed_stream_start(timed_stream_t *s, tandem_t *t, unsigned width,
                       uint64_t deadline);

/* Every queued job called back (the loop thread, or after it stopped). */
int timed_stream_done(const timed_stream_t *s);

/* The test's thread, once the stream is done: asserts every job was called
 * back exactly as often as it was queued and ran as often, with status 0,
 * on the loop thread, and no queue failed. */
void timed_stream_check(const timed_stream_t *s);

void timed_stream_free(timed_stream_t *s);

#endif /* TIMED_STREAM_H */
