/* SPDX-License-Identifier: MIT */
/*
 * classq.c: a job class's FIFO queue (see classq.h): a singly linked list
 * under a mutex, linked through the items themselves.
 */
#include "classq.h"

#include <stddef.h>

#include "pool.h"

int tdm_classq_init(tdm_classq_t *q) {
  q->len = 0;
  q->head = NULL;
  q->tail = NULL;
  return uv_mutex_init(&q->lock);
}

void tdm_classq_destroy(tdm_classq_t *q) {
  uv_mutex_destroy(&q->lock);
}

void tdm_classq_push(tdm_classq_t *q, void *item) {
  *tdm_item_link(item) = NULL;
  uv_mutex_lock(&q->lock);
  if (q->tail == NULL)
    q->head = item;
  else
    *tdm_item_link(q->tail) = item;
  q->tail = item;
  tdm_faa_u32(&q->len, 1); /* full barrier: see classq.h */
  uv_mutex_unlock(&q->lock);
}

void *tdm_classq_pop(tdm_classq_t *q) {
  void *item;

  if (!tdm_classq_any(q))
    return NULL;
  uv_mutex_lock(&q->lock);
  item = q->head;
  if (item != NULL) {
    q->head = *tdm_item_link(item);
    if (q->head == NULL)
      q->tail = NULL;
    tdm_faa_u32(&q->len, (uint32_t)-1);
  }
  uv_mutex_unlock(&q->lock);
  return item;
}

/* Under the lock: unlinks `item`, which follows `prev` (NULL: the head). */
static void unlink_after(tdm_classq_t *q, void *prev, void *item) {
  void *next = *tdm_item_link(item);

  if (prev == NULL)
    q->head = next;
  else
    *tdm_item_link(prev) = next;
  if (q->tail == item)
    q->tail = prev;
  tdm_faa_u32(&q->len, (uint32_t)-1);
}

void *tdm_classq_pop_request(tdm_classq_t *q) {
  void *prev;
  void *it;

  if (!tdm_classq_any(q))
    return NULL;
  uv_mutex_lock(&q->lock);
  for (prev = NULL, it = q->head;
       it != NULL && ((uintptr_t)it & TDM_ITEM_FRAME) != 0;
       prev = it, it = *tdm_item_link(it))
    ;
  if (it != NULL)
    unlink_after(q, prev, it);
  uv_mutex_unlock(&q->lock);
  return it;
}

bool tdm_classq_remove(tdm_classq_t *q, void *item) {
  void *prev;
  void *it;

  if (!tdm_classq_any(q))
    return false;
  uv_mutex_lock(&q->lock);
  for (prev = NULL, it = q->head; it != NULL && it != item;
       prev = it, it = *tdm_item_link(it))
    ;
  if (it != NULL)
    unlink_after(q, prev, it);
  uv_mutex_unlock(&q->lock);
  return it != NULL;
}

void tdm_classq_take_owned(tdm_classq_t *q, const void *owner,
                           void (*taken)(void *item, void *arg), void *arg) {
  void *mine = NULL; /* taken items, newest first */
  void *prev = NULL;
  void *it;
  void *next;

  uv_mutex_lock(&q->lock);
  for (it = q->head; it != NULL; it = next) {
    next = *tdm_item_link(it);
    if (((uintptr_t)it & TDM_ITEM_FRAME) == 0 &&
        ((tandem_work_t *)it)->tandem == owner) {
      unlink_after(q, prev, it);
      *tdm_item_link(it) = mine;
      mine = it;
    } else {
      prev = it;
    }
  }
  uv_mutex_unlock(&q->lock);
  for (prev = NULL; mine != NULL; mine = next) { /* oldest first */
    next = *tdm_item_link(mine);
    *tdm_item_link(mine) = prev;
    prev = mine;
  }
  for (; prev != NULL; prev = next) {
    next = *tdm_item_link(prev);
    taken(prev, arg);
  }
}
