/* SPDX-License-Identifier: MIT */
/*
 * stream.c: per-loop stream slots and the workers' trailing (stream.h).
 */
#include "stream.h"

#include <uv.h>

/* The longest a worker waits for `lag` ready items before it takes what
 * there is: a stream that slows down is still served. */
#define TRAIL_WAIT_NS (100 * 1000)

uint32_t tdm_stream_begin(tdm_streams_t *ss, tdm_idle_t *idle) {
  const uint32_t all = (1u << TDM_STREAM_SLOTS) - 1;
  uint32_t used, i;

  do {
    used = tdm_load_u32(&ss->used);
    if ((used & all) == all)
      return TDM_NO_SLOT;
    i = (uint32_t)__builtin_ctz(~used);
  } while (!tdm_cas_u32(&ss->used, used, used | (1u << i)));
  /* A worker may read the slot between the CAS and these stores and see
   * its last owner's lag and release: a hint about when to take, which
   * the next read corrects; the pop checks every cell's seq. */
  tdm_store_u32(&ss->slot[i].lag, 0);
  tdm_store_rel_64(&ss->slot[i].release, 0);
  ss->slot[i].cpu = UINT32_MAX;
  tdm_idle_stream_begin(idle, &ss->slot[i].cpu);
  return i;
}

void tdm_stream_lag(tdm_streams_t *ss, tdm_idle_t *idle, uint32_t slot,
                    unsigned lag) {
  tdm_stream_t *s;

  if (slot == TDM_NO_SLOT)
    return;
  s = &ss->slot[slot];
  /* Relaxed, and only when it changes: a hint workers read on their turns
   * at the ring. */
  if (tdm_load_u32(&s->lag) != lag)
    tdm_store_u32(&s->lag, lag);
  tdm_idle_stream_at(idle, &s->cpu);
}

void tdm_stream_release(tdm_streams_t *ss, const tdm_inject_t *ring,
                        uint32_t slot) {
  if (slot == TDM_NO_SLOT)
    return;
  /* Release: the cells before enq that this loop wrote are written. */
  tdm_store_rel_64(&ss->slot[slot].release, tdm_load_64(&ring->enq));
}

void tdm_stream_end(tdm_streams_t *ss, tdm_idle_t *idle, uint32_t slot) {
  if (slot == TDM_NO_SLOT)
    return;
  tdm_store_u32(&ss->slot[slot].lag, 0);
  tdm_idle_stream_end(idle, &ss->slot[slot].cpu);
  /* Last: the slot is another loop's from here on.  The FAA (a full
   * barrier) publishes our writes to it to that loop's claiming CAS.
   * (Freed before its CPU count was given back, two loops wrote the slot
   * at once: TSan, two loops pinned in STREAM in tests/test_many_loops.) */
  tdm_faa_u32(&ss->used, -(1u << slot)); /* the bit is set: clears it */
}

/* The largest lag and the earliest release point of the loops streaming;
 * false when none trails. */
static bool trail_target(tdm_streams_t *ss, uint32_t *lag, uint64_t *release,
                         uint64_t deq) {
  uint32_t used = tdm_load_u32(&ss->used);
  uint32_t l;
  uint64_t r;
  bool any = false;

  *lag = 0;
  *release = deq + ((uint64_t)1 << 62);
  for (; used != 0; used &= used - 1) {
    tdm_stream_t *s = &ss->slot[__builtin_ctz(used)];

    l = tdm_load_u32(&s->lag);
    if (l == 0)
      continue;
    any = true;
    if (l > *lag)
      *lag = l;
    /* Acquire pairs with tdm_stream_release(); the pop still checks each
     * cell's seq, so this only decides when to look. */
    r = tdm_load_acq_64(&s->release);
    if ((int64_t)(r - *release) < 0)
      *release = r;
  }
  return any;
}

bool tdm_trail_ready_streams(tdm_streams_t *ss, const tdm_inject_t *ring,
                             tdm_trail_t *tr) {
  uint64_t release, deq, now;
  uint32_t lag;

  deq = tdm_load_64(&ring->deq);
  if (!trail_target(ss, &lag, &release, deq))
    return true;
  if (tdm_inject_ready_at(ring, lag)) {
    tr->credit = lag;
    tr->since = 0;
    return true;
  }
  /* What the loops queued before the end of their last drains is
   * finished with, however little. */
  if ((int64_t)(release - deq) > 0) {
    tr->credit = (uint32_t)(release - deq);
    tr->since = 0;
    return true;
  }
  now = uv_hrtime();
  if (tr->since == 0) {
    tr->since = now;
    return false;
  }
  if (now - tr->since < TRAIL_WAIT_NS)
    return false;
  /* Waited enough: the stream has dried up, take all there is. */
  tr->since = 0;
  tr->credit = UINT32_MAX;
  return true;
}
