/* SPDX-License-Identifier: MIT */
/*
 * peer_threads: the thread-per-connection peer of the server benchmark.
 *
 *   peer_threads [--port PORT]
 *
 * The seed text's blocking hello server, grown just enough to speak
 * HTTP/1.1 with keep-alive: the main thread blocks in accept(); each
 * connection gets a thread of its own that blocks in recv(), parses with
 * http-parser (peer_http.c), computes /fib/N right there and blocks in
 * send().  No pool, no event loop: the kernel's scheduler shares the CPUs
 * among all connection threads, and a /ping thread that wakes competes
 * with every thread computing a /fib.
 *
 * Listens on 127.0.0.1 only and prints "listening on 127.0.0.1:PORT" as
 * compute_server does.  SIGINT or SIGTERM: stop accepting, let each
 * connection finish the request it is computing, close every connection,
 * exit 0; a second signal ends it at once.
 */
#define _GNU_SOURCE /* accept4() */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "peer_http.h"

#define READ_CHUNK 16384
#define THREAD_STACK (256 * 1024) /* fib's recursion is 45 frames deep */

typedef struct conn_s {
  int fd;
  struct conn_s *prev, *next;
} conn_t;

/* Everything below is guarded by lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t all_gone = PTHREAD_COND_INITIALIZER;
static conn_t *conns;
static unsigned nconns;
static int stopping;
static int listen_fd = -1;

static int is_stopping(void) {
  int s;

  pthread_mutex_lock(&lock);
  s = stopping;
  pthread_mutex_unlock(&lock);
  return s;
}

static int send_all(int fd, const char *p, size_t len) {
  ssize_t n;

  while (len > 0) {
    n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static void *conn_main(void *arg) {
  conn_t *c = arg;
  atomic_int abandoned = 0; /* a blocked thread never learns of a reset */
  char in[READ_CHUNK], out[PEER_RESPONSE_MAX];
  size_t off = 0, len = 0, used, out_len = 0;
  peer_next_t next;
  peer_req_t req;
  unsigned n = 0;
  ssize_t got;
  int done = 0;

  peer_req_init(&req);
  while (!done) {
    if (off == len) {
      off = len = 0;
      got = recv(c->fd, in, sizeof(in), 0);
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0)
        break; /* EOF, reset, or shut down by the signal thread */
      len = (size_t)got;
    }
    next = peer_serve_next(&req, in + off, len - off, &used, is_stopping(), out,
                           &out_len, &n, &done);
    off += used;
    if (next == PEER_NEXT_MORE)
      continue;
    if (next == PEER_NEXT_FIB) {
      /* The blocking model: this thread computes, nobody else waits. */
      out_len = peer_fib_response(out, &req, peer_fib(n, &abandoned),
                                  done = done || is_stopping());
    }
    if (send_all(c->fd, out, out_len) != 0)
      break;
  }

  pthread_mutex_lock(&lock);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  if (--nconns == 0)
    pthread_cond_signal(&all_gone);
  pthread_mutex_unlock(&lock);
  close(c->fd);
  free(c);
  return NULL;
}

/* Waits for SIGINT/SIGTERM (blocked in every thread), then wakes the
 * acceptor and every reader; a thread computing a /fib answers first. */
static void *signal_main(void *arg) {
  sigset_t *set = arg;
  conn_t *c;
  int sig;

  if (sigwait(set, &sig) != 0)
    return NULL;
  pthread_mutex_lock(&lock);
  stopping = 1;
  shutdown(listen_fd, SHUT_RDWR); /* accept() fails with EINVAL */
  for (c = conns; c != NULL; c = c->next)
    shutdown(c->fd, SHUT_RD); /* recv() returns 0; send() still works */
  pthread_mutex_unlock(&lock);
  /* A second signal: the default action, at once. */
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  pthread_sigmask(SIG_UNBLOCK, set, NULL);
  for (;;)
    pause();
  return NULL;
}

static int listen_on(unsigned port) {
  struct sockaddr_in addr;
  socklen_t alen = sizeof(addr);
  int fd, one = 1;

  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  memset(&addr, 0, sizeof(addr));
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
      listen(fd, 1024) != 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &alen) != 0) {
    close(fd);
    return -1;
  }
  printf("listening on 127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));
  fflush(stdout);
  return fd;
}

int main(int argc, char **argv) {
  static sigset_t set;
  pthread_attr_t attr;
  pthread_t tid;
  unsigned port = 8080;
  conn_t *c;
  int fd, one = 1;

  int rc = peer_main_args(argc, argv, "a thread per connection", &port);

  if (rc >= 0)
    return rc;
  /* Signals go to signal_main() only: block them before any thread. */
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  listen_fd = listen_on((unsigned)port);
  if (listen_fd < 0) {
    perror("listen");
    return 1;
  }
  if (pthread_create(&tid, NULL, signal_main, &set) != 0) {
    fprintf(stderr, "cannot start the signal thread\n");
    return 1;
  }
  pthread_detach(tid);
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THREAD_STACK);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

  for (;;) {
    fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (is_stopping())
        break;
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOMEM) {
        usleep(1000); /* let connections close */
        continue;
      }
      perror("accept");
      break;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
      close(fd);
      continue;
    }
    c->fd = fd;
    pthread_mutex_lock(&lock);
    if (stopping) {
      pthread_mutex_unlock(&lock);
      close(fd);
      free(c);
      break;
    }
    c->next = conns;
    if (conns != NULL)
      conns->prev = c;
    conns = c;
    nconns++;
    if (pthread_create(&tid, &attr, conn_main, c) != 0) {
      conns = c->next;
      if (conns != NULL)
        conns->prev = NULL;
      nconns--;
      close(fd);
      free(c);
    }
    pthread_mutex_unlock(&lock);
  }

  pthread_mutex_lock(&lock);
  stopping = 1;
  for (c = conns; c != NULL; c = c->next)
    shutdown(c->fd, SHUT_RD);
  while (nconns > 0)
    pthread_cond_wait(&all_gone, &lock);
  pthread_mutex_unlock(&lock);
  close(listen_fd);
  pthread_attr_destroy(&attr);
  return 0;
}
