/* SPDX-License-Identifier: MIT */
/*
 * lane.c: the HIGH lane's thread (see lane.h).
 *
 * NO LOST WAKE-UP.  The lane sets `sleeping`, a full barrier, then looks
 * at the HIGH queue's length, and waits on its event count from a
 * snapshot taken before.  A waker queues its item (the length's increment
 * is a full barrier), then loads `sleeping`: either it sees the lane
 * sleeping and moves the count, or the lane's look after its barrier sees
 * the item.
 */
#include "pool.h"

#include "sizing.h"

enum { LANE_NONE = 0, LANE_STARTING = 1, LANE_RUNNING = 2 };

_Thread_local uint32_t tandem__running_cls;

/* Sleeps until woken, unless a request waits or the lane stops. */
static void lane_park(tandem_pool_t *pool, tdm_lane_t *lane) {
  uint32_t snap = tdm_parker_snapshot(&lane->parker);

  tdm_store_u32(&lane->sleeping, 1);
  tdm_fence_sc(); /* store-load: sleeping before the queue's length */
  if (!tdm_classq_any(&pool->high) && !tdm_load_u32(&lane->stop))
    tdm_parker_wait(&lane->parker, snap);
  tdm_store_u32(&lane->sleeping, 0);
}

static void lane_main(void *arg) {
  tandem_pool_t *pool = arg;
  tdm_lane_t *lane = &pool->lane;
  void *item;

  tandem__name_thread("tandem-h", 0);
  tandem__running_cls = TDM_CLS_HIGH;
  while (!tdm_load_u32(&lane->stop)) {
    item = tdm_classq_pop_request(&pool->high);
    if (item == NULL) {
      lane_park(pool, lane);
      continue;
    }
    tdm_store_64(&lane->jobs, lane->jobs + 1);
    tandem__job_run(pool, NULL, item);
  }
}

/* The first HIGH job: makes the thread.  One caller wins the CAS; on an
 * error the state goes back to NONE so that a later job tries again. */
static void lane_start(tandem_pool_t *pool) {
  tdm_lane_t *lane = &pool->lane;

  if (!tdm_cas_u32(&lane->state, LANE_NONE, LANE_STARTING))
    return;
  if (uv_thread_create(&lane->thread, lane_main, pool) == 0)
    tdm_store_rel_u32(&lane->state, LANE_RUNNING);
  else
    tdm_store_rel_u32(&lane->state, LANE_NONE);
}

void tdm_lane_wake(tandem_pool_t *pool) {
  tdm_lane_t *lane = &pool->lane;

  if (tdm_load_u32(&lane->state) == LANE_NONE) {
    lane_start(pool);
    return; /* a new lane looks before it parks */
  }
  if (tdm_load_u32(&lane->sleeping))
    tdm_parker_wake(&lane->parker);
}

void tdm_lane_stop(tandem_pool_t *pool) {
  tdm_lane_t *lane = &pool->lane;
  uint32_t state;

  /* Acquire: a RUNNING state comes with the thread handle it published. */
  while ((state = tdm_load_acq_u32(&lane->state)) == LANE_STARTING)
    uv_sleep(1); /* a submitter is making it right now */
  if (state != LANE_RUNNING)
    return;
  tdm_store_u32(&lane->stop, 1);
  tdm_fence_sc();
  tdm_parker_wake(&lane->parker);
  uv_thread_join(&lane->thread);
}
