/* SPDX-License-Identifier: MIT */
/* Queues one job through an installed tandem and checks it came back. */
#include <stdio.h>

#include <tandem.h>

static int result;

static void work(tandem_work_t *req) {
  *(int *)req->data = 42;
}

static void after(tandem_work_t *req, int status) {
  (void)req;
  if (status != 0)
    result = -1;
}

int main(void) {
  uv_loop_t loop;
  tandem_work_t req;
  tandem_t t;
  int value = 0;

  req.data = &value;
  if (uv_loop_init(&loop) != 0 || tandem_init(&loop, &t, NULL) != 0)
    return 1;
  if (tandem_queue_work(&t, &req, work, after) != 0)
    return 1;
  uv_run(&loop, UV_RUN_DEFAULT);
  tandem_close(&t, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0 || value != 42 || result != 0)
    return 1;
  if (tandem_version() != TANDEM_VERSION_HEX) /* header and library agree */
    return 1;
  printf("consumer: tandem %s works\n", TANDEM_VERSION_STRING);
  return 0;
}
