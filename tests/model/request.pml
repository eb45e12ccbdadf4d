/* SPDX-License-Identifier: MIT */
/*
 * request.pml: a request's life (src/loop.c: tandem__queue_work_with,
 * tandem_cancel, tandem__job_run, tandem__complete, drain, tandem_close,
 * close_taken; src/pool.h: the states).
 *
 * One request R, two handles H1 and H2 on one loop thread, one pool with
 * its injection ring (C cells, Vyukov's protocol as in ring.pml) and its
 * overflow stack, one worker.  Threads:
 *   loop      queues R on H1, then drains both handles' completion stacks
 *             (FINISHED, then the after callback, which may queue R again
 *             on H1 or H2), and may close one handle (the close scan and
 *             close_taken);
 *   ext       another thread: queues R once, on H1 or H2;
 *   canceller another thread: tandem_cancel(R), NCANCEL times;
 *   worker    takes R from the ring or the overflow stack and runs it
 *             (or completes it with UV_ECANCELED if its handle closes).
 * A queueing is numbered by `gen` (ghost), bumped by each winning claim.
 * Properties (safety, -DSAFETY):
 *   - exactly one after callback per accepted queueing (assertions at each
 *     callback, and at rest: `watch`);
 *   - a queue_work is accepted only when R is not in flight (no second
 *     submit while queued, running, done or being filled in);
 *   - whoever follows req->tandem -- the canceller, the worker, a
 *     completion -- finds the handle written for the current queueing
 *     (never NULL, never the previous one);
 *   - the after callback gets UV_ECANCELED only if a tandem_cancel won this
 *     queueing or its handle is closing, 0 only if work_cb ran, and a won
 *     cancel always gives UV_ECANCELED; it comes on the handle R was queued
 *     on.
 * -DF2_OLD_ORDER models tandem_queue_work and tandem_cancel before the fix
 * of defect F2: the submit's CAS goes straight to QUEUED before it writes
 * req->tandem (and a refused submit restores the old state), and cancel
 * follows req->tandem before its CAS.  The handle assertion must fail:
 * on a first queue it reads NULL; with -DCANCEL_LATE as well (no cancel
 * before the first queueing's after callback) it reads the handle of the
 * previous queueing, which may be another pool's.
 *
 * Memory model: sequentially consistent.  The C code publishes the
 * request's fields with release stores (QUEUED; the ring cell's item and
 * seq) read with acquire (cancel's load of the state, the consumer's
 * load of seq), and every claim is a CAS/FAS (a full barrier): the
 * orders the model relies on are those.
 *
 * Not modelled: counting (loop_pending_, inflight_ beyond its closing
 * bit), wake-ups of the loop and of workers (park.pml), polling/batching
 * modes, fork-join, several requests (one request exercises every
 * transition; others only share the ring, which ring.pml covers).
 */

#ifndef C
#define C 2
#endif
#ifndef NCANCEL
#define NCANCEL 2
#endif
#ifndef REQUEUES
#define REQUEUES 2   /* after callbacks that may queue R again */
#endif
#define MAXG 6       /* queueing numbers (claims) stay below this */

/* req->state_ */
#define IDLE 0       /* never queued (or garbage: taken for idle) */
#define CLAIMED 1
#define QUEUED 2
#define RUNNING 3
#define DONE 4
#define FINISHED 5

#define OK 0
#define ECANCELED 1
#define NOCELL 255
#define NONE 0
#define R 1          /* the request, as an item */
#define TOMB 255

/* The request. */
byte st;             /* state_ */
byte tandem;         /* req->tandem: 0 (NULL), 1 (H1), 2 (H2) */
byte cell_ = NOCELL; /* injection cell while queued there */
byte status;         /* status_ */

/* The handles. */
bit closing_[3];     /* closing_: workers cancel the handle's jobs */
bit cbit[3];         /* inflight_'s closing bit (or flags_' F_CLOSING on
                        the loop thread): submits are refused */
bit done[3];         /* R on the handle's completion stack */

/* The pool: ring and overflow stack. */
byte enq, deq;
short tombs;
byte seq[C];
byte item[C];
byte owner[C];
bit ovf;             /* R on the overflow stack */

/* Ghosts. */
byte gen;            /* number of the current queueing (its claim) */
byte tgen;           /* queueing for which req->tandem was written */
bit inflight;        /* claimed and not yet FINISHED (or refused) */
bit accepted[MAXG];
byte afters[MAXG];
bit cwon[MAXG];      /* a tandem_cancel won this queueing */
bit ran[MAXG];       /* work_cb ran for it */
byte requeues;

