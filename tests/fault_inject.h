/* SPDX-License-Identifier: MIT */
/*
 * fault_inject: makes one chosen call that tandem makes fail.
 *
 * The faults suite links with -Wl,--wrap=SYMBOL for each function below, so
 * every reference to SYMBOL in the objects linked into it -- tandem's
 * static library among them -- goes to __wrap_SYMBOL in fault_inject.c,
 * which calls the real one (__real_SYMBOL) unless told to fail.  Calls made
 * inside shared libraries (libc, libuv, ck) are not redirected: that is why
 * the thread start is caught at uv_thread_create_ex(), the libuv call tandem
 * makes, and not at pthread_create(), which libuv calls from libuv.so.
 *
 * Outside a window the wrappers only pass calls through.  Inside one (from
 * fault_start() to fault_stop()) they number the fallible calls 1, 2, ...
 * from any thread, and the call numbered `fail_at` fails the way the real
 * function fails when it is out of resources:
 *
 *   malloc, calloc          NULL, errno ENOMEM
 *   posix_memalign          ENOMEM, *memptr untouched (as POSIX requires)
 *   uv_thread_create_ex     UV_EAGAIN (pthread_create's "no more threads")
 *   eventfd                 -1, errno EMFILE
 *   uv_poll_init            UV_ENOSPC (epoll_ctl past max_user_watches)
 *
 * Only that one call fails: the calls after it succeed.  free() is wrapped
 * too so that a window can tell whether what tandem allocated in it was
 * freed.  Keep Check's assertions out of windows: Check is linked
 * statically, so its own allocations would be counted as well.
 */
#ifndef FAULT_INJECT_H
#define FAULT_INJECT_H

typedef enum fault_kind_e {
  FAULT_MALLOC,
  FAULT_CALLOC,
  FAULT_MEMALIGN,
  FAULT_THREAD,
  FAULT_EVENTFD,
  FAULT_POLL_INIT,
  FAULT_NKINDS
} fault_kind_t;

/* Forgets the allocation balance and the last window's counts. */
void fault_reset(void);

/* Opens a window: numbers fallible calls from 1 and fails the one numbered
 * `fail_at` (0: none, just count). */
void fault_start(unsigned fail_at);

/* Closes the window; returns how many fallible calls it saw. */
unsigned fault_stop(void);

/* The kind of the call the last window made fail, or -1 if that call never
 * came. */
int fault_injected(void);

/* Calls of `kind` the last window saw. */
unsigned fault_calls(fault_kind_t kind);

/* Allocations made inside windows since fault_reset(), minus the frees
 * made inside windows: what tandem still holds of what it allocated there. */
long fault_live(void);

/* "malloc", "uv_thread_create_ex", ... */
const char *fault_kind_name(int kind);

#endif /* FAULT_INJECT_H */
