/* SPDX-License-Identifier: MIT */
/*
 * hello_client: connects to hello_server, prints what it sends, exits.
 *
 *   hello_client [--host 127.0.0.1] [--port 12345]
 *   hello_client --help
 *
 * The seed's blocking Python client, on libuv:
 *
 *   client_socket.connect(...)      ->  uv_tcp_connect(), done in on_connect()
 *   data = client_socket.recv(1024) ->  uv_read_start(): on_read() gets bytes
 *                                       as they arrive, until end of stream
 *   print("Received:", ...)         ->  printf() once the server has closed
 *   client_socket.close()           ->  uv_close()
 *
 * A client with a single connection gains little from an event loop, but the
 * same callbacks would let one thread talk to many servers at once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

static uv_tcp_t sock;
static char received[1024]; /* like recv(1024) */
static size_t received_len;
static int exit_code = 1;

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  /* Read straight into what is left of `received` (keep one byte for NUL). */
  *buf =
      uv_buf_init(received + received_len, sizeof(received) - 1 - received_len);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  if (nread > 0) {
    received_len += (size_t)nread;
    if (received_len < sizeof(received) - 1)
      return; /* more may come */
  } else if (nread == 0) {
    return; /* nothing this time (EAGAIN) */
  } else if (nread != UV_EOF) {
    fprintf(stderr, "read: %s\n", uv_strerror((int)nread));
    uv_close((uv_handle_t *)stream, NULL);
    return;
  }
  /* The server closed the connection (or our buffer is full). */
  received[received_len] = '\0';
  printf("Received: %s\n", received);
  exit_code = 0;
  uv_close((uv_handle_t *)stream, NULL);
}

static void on_connect(uv_connect_t *req, int status) {
  int r;

  if (status < 0) {
    fprintf(stderr, "connect: %s\n", uv_strerror(status));
    uv_close((uv_handle_t *)req->handle, NULL);
    return;
  }
  r = uv_read_start(req->handle, on_alloc, on_read);
  if (r != 0) {
    fprintf(stderr, "read: %s\n", uv_strerror(r));
    uv_close((uv_handle_t *)req->handle, NULL);
  }
}

static void usage(FILE *out, const char *argv0) {
  fprintf(out,
          "usage: %s [--host ADDR] [--port PORT]\n"
          "  --host ADDR  IPv4 address of hello_server [127.0.0.1]\n"
          "  --port PORT  its port [12345]\n"
          "Prints what the server sends, then exits 0.\n",
          argv0);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = 12345;
  struct sockaddr_in addr;
  uv_connect_t req;
  uv_loop_t *loop;
  char *end;
  long v;
  int i, r;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout, argv[0]);
      return 0;
    }
    if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      host = argv[++i];
      continue;
    }
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      v = strtol(argv[++i], &end, 10);
      if (end != argv[i] && *end == '\0' && v > 0 && v <= 65535) {
        port = (int)v;
        continue;
      }
    }
    usage(stderr, argv[0]);
    return 2;
  }
  if (uv_ip4_addr(host, port, &addr) != 0) {
    fprintf(stderr, "bad IPv4 address: %s\n", host);
    return 2;
  }

  loop = uv_default_loop();
  r = uv_tcp_init(loop, &sock);
  if (r != 0) {
    fprintf(stderr, "uv_tcp_init: %s\n", uv_strerror(r));
    return 1;
  }
  r = uv_tcp_connect(&req, &sock, (struct sockaddr *)&addr, on_connect);
  if (r != 0) {
    fprintf(stderr, "connect: %s\n", uv_strerror(r));
    uv_close((uv_handle_t *)&sock, NULL);
  }

  /* Runs until the socket is closed: there is nothing else to wait for. */
  uv_run(loop, UV_RUN_DEFAULT);
  r = uv_loop_close(loop);
  if (r != 0) {
    fprintf(stderr, "uv_loop_close: %s\n", uv_strerror(r));
    return 1;
  }
  return exit_code;
}
