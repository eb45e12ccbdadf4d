/* SPDX-License-Identifier: MIT */
/*
 * examples/embed, run as a real process: the existing application still
 * ticks and answers "ok" on its port, every tick's job comes back from the
 * pool with the right result, and it exits 0 after --ticks ticks.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "example_proc.h"
#include "suite_run.h"

#ifndef EMBED_BIN
#error "EMBED_BIN must name the embed executable"
#endif

static uint64_t fib(unsigned n) {
  uint64_t a = 0, b = 1, t;
  while (n-- > 0) {
    t = a + b;
    a = b;
    b = t;
  }
  return a;
}

START_TEST(test_ticks_answers_and_jobs) {
  char *argv[] = {EMBED_BIN, "--port", "0", "--ticks", "10", NULL};
  char out[8192], line[128];
  int fd, closed;
  unsigned k;
  proc_t p;

  ck_assert_int_eq(proc_start(&p, argv), 0);
  ck_assert_msg(proc_read_port(&p, 20) == 0, "no 'listening on' line");

  /* The listener it had before tandem still answers. */
  fd = tcp_connect(p.port);
  ck_assert_int_ge(fd, 0);
  tcp_read_all(fd, out, sizeof(out), 30, &closed);
  close(fd);
  ck_assert(closed);
  ck_assert_str_eq(out, "ok\n");

  ck_assert_int_ge(proc_read_output(&p, out, sizeof(out), 60), 0);
  for (k = 1; k <= 10; k++) {
    snprintf(line, sizeof(line), "tick %u\n", k);
    ck_assert_msg(strstr(out, line) != NULL, "no '%s' in:\n%s", line, out);
    snprintf(line, sizeof(line),
             "tick %u: fib(%u) = %llu, computed on the "
             "pool\n",
             k, 25 + k % 5, (unsigned long long)fib(25 + k % 5));
    ck_assert_msg(strstr(out, line) != NULL, "no '%s' in:\n%s", line, out);
  }
  ck_assert_msg(strstr(out, "tick 11") == NULL, "%s", out);
  ck_assert_msg(strstr(out, "done after 10 ticks and 10 jobs\n") != NULL, "%s",
                out);
  ck_assert_int_eq(proc_stop(&p, 0, 30), 0);
}
END_TEST

int main(void) {
  Suite *s = suite_create("embed");
  TCase *tc = tcase_create("embed");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_ticks_answers_and_jobs);
  suite_add_tcase(s, tc);
  return suite_run(s);
}
