/* SPDX-License-Identifier: MIT */
/*
 * fixture: see fixture.h.
 */
#include "fixture.h"

#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static void fixture_fail(fixture_t *f, const char *what, int rc) {
  if (f->error[0] == '\0')
    snprintf(f->error, sizeof(f->error), "%s: %s (%d)", what,
             rc < 0 ? uv_err_name(rc) : "not 0", rc);
}

static void fixture_close_cb(tandem_t *t) {
  fixture_t *f;

  f = (fixture_t *)(void *)((char *)t - offsetof(fixture_t, tandem));
  f->close_called++;
}

/* Appends one open handle to f->error. */
static void fixture_name_handle(uv_handle_t *h, void *arg) {
  fixture_t *f;
  size_t used;

  f = arg;
  used = strlen(f->error);
  snprintf(f->error + used, sizeof(f->error) - used, " %s%s%s",
           uv_handle_type_name(h->type), uv_is_active(h) ? "(active)" : "",
           uv_is_closing(h) ? "(closing)" : "");
}

tandem_options_t fixture_options(unsigned workers) {
  tandem_options_t opts;

  memset(&opts, 0, sizeof(opts));
  opts.workers = workers;
  return opts;
}

int fixture_loop_open(fixture_t *f, tandem_pool_t *pool) {
  int rc;

  f->pool = pool;
  f->close_called = 0;
  f->error[0] = '\0';
  f->loop_thread = uv_thread_self();
  rc = uv_loop_init(&f->loop);
  if (rc != 0) {
    fixture_fail(f, "uv_loop_init", rc);
    return rc;
  }
  rc = tandem_init(&f->loop, &f->tandem, pool);
  if (rc != 0) {
    fixture_fail(f, "tandem_init", rc);
    (void)uv_loop_close(&f->loop);
  }
  return rc;
}

int fixture_loop_done(fixture_t *f) {
  int rc;

  rc = uv_loop_close(&f->loop);
  if (rc != 0) {
    fixture_fail(f, "uv_loop_close", rc);
    snprintf(f->error + strlen(f->error), sizeof(f->error) - strlen(f->error),
             "; open handles:");
    uv_walk(&f->loop, fixture_name_handle, f);
  }
  return rc;
}

int fixture_loop_close(fixture_t *f) {
  int closed_before;
  int rc;

  closed_before = f->close_called;
  rc = tandem_close(&f->tandem, fixture_close_cb);
  if (rc != 0) {
    fixture_fail(f, "tandem_close", rc);
    return rc;
  }
  /* uv_stop() ends one uv_run(); run again until the callback ran or the
   * loop has nothing left to run. */
  do
    rc = uv_run(&f->loop, UV_RUN_DEFAULT);
  while (f->close_called == closed_before && rc != 0);
  if (f->close_called != closed_before + 1) {
    snprintf(f->error, sizeof(f->error),
             "uv_run returned %d with the close callback run %d times", rc,
             f->close_called - closed_before);
    return UV_EBUSY;
  }
  return fixture_loop_done(f);
}

void fixture_open(fixture_t *f, const tandem_options_t *opts) {
  tandem_pool_t *pool;

  memset(f, 0, sizeof(*f));
  ck_assert_int_eq(tandem_pool_new(&pool, opts), 0);
  ck_assert_msg(fixture_loop_open(f, pool) == 0, "%s", f->error);
}

tandem_pool_t *fixture_pool(unsigned workers) {
  tandem_options_t opts;
  tandem_pool_t *pool;

  opts = fixture_options(workers);
  pool = NULL;
  ck_assert_int_eq(tandem_pool_new(&pool, &opts), 0);
  ck_assert_ptr_nonnull(pool);
  ck_assert_uint_eq(tandem_pool_workers(pool), workers);
  return pool;
}

void fixture_close(fixture_t *f) {
  ck_assert_msg(fixture_loop_close(f) == 0, "%s", f->error);
  ck_assert_int_eq(tandem_pool_free(f->pool), 0);
}

void fixture_finish(fixture_t *f) {
  ck_assert_msg(fixture_loop_done(f) == 0, "%s", f->error);
  ck_assert_int_eq(tandem_pool_free(f->pool), 0);
}
