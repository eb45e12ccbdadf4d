/* SPDX-License-Identifier: MIT */
/*
 * embed: adding tandem to a libuv program you already have.
 *
 *   embed [--port PORT] [--ticks N]      (defaults: --port 0, --ticks 10)
 *   embed --help
 *
 * The program before tandem: a timer prints "tick N" every 100 ms and a TCP
 * listener on 127.0.0.1 answers "ok" to whoever connects.  After N ticks it
 * closes its handles and uv_run() returns.
 *
 * The lines marked "+ tandem" are all it takes to move CPU work off the loop
 * thread: one tandem_t next to the loop, tandem_init() once, a
 * tandem_work_t inside each job struct, tandem_queue_work() instead of doing
 * the work in the callback, and tandem_close() with the other handles.  The
 * after callback runs back on the loop thread, so it may touch handles and
 * any loop-thread state without locks.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "tandem.h" /* + tandem */

#define TICK_MS 100

static uv_loop_t *loop;
static uv_timer_t timer;
static uv_tcp_t server;
static unsigned ticks, max_ticks = 10, jobs_done;
static tandem_t tandem; /* + tandem: joins the loop to a pool */

/* ----------------------------------------------- CPU work, on the pool */

typedef struct {
  tandem_work_t req; /* + tandem: a job costs no allocation inside tandem */
  unsigned tick;
  unsigned n;
  uint64_t result;
} fib_job_t;

static uint64_t fib(unsigned n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

static void fib_work(tandem_work_t *req) { /* on a worker thread */
  fib_job_t *job = req->data;
  job->result = fib(job->n);
}

static void fib_done(tandem_work_t *req, int status) { /* on the loop */
  fib_job_t *job = req->data;

  if (status == 0)
    printf("tick %u: fib(%u) = %llu, computed on the pool\n", job->tick, job->n,
           (unsigned long long)job->result);
  free(job);
  /* The last answer is in: let tandem go with the other handles. */
  if (++jobs_done == max_ticks) {
    int r = tandem_close(&tandem, NULL); /* + tandem */
    if (r != 0)
      fprintf(stderr, "tandem_close: %s\n", uv_strerror(r));
  }
}

/* ------------------------------------------- the existing application */

static void on_tick(uv_timer_t *handle) {
  fib_job_t *job;
  int r;

  printf("tick %u\n", ++ticks);
  fflush(stdout);

  /* + tandem: instead of calling fib() here, which would stall the loop. */
  job = malloc(sizeof(*job));
  if (job == NULL)
    abort();
  job->tick = ticks;
  job->n = 25 + ticks % 5;
  job->req.data = job;
  r = tandem_queue_work(&tandem, &job->req, fib_work, fib_done);
  if (r != 0) { /* only for a closed tandem_t or a request in flight */
    fprintf(stderr, "tandem_queue_work: %s\n", uv_strerror(r));
    abort();
  }

  if (ticks == max_ticks) {
    uv_close((uv_handle_t *)handle, NULL);
    uv_close((uv_handle_t *)&server, NULL);
  }
}

static void on_closed(uv_handle_t *handle) {
  free(handle);
}

static void on_written(uv_write_t *req, int status) {
  if (status < 0)
    fprintf(stderr, "write: %s\n", uv_strerror(status));
  uv_close((uv_handle_t *)req->handle, on_closed);
  free(req);
}

static void on_connection(uv_stream_t *listener, int status) {
  static char ok[] = "ok\n";
  uv_buf_t buf = uv_buf_init(ok, sizeof(ok) - 1);
  uv_write_t *req;
  uv_tcp_t *client;
  int r;

  if (status < 0) {
    fprintf(stderr, "accept: %s\n", uv_strerror(status));
    return;
  }
  client = malloc(sizeof(*client));
  req = malloc(sizeof(*req));
  if (client == NULL || req == NULL)
    abort();
  r = uv_tcp_init(loop, client);
  if (r != 0) {
    fprintf(stderr, "uv_tcp_init: %s\n", uv_strerror(r));
    free(client);
    free(req);
    return;
  }
  r = uv_accept(listener, (uv_stream_t *)client);
  if (r == 0)
    r = uv_write(req, (uv_stream_t *)client, &buf, 1, on_written);
  if (r != 0) {
    fprintf(stderr, "accept and write: %s\n", uv_strerror(r));
    uv_close((uv_handle_t *)client, on_closed);
    free(req);
  }
}

static void usage(FILE *out, const char *argv0) {
  fprintf(out,
          "usage: %s [--port PORT] [--ticks N]\n"
          "  --port PORT  TCP port on 127.0.0.1, 0 = any free one [0]\n"
          "  --ticks N    ticks of 100 ms before it exits, 1 or more [10]\n",
          argv0);
}

/* A decimal in [min, max], or -1. */
static long parse_num(const char *s, long min, long max) {
  char *end;
  long v = strtol(s, &end, 10);

  return end != s && *end == '\0' && v >= min && v <= max ? v : -1;
}

int main(int argc, char **argv) {
  struct sockaddr_in addr;
  int len = sizeof(addr);
  long port = 0, v = 0;
  int i, r;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    }
    if (i + 1 == argc) {
      v = -1;
    } else if (strcmp(argv[i], "--port") == 0) {
      v = port = parse_num(argv[++i], 0, 65535);
    } else if (strcmp(argv[i], "--ticks") == 0) {
      v = parse_num(argv[++i], 1, 1000000);
      max_ticks = (unsigned)v;
    } else {
      v = -1;
    }
    if (v < 0) {
      usage(stderr, argv[0]);
      return 2;
    }
  }

  signal(SIGPIPE, SIG_IGN); /* a client that left gives EPIPE instead */
  loop = uv_default_loop();

  /* + tandem: on the loop thread, before the first job.  NULL = the
   * process-wide default pool; tandem_pool_new() makes a sized one. */
  r = tandem_init(loop, &tandem, NULL);
  if (r != 0) {
    fprintf(stderr, "tandem_init: %s\n", uv_strerror(r));
    return 1;
  }

  r = uv_ip4_addr("127.0.0.1", (int)port, &addr);
  if (r == 0)
    r = uv_tcp_init(loop, &server);
  if (r == 0)
    r = uv_tcp_bind(&server, (struct sockaddr *)&addr, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&server, 128, on_connection);
  if (r == 0)
    r = uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
  if (r != 0) {
    fprintf(stderr, "listen: %s\n", uv_strerror(r));
    return 1;
  }
  printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
  fflush(stdout);

  r = uv_timer_init(loop, &timer);
  if (r == 0)
    r = uv_timer_start(&timer, on_tick, TICK_MS, TICK_MS);
  if (r != 0) {
    fprintf(stderr, "timer: %s\n", uv_strerror(r));
    return 1;
  }

  uv_run(loop, UV_RUN_DEFAULT);
  r = uv_loop_close(loop);
  printf("done after %u ticks and %u jobs\n", ticks, jobs_done);
  if (r != 0) {
    fprintf(stderr, "uv_loop_close: %s\n", uv_strerror(r));
    return 1;
  }
  return 0;
}