/* Whoever reads req->tandem must find this queueing's handle. */
#define HANDLE_OK (tandem != 0 && tgen == gen)

/* ----------------------------------------------------------- the ring */

/* tandem__pool_submit from outside the pool: tdm_inject_push_mp, or the
 * overflow stack (cell_ = NULL) when the ring is full. */
inline submit(o) {
  pos = enq;
  do
  :: c = pos % C;
     if
     :: seq[c] == pos ->
        if
        :: atomic { enq == pos -> enq = pos + 1 } ->
           cell_ = c;                /* *cellp, before the item */
           owner[c] = o;
           item[c] = R;              /* release */
           seq[c] = pos + 1;         /* release */
           break
        :: atomic { enq != pos -> pos = enq }
        fi
     :: seq[c] < pos ->              /* full */
        cell_ = NOCELL;
        ovf = 1;                     /* overflow_push: a CAS */
        break
     :: seq[c] > pos -> pos = enq
     fi
  od;
  pos = 0; c = 0
}

/* ---------------------------------------------------------- completion */

/* tandem__complete: any thread that owns R. */
inline complete(s) {
  assert(HANDLE_OK);                 /* t = req->tandem */
  status = s;
  st = DONE;
  done[tandem] = 1                   /* the CAS push on t's stack */
}

/* ------------------------------------------------------------- submit */

/* tandem__queue_work_with(h, R): rc gets 0 (accepted), 1 (UV_EBUSY) or 2
 * (UV_EINVAL: handle closing). */
inline queue_work(h, rc) {
  s = st;
#ifdef F2_OLD_ORDER
  if
  :: s == QUEUED || s == RUNNING || s == DONE -> rc = 1
  :: else ->
     if
     :: atomic { st == s -> st = QUEUED; assert(!inflight); inflight = 1;
                 gen++; assert(gen < MAXG) }
        if
        :: cbit[h] -> atomic { st = s; inflight = 0 }; rc = 2
        :: else ->
           atomic { tandem = h; tgen = gen };
           status = OK;
           accepted[gen] = 1;
           submit(h);
           rc = 0
        fi
     :: atomic { st != s -> rc = 1 }
     fi
  fi;
#else
  if
  :: s == CLAIMED || s == QUEUED || s == RUNNING || s == DONE -> rc = 1
  :: else ->
     if
     :: atomic { st == s -> st = CLAIMED; assert(!inflight); inflight = 1;
                 gen++; assert(gen < MAXG) }
        if
        :: cbit[h] -> atomic { st = s; inflight = 0 }; rc = 2
        :: else ->
           atomic { tandem = h; tgen = gen };
           status = OK;
           cell_ = NOCELL;           /* not the cell of an earlier one */
           st = QUEUED;              /* release */
           accepted[gen] = 1;
           submit(h);
           rc = 0
        fi
     :: atomic { st != s -> rc = 1 }
     fi
  fi;
#endif
  s = 0
}

/* ------------------------------------------------------------- cancel */

/* tandem_cancel(R). */
inline cancel() {
  s = st;                            /* acquire */
  if
#ifdef F2_OLD_ORDER
  :: s == RUNNING || s == DONE || s == FINISHED -> skip   /* UV_EBUSY */
#else
  :: s == RUNNING || s == DONE || s == FINISHED || s == CLAIMED -> skip
#endif
  :: s == IDLE -> skip                                     /* UV_EINVAL */
  :: s == QUEUED ->
#ifdef F2_OLD_ORDER
     /* &req->tandem->pool->inject, before the CAS */
     assert(HANDLE_OK);
#endif
     c = cell_;
     if
     :: c == NOCELL -> skip                               /* UV_EBUSY */
     :: else ->
        if
        :: atomic { item[c] == R -> item[c] = TOMB }
           /* Won: R is ours; only now read its handle (t = req->tandem). */
           assert(HANDLE_OK);
           cwon[gen] = 1;
           tombs++;                  /* tdm_inject_tombstoned(t's ring) */
           complete(ECANCELED)
        :: atomic { item[c] != R -> skip }                 /* UV_EBUSY */
        fi
     fi
  fi;
  s = 0; c = 0
}

/* --------------------------------------------------------------- close */

/* tandem_close(h): the closing bit, then tdm_inject_cancel_owned(q, h,
 * close_taken), the scan as fixed for F1 (ring.pml). */
