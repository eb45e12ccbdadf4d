/* SPDX-License-Identifier: MIT */
/*
 * fixture: the setup and teardown most tests share -- a pool, a uv loop and
 * a tandem_t joining them -- and, at teardown, proof that everything closed
 * cleanly, as libuv's tests prove it with MAKE_VALGRIND_HAPPY: tandem_close()
 * returns 0, the loop runs until the close callback ran, uv_loop_close()
 * returns 0 (else the handles still open are named in the failure) and
 * tandem_pool_free() returns 0.
 *
 *   fixture_t f;
 *   fixture_open(&f, NULL);   pool (NULL = default options), loop, handle
 *   ... queue on &f.tandem, run &f.loop ...
 *   fixture_close(&f);        close the handle, the loop, the pool
 *
 * fixture_open() and fixture_close() ck_assert, so they belong to the
 * test's own thread.  A loop on another thread uses fixture_loop_open() and
 * fixture_loop_close(), which assert nothing: they return 0 or the first
 * error and describe it in f->error, for the test's thread to assert.
 */
#ifndef FIXTURE_H
#define FIXTURE_H

#include "tandem.h"

typedef struct fixture_s {
  tandem_pool_t *pool; /* fixture_open's; not owned by fixture_loop_* */
  uv_loop_t loop;
  tandem_t tandem;         /* on `loop` and `pool` */
  uv_thread_t loop_thread; /* the thread that opened the loop */
  int close_called;        /* times the handle's close callback ran */
  char error[512];         /* fixture_loop_*: what failed, "" if nothing */
} fixture_t;

/* The test's thread.  Makes a pool with `opts` (NULL = defaults), a loop,
 * and a handle joining them; ck_asserts each step. */
void fixture_open(fixture_t *f, const tandem_options_t *opts);

/* The test's thread, also the loop's.  Closes the handle, runs the loop
 * until its close callback ran, closes the loop and frees the pool, and
 * asserts each step returned 0. */
void fixture_close(fixture_t *f);

/* As fixture_close(), for a test that closed the handle itself and ran the
 * loop until its close callback ran: asserts uv_loop_close() and
 * tandem_pool_free() return 0. */
void fixture_finish(fixture_t *f);

/* Any thread, which becomes the loop's: a loop and a handle on `pool`
 * (fixture_open's or another).  Returns 0 or the first error. */
int fixture_loop_open(fixture_t *f, tandem_pool_t *pool);

/* The loop's thread: tandem_close(), uv_run() until the close callback ran,
 * uv_loop_close().  Returns 0 or the first error. */
int fixture_loop_close(fixture_t *f);

/* The loop's thread, once the handle is closed: uv_loop_close(), naming
 * every handle still open in f->error if it fails.  Returns its result. */
int fixture_loop_done(fixture_t *f);

/* The test's thread: a pool of `workers` workers and no loop, for tests
 * that use a pool from plain threads or attach a loop later (with
 * fixture_loop_open()).  ck_asserts tandem_pool_new() returns 0 and the
 * pool has `workers` workers.  The test frees it with tandem_pool_free()
 * (asserting 0), or fixture_close() does, once fixture_loop_open() put it
 * in f->pool. */
tandem_pool_t *fixture_pool(unsigned workers);

/* A zeroed tandem_options_t with `workers` workers. */
tandem_options_t fixture_options(unsigned workers);

#endif /* FIXTURE_H */
