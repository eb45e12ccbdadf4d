/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the suites that run the example programs as real processes
 * and talk to them over loopback sockets (test_hello, test_embed,
 * test_compute_server).  Test thread only; every wait has a deadline, scaled
 * by CK_TIMEOUT_MULTIPLIER like Check's own timeouts.
 */
#ifndef EXAMPLE_PROC_H
#define EXAMPLE_PROC_H

#include <stddef.h>
#include <sys/types.h>

typedef struct {
  pid_t pid;
  int out_fd;        /* the child's stdout (a pipe), -1 once closed */
  char err_path[64]; /* the child's stderr goes to this file */
  int port;          /* from its "listening on HOST:PORT" line */
  int quiet;         /* proc_stop() prints its stderr only on a crash */
} proc_t;

/* CK_TIMEOUT_MULTIPLIER, or 1. */
double time_scale(void);
/* Monotonic seconds. */
double now_s(void);
void sleep_ms(int ms);

/* Starts argv[0] with stdout on a pipe and stderr in a temporary file; the
 * child gets SIGKILL if the test process dies first.  Returns 0 or -1. */
int proc_start(proc_t *p, char *const argv[]);
/* Reads the first stdout line, "listening on 127.0.0.1:PORT", into
 * p->port.  Returns 0, or -1 if it did not come within `timeout` s. */
int proc_read_port(proc_t *p, double timeout);
/* Reads the rest of stdout until EOF.  Returns the length (NUL-terminated
 * in buf) or -1 on timeout. */
ssize_t proc_read_output(proc_t *p, char *buf, size_t cap, double timeout);
/* Sends `sig` (0: none) and waits for the exit.  Returns the exit code,
 * 128 + signal if killed, or -1 if it did not exit in time (then it is
 * killed).  A sanitizer report in its stderr counts as failure (-2) and is
 * printed. */
int proc_stop(proc_t *p, int sig, double timeout);
/* The child's stderr so far, malloc'd and NUL-terminated. */
char *proc_stderr(proc_t *p);

/* Raises RLIMIT_NOFILE to at least `want` if the hard limit allows;
 * returns the soft limit in effect. */
long raise_nofile(long want);

/* Blocking connect to 127.0.0.1:port; -1 on error. */
int tcp_connect(int port);
int tcp_send(int fd, const void *buf, size_t len);
/* Reads until EOF, reset or the deadline; returns bytes read (buf is
 * NUL-terminated).  *closed = 1 when the peer closed or reset. */
size_t tcp_read_all(int fd, char *buf, size_t cap, double timeout, int *closed);
/* Closes with SO_LINGER 0: the peer gets a reset. */
void tcp_reset(int fd);

/* One HTTP response from buf[0..len): returns its total size, or 0 if it is
 * not complete yet; fills *status and the body (pointer into buf). */
size_t http_response(const char *buf, size_t len, int *status,
                     const char **body, size_t *body_len);
/* One request with "Connection: close" on a new connection: returns the
 * status (body copied to `body`), or -1. */
int http_request(int port, const char *method, const char *path,
                 const char *req_body, char *body, size_t cap);

/* Runs a shell command line; returns its exit status (-1 on failure) and
 * its stdout, NUL-terminated, in out. */
int run_cmd(const char *cmd, char *out, size_t cap);

#endif /* EXAMPLE_PROC_H */
