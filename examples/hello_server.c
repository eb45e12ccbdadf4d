/* SPDX-License-Identifier: MIT */
/*
 * hello_server: the smallest libuv TCP server.  Each client that connects
 * gets "Hello from the server!" and is disconnected.
 *
 *   hello_server [--host 127.0.0.1] [--port 12345]     (--port 0: any port)
 *   hello_server --help
 *
 * It is the blocking Python server of the seed text, moved onto an event
 * loop.  The Python version is one loop around blocking calls:
 *
 *   server_socket.bind(); listen(5)  ->  uv_tcp_bind(); uv_listen()
 *   while True: accept()             ->  on_connection(), which uv_run()
 *                                        calls once per client
 *   client_socket.send(b"Hello...")  ->  uv_write(); done in on_written()
 *   client_socket.close()            ->  uv_close(); done in on_closed()
 *
 * Python's accept() and send() each stop the whole program until the kernel
 * is ready, so a slow client holds up every other one.  Here nothing blocks:
 * the sockets are non-blocking, and uv_run() asks the kernel (epoll) which of
 * them are ready, then calls the callback registered for that socket.  One
 * thread can therefore juggle thousands of connections; it only ever waits
 * when no socket at all has anything to do.  The price: a callback must
 * return quickly.  Long computations belong on other threads, which is what
 * tandem adds (see embed.c and compute_server/).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

static const char greeting[] = "Hello from the server!";

static uv_loop_t *loop;
static uv_tcp_t server;
static uv_signal_t sigint, sigterm;

static void on_closed(uv_handle_t *handle) {
  free(handle);
}

static void on_written(uv_write_t *req, int status) {
  if (status < 0)
    fprintf(stderr, "write: %s\n", uv_strerror(status));
  /* client_socket.close(): the handle is freed once libuv is done with it. */
  uv_close((uv_handle_t *)req->handle, on_closed);
  free(req);
}

static void on_connection(uv_stream_t *listener, int status) {
  struct sockaddr_in addr;
  int len = sizeof(addr);
  char ip[16] = "?";
  uv_tcp_t *client;
  uv_write_t *req;
  uv_buf_t buf;
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
  if (r != 0) {
    fprintf(stderr, "accept: %s\n", uv_strerror(r));
    uv_close((uv_handle_t *)client, on_closed);
    free(req);
    return;
  }

  r = uv_tcp_getpeername(client, (struct sockaddr *)&addr, &len);
  if (r == 0)
    r = uv_ip4_name(&addr, ip, sizeof(ip));
  if (r != 0) /* the client may already be gone: greet it anyway */
    fprintf(stderr, "getpeername: %s\n", uv_strerror(r));
  printf("Connection from %s has been established!\n", ip);
  fflush(stdout);

  /* libuv keeps a pointer to the bytes until on_written(): static data. */
  buf = uv_buf_init((char *)greeting, sizeof(greeting) - 1);
  r = uv_write(req, (uv_stream_t *)client, &buf, 1, on_written);
  if (r != 0) {
    fprintf(stderr, "write: %s\n", uv_strerror(r));
    uv_close((uv_handle_t *)client, on_closed);
    free(req);
  }
}

/* Ctrl-C or kill: close the listener and the signal handles.  Clients still
 * being greeted close themselves; then nothing is left and uv_run() returns.
 */
static void on_signal(uv_signal_t *handle, int signum) {
  (void)handle;
  (void)signum;
  uv_close((uv_handle_t *)&server, NULL);
  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&sigterm, NULL);
}

static void usage(FILE *out, const char *argv0) {
  fprintf(out,
          "usage: %s [--host ADDR] [--port PORT]\n"
          "  --host ADDR  IPv4 address to listen on [127.0.0.1]\n"
          "  --port PORT  port, 0 = any free one [12345]\n"
          "Greets each client that connects, then hangs up.  Ctrl-C stops.\n",
          argv0);
}

/* 0, 1 for --help, -1 for a bad argument. */
static int parse_args(int argc, char **argv, const char **host, int *port) {
  char *end;
  long v;
  int i;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
      return 1;
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      *host = argv[++i];
    } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      v = strtol(argv[++i], &end, 10);
      if (end == argv[i] || *end != '\0' || v < 0 || v > 65535)
        return -1;
      *port = (int)v;
    } else {
      return -1;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 12345;
  struct sockaddr_in addr;
  int len = sizeof(addr);
  int r;

  r = parse_args(argc, argv, &host, &port);
  if (r != 0) {
    usage(r > 0 ? stdout : stderr, argv[0]);
    return r > 0 ? 0 : 2;
  }
  /* socket(AF_INET, SOCK_STREAM) + bind(): IPv4, numeric addresses. */
  if (uv_ip4_addr(host, port, &addr) != 0) {
    fprintf(stderr, "bad IPv4 address: %s\n", host);
    return 2;
  }
  /* A peer that hangs up must give us an error code, not kill us. */
  signal(SIGPIPE, SIG_IGN);

  loop = uv_default_loop();
  /* Ctrl-C and kill close the server cleanly (set up before anyone can
   * know our port and send one). */
  r = uv_signal_init(loop, &sigint);
  if (r == 0)
    r = uv_signal_start(&sigint, on_signal, SIGINT);
  if (r == 0)
    r = uv_signal_init(loop, &sigterm);
  if (r == 0)
    r = uv_signal_start(&sigterm, on_signal, SIGTERM);
  if (r != 0) {
    fprintf(stderr, "signals: %s\n", uv_strerror(r));
    return 1;
  }

  r = uv_tcp_init(loop, &server);
  if (r == 0)
    r = uv_tcp_bind(&server, (struct sockaddr *)&addr, 0);
  if (r == 0)
    r = uv_listen((uv_stream_t *)&server, 128, on_connection);
  if (r != 0) {
    fprintf(stderr, "listen on %s:%d: %s\n", host, port, uv_strerror(r));
    return 1;
  }

  /* With --port 0 the kernel picks a port: print the one we got. */
  r = uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &len);
  if (r != 0) {
    fprintf(stderr, "getsockname: %s\n", uv_strerror(r));
    return 1;
  }
  printf("listening on %s:%d\n", host, ntohs(addr.sin_port));
  fflush(stdout);

  /* The event loop: runs until every handle is closed (after a signal). */
  uv_run(loop, UV_RUN_DEFAULT);
  r = uv_loop_close(loop);
  if (r != 0) {
    fprintf(stderr, "uv_loop_close: %s\n", uv_strerror(r));
    return 1;
  }
  return 0;
}
