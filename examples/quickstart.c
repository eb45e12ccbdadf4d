/* SPDX-License-Identifier: MIT */
/*
 * quickstart: the README's first program.  fib(32) runs on a worker of a
 * pool while the loop thread stays free; the result comes back to the loop
 * thread; then everything shuts down in order and the loop closes cleanly.
 *
 *   cc -o quickstart quickstart.c $(pkg-config --cflags --libs tandem)
 */
#include <stdio.h>

#include <tandem.h>

typedef struct {
  tandem_work_t req; /* embedded: queueing allocates nothing */
  int n;
  long result;
} fib_job_t;

static long fib(int n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static void work(tandem_work_t *req) { /* on a worker thread */
  fib_job_t *job = (fib_job_t *)req;   /* req is its first member */
  job->result = fib(job->n);
}

static void after(tandem_work_t *req, int status) { /* on the loop thread */
  fib_job_t *job = (fib_job_t *)req;

  if (status == 0)
    printf("fib(%d) = %ld\n", job->n, job->result);
  else /* UV_ECANCELED: cancelled before it started */
    fprintf(stderr, "fib(%d): %s\n", job->n, uv_strerror(status));
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  fib_job_t job = {.n = 32, .result = -1};
  tandem_pool_t *pool;
  tandem_t t;
  int r, failed = 0;

  r = tandem_pool_new(&pool, NULL); /* NULL: one worker per CPU */
  if (r != 0) {
    fprintf(stderr, "tandem_pool_new: %s\n", uv_strerror(r));
    return 1;
  }
  r = tandem_init(loop, &t, pool); /* on the loop's thread */
  if (r != 0) {
    fprintf(stderr, "tandem_init: %s\n", uv_strerror(r));
    tandem_pool_free(pool);
    return 1;
  }

  r = tandem_queue_work(&t, &job.req, work, after);
  if (r != 0)
    fprintf(stderr, "tandem_queue_work: %s\n", uv_strerror(r));
  /* Returns once `after` has run: a job queued from the loop thread keeps
   * the loop alive, as with uv_queue_work. */
  uv_run(loop, UV_RUN_DEFAULT);

  /* Shut down in this order.  tandem_close only starts closing, as
   * uv_close does: run the loop again to finish it; then the pool has no
   * handle left and can go, and the loop holds nothing of tandem's. */
  r = tandem_close(&t, NULL);
  if (r != 0)
    fprintf(stderr, "tandem_close: %s\n", uv_strerror(r));
  uv_run(loop, UV_RUN_DEFAULT);
  r = tandem_pool_free(pool);
  if (r != 0) {
    fprintf(stderr, "tandem_pool_free: %s\n", uv_strerror(r));
    failed = 1;
  }
  r = uv_loop_close(loop); /* UV_EBUSY if a handle were left open */
  if (r != 0) {
    fprintf(stderr, "uv_loop_close: %s\n", uv_strerror(r));
    failed = 1;
  }
  return failed || job.result < 0 ? 1 : 0;
}