inline close(h) {
  closing_[h] = 1;                   /* tdm_store_u32(&t->closing_, 1) */
  cbit[h] = 1;                       /* faa(&t->inflight_, CLOSING_BIT) */
  pos = deq;
  end = enq;
  do
  :: end <= pos -> break
  :: else ->
     c = pos % C;
     s = seq[c];
     if
     :: s == pos + 1 && owner[c] == h ->
        it = item[c];
        if
        :: seq[c] == s && it == R ->
           if
           :: atomic { item[c] == R -> item[c] = TOMB }
              tombs++;
              /* close_taken() */
              assert(HANDLE_OK);
              if
              :: tandem != h ->
                 /* The cell was reused by R queued on another handle
                  * between our look and our CAS: queue it again. */
                 submit(tandem)
              :: else -> complete(ECANCELED)
              fi
           :: atomic { item[c] != R -> skip }
           fi
        :: else -> skip
        fi
     :: else -> skip
     fi;
     it = 0; s = 0; c = 0;
     pos++
  od;
  pos = 0; end = 0
}

/* ------------------------------------------------------------- threads */

/* drain(h) for R on h's stack, then R's after callback. */
inline drain(h) {
  done[h] = 0;                       /* the FAS of the whole stack */
  g = gen;                           /* ghost: the queueing it ends */
  th = tandem;                       /* ghost */
  rs = status;                       /* read before FINISHED */
  atomic { st = FINISHED; inflight = 0 } /* release */
  /* after_cb(R, rs) */
  assert(accepted[g]);
  afters[g]++;
  assert(afters[g] == 1);            /* one after callback per queueing */
  assert(th == h);                   /* ... on the handle it was queued on */
  assert(rs != ECANCELED || cwon[g] || closing_[h]);
  assert(rs != OK || ran[g]);
  assert(!cwon[g] || rs == ECANCELED);
  if
  :: requeues < REQUEUES -> requeues++;
     if
     :: queue_work(1, rc)
     :: queue_work(2, rc)
     fi
  :: skip
  fi;
  g = 0; th = 0; rs = 0; rc = 0
}

proctype loop() {
  byte s, c, pos, end, it, g, th, rs, rc;
  bit decided;

  queue_work(1, rc);
  rc = 0;
end_loop:
  do
  :: done[1] -> drain(1)
  :: done[2] -> drain(2)
  :: !decided -> decided = 1; close(1)
  :: !decided -> decided = 1; close(2)
  :: !decided -> decided = 1         /* no close */
  od
}

proctype ext() {
  byte s, c, pos, rc;
  if
  :: queue_work(1, rc)
  :: queue_work(2, rc)
  fi
}

proctype canceller() {
  byte s, c, k;
#ifdef CANCEL_LATE
  /* Only once the first queueing is over: then a failure cannot be the
   * NULL handle of a first queue, only the previous queueing's handle. */
end_late:
  afters[1] == 1;
#endif
  for (k : 1 .. NCANCEL) {
    cancel()
  }
}

/* tandem__job_run */
inline job_run() {
  assert(HANDLE_OK);                 /* t = req->tandem */
  if
  :: closing_[tandem] -> complete(ECANCELED)
  :: else ->
     st = RUNNING;
     ran[gen] = 1;                   /* work_cb */
     complete(OK)
  fi
}

proctype worker() {
  byte pos, c, it;
end_worker:
  do
  :: atomic { seq[deq % C] == deq + 1 -> pos = deq }
     /* tdm_inject_pop_mc */
     if
     :: atomic { deq == pos -> deq = pos + 1 }
        c = pos % C;
        atomic { it = item[c]; item[c] = NONE }   /* the swap: the claim */
        seq[c] = pos + C;
        if
        :: it == TOMB -> tombs--
        :: else -> assert(it == R); job_run()
        fi
     :: atomic { deq != pos -> skip }
     fi;
     pos = 0; c = 0; it = 0
  :: atomic { ovf -> ovf = 0 }       /* overflow_take */
     job_run()
  od
}

/* At rest: every accepted queueing had its after callback, once. */
active proctype watch() {
  byte g, n;
  timeout ->
  assert(!inflight && !ovf && !done[1] && !done[2]);
  assert(st != CLAIMED && st != QUEUED && st != RUNNING && st != DONE);
  for (g : 1 .. MAXG - 1) {
    assert(accepted[g] == afters[g])
  }
  for (g : 0 .. C - 1) {
    if
    :: item[g] == TOMB -> n++
    :: else -> skip
    fi
  }
  assert(tombs == n)
}

init {
  byte k;
  d_step {
    for (k : 0 .. C - 1) {
      seq[k] = k
    }
  }
  atomic {
    run loop();
    run ext();
    run canceller();
    run worker()
  }
}
