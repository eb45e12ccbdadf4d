/* SPDX-License-Identifier: MIT */
/*
 * fault_inject: the --wrap wrappers (see fault_inject.h).
 */
#include "fault_inject.h"

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

#include <uv.h>

/* The real functions, as the linker's --wrap names them. */
void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
int __real_posix_memalign(void **memptr, size_t alignment, size_t size);
void __real_free(void *ptr);
int __real_uv_thread_create_ex(uv_thread_t *tid,
                               const uv_thread_options_t *params,
                               uv_thread_cb entry, void *arg);
int __real_eventfd(unsigned int count, int flags);
int __real_uv_poll_init(uv_loop_t *loop, uv_poll_t *handle, int fd);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t n, size_t size);
int __wrap_posix_memalign(void **memptr, size_t alignment, size_t size);
void __wrap_free(void *ptr);
int __wrap_uv_thread_create_ex(uv_thread_t *tid,
                               const uv_thread_options_t *params,
                               uv_thread_cb entry, void *arg);
int __wrap_eventfd(unsigned int count, int flags);
int __wrap_uv_poll_init(uv_loop_t *loop, uv_poll_t *handle, int fd);

/* Atomics: workers started inside a window run tandem code too. */
static atomic_int window;
static atomic_uint fail_at;
static atomic_uint ncalls;
static atomic_uint kind_calls[FAULT_NKINDS];
static atomic_int injected = -1;
static atomic_long live;

void fault_reset(void) {
  unsigned k;

  atomic_store(&window, 0);
  atomic_store(&fail_at, 0);
  atomic_store(&ncalls, 0);
  for (k = 0; k < FAULT_NKINDS; k++)
    atomic_store(&kind_calls[k], 0);
  atomic_store(&injected, -1);
  atomic_store(&live, 0);
}

void fault_start(unsigned n) {
  unsigned k;

  atomic_store(&ncalls, 0);
  for (k = 0; k < FAULT_NKINDS; k++)
    atomic_store(&kind_calls[k], 0);
  atomic_store(&injected, -1);
  atomic_store(&fail_at, n);
  atomic_store(&window, 1);
}

unsigned fault_stop(void) {
  atomic_store(&window, 0);
  atomic_store(&fail_at, 0);
  return atomic_load(&ncalls);
}

int fault_injected(void) {
  return atomic_load(&injected);
}

unsigned fault_calls(fault_kind_t kind) {
  return atomic_load(&kind_calls[kind]);
}

long fault_live(void) {
  return atomic_load(&live);
}

const char *fault_kind_name(int kind) {
  static const char *const names[FAULT_NKINDS] = {
      "malloc",  "calloc",       "posix_memalign", "uv_thread_create_ex",
      "eventfd", "uv_poll_init",
  };

  if (kind < 0 || kind >= FAULT_NKINDS)
    return "none";
  return names[kind];
}

/* Counts a fallible call of `kind`; true if it is the one to fail. */
static int fails(fault_kind_t kind) {
  unsigned n;

  if (!atomic_load(&window))
    return 0;
  atomic_fetch_add(&kind_calls[kind], 1);
  n = atomic_fetch_add(&ncalls, 1) + 1;
  if (n != atomic_load(&fail_at))
    return 0;
  atomic_store(&injected, (int)kind);
  return 1;
}

static void *allocated(void *p) {
  if (p != NULL && atomic_load(&window))
    atomic_fetch_add(&live, 1);
  return p;
}

void *__wrap_malloc(size_t size) {
  if (fails(FAULT_MALLOC)) {
    errno = ENOMEM;
    return NULL;
  }
  return allocated(__real_malloc(size));
}

void *__wrap_calloc(size_t n, size_t size) {
  if (fails(FAULT_CALLOC)) {
    errno = ENOMEM;
    return NULL;
  }
  return allocated(__real_calloc(n, size));
}

int __wrap_posix_memalign(void **memptr, size_t alignment, size_t size) {
  int err;

  if (fails(FAULT_MEMALIGN))
    return ENOMEM;
  err = __real_posix_memalign(memptr, alignment, size);
  if (err == 0)
    allocated(*memptr);
  return err;
}

void __wrap_free(void *ptr) {
  if (ptr != NULL && atomic_load(&window))
    atomic_fetch_sub(&live, 1);
  __real_free(ptr);
}

int __wrap_uv_thread_create_ex(uv_thread_t *tid,
                               const uv_thread_options_t *params,
                               uv_thread_cb entry, void *arg) {
  if (fails(FAULT_THREAD))
    return UV_EAGAIN;
  return __real_uv_thread_create_ex(tid, params, entry, arg);
}

int __wrap_eventfd(unsigned int count, int flags) {
  if (fails(FAULT_EVENTFD)) {
    errno = EMFILE;
    return -1;
  }
  return __real_eventfd(count, flags);
}

int __wrap_uv_poll_init(uv_loop_t *loop, uv_poll_t *handle, int fd) {
  if (fails(FAULT_POLL_INIT))
    return UV_ENOSPC;
  return __real_uv_poll_init(loop, handle, fd);
}
