/* SPDX-License-Identifier: MIT */
/*
 * examples/hello_server and hello_client, run as real processes on an
 * ephemeral loopback port: the client prints the greeting, the server greets
 * many clients at once and exits 0 on SIGTERM or SIGINT.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "example_proc.h"
#include "suite_run.h"

#ifndef HELLO_SERVER_BIN
#error "HELLO_SERVER_BIN must name the hello_server executable"
#endif
#ifndef HELLO_CLIENT_BIN
#error "HELLO_CLIENT_BIN must name the hello_client executable"
#endif

static void start_server(proc_t *p) {
  char *argv[] = {HELLO_SERVER_BIN, "--port", "0", NULL};

  ck_assert_int_eq(proc_start(p, argv), 0);
  ck_assert_msg(proc_read_port(p, 20) == 0, "no 'listening on' line");
}

START_TEST(test_client_prints_the_greeting) {
  char cmd[512], out[1024];
  proc_t p;
  int i;

  start_server(&p);
  snprintf(cmd, sizeof(cmd), "%s --host 127.0.0.1 --port %d", HELLO_CLIENT_BIN,
           p.port);
  for (i = 0; i < 3; i++) {
    ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "Received: Hello from the server!\n");
  }
  ck_assert_int_eq(proc_stop(&p, SIGTERM, 30), 0);
}
END_TEST

START_TEST(test_server_greets_many_clients_at_once) {
  enum { N = 200 };
  int fd[N], i, closed;
  char buf[256];
  proc_t p;

  start_server(&p);
  /* All connected before any is read: one thread serves them all. */
  for (i = 0; i < N; i++) {
    fd[i] = tcp_connect(p.port);
    ck_assert_int_ge(fd[i], 0);
  }
  for (i = 0; i < N; i++) {
    tcp_read_all(fd[i], buf, sizeof(buf), 30, &closed);
    close(fd[i]);
    ck_assert_msg(closed, "connection %d left open", i);
    ck_assert_str_eq(buf, "Hello from the server!");
  }
  ck_assert_int_eq(proc_stop(&p, SIGINT, 30), 0);
}
END_TEST

START_TEST(test_server_logs_each_connection) {
  char buf[4096], cmd[512];
  proc_t p;

  start_server(&p);
  snprintf(cmd, sizeof(cmd), "%s --port %d", HELLO_CLIENT_BIN, p.port);
  ck_assert_int_eq(run_cmd(cmd, buf, sizeof(buf)), 0);
  ck_assert_int_eq(run_cmd(cmd, buf, sizeof(buf)), 0);
  kill(p.pid, SIGTERM);
  ck_assert_int_ge(proc_read_output(&p, buf, sizeof(buf), 30), 0);
  ck_assert_str_eq(buf, "Connection from 127.0.0.1 has been established!\n"
                        "Connection from 127.0.0.1 has been established!\n");
  ck_assert_int_eq(proc_stop(&p, 0, 30), 0);
}
END_TEST

START_TEST(test_client_reports_a_refused_connection) {
  char cmd[512], out[1024];
  proc_t p;
  int port;

  /* A port that was just free: nobody listens there now. */
  start_server(&p);
  port = p.port;
  ck_assert_int_eq(proc_stop(&p, SIGTERM, 30), 0);
  snprintf(cmd, sizeof(cmd), "%s --port %d 2>/dev/null", HELLO_CLIENT_BIN,
           port);
  ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 1);
  ck_assert_str_eq(out, "");
}
END_TEST

int main(void) {
  Suite *s = suite_create("hello");
  TCase *tc = tcase_create("hello");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_client_prints_the_greeting);
  tcase_add_test(tc, test_server_greets_many_clients_at_once);
  tcase_add_test(tc, test_server_logs_each_connection);
  tcase_add_test(tc, test_client_reports_a_refused_connection);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
