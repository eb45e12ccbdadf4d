/* SPDX-License-Identifier: MIT */
/*
 * atomic.h: every atomic operation tandem's runtime uses, in one place.
 *
 * Normal builds map to Concurrency Kit's ck_pr (x86-64 inline asm; on a TSO
 * machine the acquire/release fences are compiler barriers, and only the
 * store-load fence emits mfence).  ThreadSanitizer cannot see inline asm, so
 * the TSan build (TANDEM_TSAN) maps the same operations to __atomic builtins.
 * There every access is seq_cst: TSan ignores standalone fences, and with
 * seq_cst accesses the algorithms (Chase-Lev included) stay correct without
 * them, so TSan checks the same code paths with the orderings it can model.
 *
 * Naming follows ck: tdm_<op>_<type>, type one of ptr, 64 (uint64_t), u32.
 * Read-modify-writes (cas, fas, faa) are full barriers in both builds.
 *
 * The chaos build (TANDEM_CHAOS, chaos.h) puts a randomized yield-or-spin
 * point before and after each operation of the ck_pr mapping; in any other
 * build the hooks expand to the bare operation.
 */
#ifndef TANDEM_ATOMIC_H
#define TANDEM_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

#if defined(TANDEM_TSAN) && defined(TANDEM_CHAOS)
#error "TANDEM_CHAOS hooks the ck_pr mapping; the TSan build has none"
#endif

#ifdef TANDEM_TSAN

#define TDM_SC __ATOMIC_SEQ_CST

#define TDM_DEFINE(T, S)                                                       \
  static inline T tdm_load_##S(const T *p) {                                   \
    return __atomic_load_n(p, TDM_SC);                                         \
  }                                                                            \
  static inline void tdm_store_##S(T *p, T v) {                                \
    __atomic_store_n(p, v, TDM_SC);                                            \
  }                                                                            \
  static inline bool tdm_cas_##S(T *p, T old, T nv) {                          \
    return __atomic_compare_exchange_n(p, &old, nv, false, TDM_SC, TDM_SC);    \
  }                                                                            \
  static inline T tdm_fas_##S(T *p, T v) {                                     \
    return __atomic_exchange_n(p, v, TDM_SC);                                  \
  }

TDM_DEFINE(uint64_t, 64)
TDM_DEFINE(uint32_t, u32)

static inline void *tdm_load_ptr(void *const *p) {
  return __atomic_load_n(p, TDM_SC);
}
static inline void tdm_store_ptr(void **p, void *v) {
  __atomic_store_n(p, v, TDM_SC);
}
static inline bool tdm_cas_ptr(void **p, void *old, void *nv) {
  return __atomic_compare_exchange_n(p, &old, nv, false, TDM_SC, TDM_SC);
}
static inline void *tdm_fas_ptr(void **p, void *v) {
  return __atomic_exchange_n(p, v, TDM_SC);
}
static inline uint64_t tdm_faa_64(uint64_t *p, uint64_t d) {
  return __atomic_fetch_add(p, d, TDM_SC);
}
static inline uint32_t tdm_faa_u32(uint32_t *p, uint32_t d) {
  return __atomic_fetch_add(p, d, TDM_SC);
}
static inline void tdm_fence_acquire(void) {}
static inline void tdm_fence_release(void) {}
/* Every access above is seq_cst, which already orders each store-load pair
 * that the normal build fences (and TSan does not model fences). */
static inline void tdm_fence_sc(void) {}
static inline void tdm_fence_sc_loads(void) {}
static inline void tdm_pause(void) {
  __builtin_ia32_pause();
}

#else /* !TANDEM_TSAN */

#include <ck_pr.h>

#ifdef TANDEM_CHAOS
/* The chaos build (chaos.h): a seeded chance of a yield or a spin before
 * and after every operation below, so that rare interleavings are common. */
#include "chaos.h"
#define TDM_CHAOS_DO(...)                                                      \
  do {                                                                         \
    tandem__chaos_point();                                                     \
    __VA_ARGS__;                                                               \
    tandem__chaos_point();                                                     \
  } while (0)
#define TDM_CHAOS_RET(T, ...)                                                  \
  T tdm_v_;                                                                    \
  tandem__chaos_point();                                                       \
  tdm_v_ = __VA_ARGS__;                                                        \
  tandem__chaos_point();                                                       \
  return tdm_v_
#else
/* Without it the hooks vanish: each function is exactly the ck_pr call. */
#define TDM_CHAOS_DO(...) __VA_ARGS__
#define TDM_CHAOS_RET(T, ...) return __VA_ARGS__
#endif

