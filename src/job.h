/* SPDX-License-Identifier: MIT */
/*
 * job.h: a job's options and its start (job.c).  Internal to the library.
 */
#ifndef TANDEM_JOB_H
#define TANDEM_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "tandem.h"

typedef struct tdm_worker_s tdm_worker_t;

/* Any thread: checks `opts` (NULL: defaults) and turns it into req->opts_
 * bits and a deadline.  Returns 0 or UV_EINVAL. */
int tandem__job_opts(const tandem_job_opts_t *opts, unsigned *bits,
                     uint64_t *deadline);

/* Any thread, with a max_queued limit set: counts one more job waiting of
 * the kind `bits` says (blocking or compute); false (and counted rejected)
 * when max_queued already wait. */
bool tandem__job_admit(tandem_pool_t *pool, unsigned bits);
/* Any thread: the job counted by tandem__job_admit stops waiting. */
void tandem__job_unadmit(tandem_pool_t *pool, unsigned bits);

/* tandem_pool_new: the pool's blocking side.  0 or a uv error. */
int tandem__job_blocking_init(tandem_pool_t *pool,
                              const tandem_options_t *opts);

/* Any thread: puts QUEUED `req` where its options say.  Returns 0, or the
 * blocking side's error when no blocking thread exists or can be made
 * (then req was not queued). */
int tandem__job_submit(tandem_pool_t *pool, tandem_work_t *req, bool defer);

/* Any thread (tandem_cancel): takes QUEUED `req` back out of the queue it
 * waits in.  True if it did (req is then the caller's). */
bool tandem__job_take_back(tandem_work_t *req);

/* Loop thread of `t` (tandem_close): takes every job of t's still waiting
 * in any queue of the pool and calls taken(req, arg) for each. */
void tandem__job_take_owned(tandem_t *t, void (*taken)(void *, void *),
                            void *arg);

/* A worker (w), the HIGH lane or a blocking thread (w NULL): starts `req`
 * -- or refuses it (handle closing: UV_ECANCELED; deadline passed:
 * UV_ETIMEDOUT) -- and hands it to its loop's completion stack. */
void tandem__job_run(tandem_pool_t *pool, tdm_worker_t *w,
                     tandem_work_t *req);

#endif /* TANDEM_JOB_H */