static inline uint64_t tdm_load_64(const uint64_t *p) {
  TDM_CHAOS_RET(uint64_t, ck_pr_load_64(p));
}
static inline void tdm_store_64(uint64_t *p, uint64_t v) {
  TDM_CHAOS_DO(ck_pr_store_64(p, v));
}
static inline bool tdm_cas_64(uint64_t *p, uint64_t old, uint64_t nv) {
  TDM_CHAOS_RET(bool, ck_pr_cas_64(p, old, nv));
}
static inline uint64_t tdm_fas_64(uint64_t *p, uint64_t v) {
  TDM_CHAOS_RET(uint64_t, ck_pr_fas_64(p, v));
}
static inline uint64_t tdm_faa_64(uint64_t *p, uint64_t d) {
  TDM_CHAOS_RET(uint64_t, ck_pr_faa_64(p, d));
}
static inline uint32_t tdm_load_u32(const uint32_t *p) {
  TDM_CHAOS_RET(uint32_t, ck_pr_load_32(p));
}
static inline void tdm_store_u32(uint32_t *p, uint32_t v) {
  TDM_CHAOS_DO(ck_pr_store_32(p, v));
}
static inline bool tdm_cas_u32(uint32_t *p, uint32_t old, uint32_t nv) {
  TDM_CHAOS_RET(bool, ck_pr_cas_32(p, old, nv));
}
static inline uint32_t tdm_fas_u32(uint32_t *p, uint32_t v) {
  TDM_CHAOS_RET(uint32_t, ck_pr_fas_32(p, v));
}
static inline uint32_t tdm_faa_u32(uint32_t *p, uint32_t d) {
  TDM_CHAOS_RET(uint32_t, ck_pr_faa_32(p, d));
}
static inline void *tdm_load_ptr(void *const *p) {
  TDM_CHAOS_RET(void *, ck_pr_md_load_ptr(p));
}
static inline void tdm_store_ptr(void **p, void *v) {
  TDM_CHAOS_DO(ck_pr_store_ptr(p, v));
}
static inline bool tdm_cas_ptr(void **p, void *old, void *nv) {
  TDM_CHAOS_RET(bool, ck_pr_cas_ptr(p, old, nv));
}
static inline void *tdm_fas_ptr(void **p, void *v) {
  TDM_CHAOS_RET(void *, ck_pr_fas_ptr(p, v));
}
static inline void tdm_fence_acquire(void) {
  TDM_CHAOS_DO(ck_pr_fence_acquire());
}
static inline void tdm_fence_release(void) {
  TDM_CHAOS_DO(ck_pr_fence_release());
}
#if defined(__x86_64__)
/* A locked add to the top of the stack is a full barrier for ordinary
 * memory, like mfence, and cheaper on current x86-64 cores (Linux's smp_mb
 * does the same). */
static inline void tdm_fence_sc(void) {
  TDM_CHAOS_DO(__asm__ __volatile__("lock; addl $0,-8(%%rsp)"
                                    :
                                    :
                                    : "memory", "cc"));
}
#else
static inline void tdm_fence_sc(void) {
  TDM_CHAOS_DO(ck_pr_fence_memory());
}
#endif
/* A seq_cst fence between two loads.  Loads are not reordered with loads on
 * a TSO machine (x86-64), where this is a compiler barrier only. */
static inline void tdm_fence_sc_loads(void) {
#ifdef CK_MD_TSO
  TDM_CHAOS_DO(ck_pr_fence_load());
#else
  TDM_CHAOS_DO(ck_pr_fence_memory());
#endif
}
/* Not an atomic operation: no chaos point. */
static inline void tdm_pause(void) {
  ck_pr_stall();
}

#endif /* TANDEM_TSAN */

/* Acquire load / release store: the plain load or store plus the fence on
 * the side that orders it (free on x86-64, a real barrier elsewhere). */
static inline uint64_t tdm_load_acq_64(const uint64_t *p) {
  uint64_t v = tdm_load_64(p);
  tdm_fence_acquire();
  return v;
}
static inline void tdm_store_rel_64(uint64_t *p, uint64_t v) {
  tdm_fence_release();
  tdm_store_64(p, v);
}
static inline uint32_t tdm_load_acq_u32(const uint32_t *p) {
  uint32_t v = tdm_load_u32(p);
  tdm_fence_acquire();
  return v;
}
static inline void tdm_store_rel_u32(uint32_t *p, uint32_t v) {
  tdm_fence_release();
  tdm_store_u32(p, v);
}
static inline void *tdm_load_acq_ptr(void *const *p) {
  void *v = tdm_load_ptr(p);
  tdm_fence_acquire();
  return v;
}
static inline void tdm_store_rel_ptr(void **p, void *v) {
  tdm_fence_release();
  tdm_store_ptr(p, v);
}

/* Not an atomic operation: a hint that this thread will soon write the
 * line at p.  A line another core wrote last is read, then written, by
 * most of our hand-offs (a CAS after a load of the same word, a request's
 * link after its load); a read miss brings the line shared and the write
 * then costs a second trip between the cores.  PREFETCHW asks for it
 * exclusive in one.  Safe on any address: a hint never faults. */
static inline void tdm_prefetch_w(const void *p) {
#if defined(__x86_64__) && !defined(TANDEM_TSAN)
  __asm__ volatile("prefetchw %0" : : "m"(*(const char *)p));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

#define TDM_CACHELINE 64
#define TDM_ALIGNED __attribute__((aligned(TDM_CACHELINE)))

#endif /* TANDEM_ATOMIC_H */
