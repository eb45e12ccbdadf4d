/* SPDX-License-Identifier: MIT */
/*
 * park.pml: the pool's sleep protocol (src/pool.c: notify, wake_one,
 * park, stop_spinning, worker_main, tandem__pool_submit; src/park.c).
 *
 * Submitters outside the pool push items into the injection ring and
 * call notify(); workers look for work, spin for a while, then park on
 * their own event count.  The property is "no lost wake-up": never a state
 * in which an item waits and every worker sleeps for good.  It is checked
 * two ways (see README.md):
 *   - safety (-DSAFETY -DNOCLAIM): the `watch` process asserts, at
 *     `timeout` (no other process can move: every worker waits on its
 *     event count and every submitter is done), that every item was taken
 *     and the counters are back to rest; any other blocked state is an
 *     invalid end state;
 *   - liveness (ltl all_taken, pan -a -f): under weak fairness every run
 *     takes every item.
 *
 * Memory model.  Spin interleaves statements: sequentially consistent.
 * That is justified at each full barrier of the C code -- the
 * submitter's tdm_fence_sc() after its push, the workers' nsleeping++ and
 * nspinning-- (lock-prefixed read-modify-writes), every CAS/FAS/FAA -- and
 * the two halves of each Dekker pair meet only across such barriers.
 * With -DTSO the submitter's plain stores go through an x86-TSO store
 * buffer instead (drained by a `flusher` process, by tdm_fence_sc(), and
 * by any locked instruction of the submitter), so removing the fence
 * (-DNO_FENCE) can be checked:
 *   -DTSO                        the real code on x86: passes
 *   -DTSO -DNO_FENCE             the real code without its fence: passes
 *                                too, because the claim of the position is
 *                                a CAS on enq (locked: a full barrier) and
 *                                work_visible() reads enq, not the cell
 *   -DTSO -DPLAIN_PUBLISH        a single producer that publishes with a
 *                                plain store of enq (ck_ring's SPSC/SPMC
 *                                enqueue), with the fence: passes
 *   -DTSO -DPLAIN_PUBLISH -DNO_FENCE   must FAIL: the store-buffering
 *                                (Dekker) outcome loses a wake-up
 * The workers' side needs no buffer: its only plain store before the
 * re-check (sleeping = 1) is followed by the locked nsleeping++.
 *
 * -DUNDO_NO_RECHECK: notify() as src/pool.c had it -- when wake_one()
 * finds nobody, the spinning count it took is given back without a look
 * at the queues.  Must FAIL (with NW=2 NS=2): a lost wake-up (README.md).
 *
 * Not modelled: the workers' own deques and fork-join frames (an item a
 * worker pushes is run by that worker anyway), the overflow stack (the
 * ring never fills here), cancellation (ring.pml), throttled()/resting
 * and the stream lag (busy_loops == 0), deferred submits and kick(), the
 * contention back-off and the spin deadline (a spinner may give up at any
 * step: every timing at once), pool shutdown (stop).  ck_ec32 is taken as
 * correct: wait(snap) returns only once the count differs from snap.
 *
 * Sizes: NW workers, NS submitters with PER items each (NI <= 4).
 */

#ifndef NW
#define NW 2
#endif
#ifndef NS
#define NS 2
#endif
#ifndef PER
#define PER 1
#endif
#define NI (NS * PER)
#if NI > 4
#error "at most 4 items (pub[], pend[])"
#endif
#define MAXSPIN (NW / 2 > 0 -> NW / 2 : 1) /* pool->max_spinning */

#ifdef PLAIN_PUBLISH
#if NS != 1
#error "PLAIN_PUBLISH models a single producer (NS=1)"
#endif
#endif

byte nspinning;   /* workers looking for work, or woken to */
/* Workers parked.  Signed: a waker can CAS sleeping 1 -> 0 and decrement
 * between the parker's sleeping = 1 and its increment, so the count dips
 * below zero for a moment (harmless: notify() reads != 0 as "someone may
 * sleep", and wake_one() scans the flags). */
short nsleeping;
bit sleeping[NW]; /* 1 while parked; a waker CASes it to 0 */
/* Each worker's ck_ec32 event count, abstracted to "has it moved since
 * the owner's last snapshot": the snapshot clears the bit, every
 * increment sets it, and wait(snap) blocks while it is clear.  Exact as
 * long as the 32-bit count cannot wrap between a snapshot and the wait. */
bit moved[NW];

/* The injection ring, never full: position p is claimed once. */
byte enq;  /* next position to claim (memory) */
byte deq;  /* next position to take (workers' CAS) */
bit pub[4];  /* cell p's seq says "holds an item" (memory) */
byte taken; /* items taken by workers (ghost) */

#ifdef TSO
/* The submitters' store buffers.  pend[p]: the store publishing position p
 * is still in its submitter's buffer.  nbuf[s]: stores in s's buffer. */
bit pend[4];
byte pown[4];  /* which submitter's buffer holds it */
byte nbuf[NS];
#ifdef PLAIN_PUBLISH
byte enq_local; /* the producer's own view of enq (store forwarding) */
#endif
#endif

#ifdef PLAIN_PUBLISH
/* One producer stores enq after the item (release): published == claimed. */
#define PUBLISHED(p) ((p) < enq)
#else
#define PUBLISHED(p) ((p) < enq && pub[p])
#endif

/* A locked instruction (CAS/FAS/FAA) or tdm_fence_sc() by submitter s
 * first drains its store buffer; other threads have none. */
#ifdef TSO
#define DRAINED(s) (s == 255 || nbuf[s] == 0)
#else
#define DRAINED(s) true
#endif

#define DEC(x) atomic { assert(x > 0); x = x - 1 }

/* wake_one(): hands the spinning role the caller counted to one parked
 * worker; ok tells whether it found one.  sid: the calling submitter (255
 * for a worker).  Each load of a sleeping flag is a step of its own: a
 * worker may park just behind the scan. */
inline wake_one(ok, sid) {
  /* start = faa(&wake_cursor, 1): any worker may come first. */
  atomic { DRAINED(sid) -> select(start : 0 .. NW - 1) }
  do
  :: i == NW -> break
  :: i < NW && sleeping[(start + i) % NW] == 0 -> i++
  :: i < NW && sleeping[(start + i) % NW] == 1 ->
     if
     :: atomic { DRAINED(sid) && sleeping[(start + i) % NW] == 1 ->
                 w = (start + i) % NW; sleeping[w] = 0 }
        nsleeping--;
        atomic { moved[w] = 1; w = 0 } /* tdm_parker_wake: ck_ec32_inc */
        ok = true;
        break
     :: atomic { DRAINED(sid) && sleeping[(start + i) % NW] == 0 -> i++ }
        /* the CAS lost: someone else woke it, or it woke itself */
     fi
  od;
  i = 0; start = 0
}

/* work_visible(): tdm_inject_size() != 0, i.e. enq - deq > 0.  C does not
 * fix the order of the two loads: either may come first. */
inline work_visible(vis) {
  if
  :: e = enq; vis = (e > deq)
  :: d = deq; vis = (enq > d)
  fi;
  e = 0; d = 0
}

/* notify(): after publishing work and a full barrier, makes sure some
 * worker will look for it.  When wake_one() finds nobody, the caller gives
 * back the spinning role it took on the woken worker's behalf.  src/pool.c
 * does just that (-DUNDO_NO_RECHECK); but while it held the role, a
 * submitter may have seen nspinning != 0 and left its item to "a spinner"
 * that never looks: the model finds a lost wake-up there.  The default
 * model gives the role back as stop_spinning() does -- the last one out
 * re-checks the queues and, if work is visible, notifies again. */
inline notify(sid) {
  do
  :: nspinning != 0 -> break        /* a spinner will find it */
  :: else ->
     if
     :: nsleeping == 0 -> break     /* everyone is busy */
     :: else ->
        if
        :: atomic { DRAINED(sid) && nspinning == 0 -> nspinning = 1 }
           wake_one(ok, sid);
           if
           :: ok -> ok = false; break
           :: else ->
#ifdef UNDO_NO_RECHECK
              DEC(nspinning);
              break
#else
              atomic { DRAINED(sid) -> assert(nspinning > 0);
                       nspinning--; last = (nspinning == 0) }
              if
              :: last ->
                 last = false;
                 work_visible(vis);
                 if
                 :: vis -> vis = false /* and again */
                 :: else -> break
                 fi
              :: else -> break
              fi
#endif
           fi
        :: atomic { DRAINED(sid) && nspinning != 0 -> skip };
           break                    /* someone else just became spinner */
        fi
     fi
  od
}

proctype submitter(byte me) {
  byte k, pos, e, d, i, w, start;
  bool ok, last, vis;

  for (k : 1 .. PER) {
#ifdef PLAIN_PUBLISH
    /* ck_ring-style: write the slot, then store enq (release). */
#ifdef TSO
    pos = enq_local;
    atomic { enq_local++; nbuf[me]++ } /* into the store buffer */
#else
    pos = enq;
    enq++;
#endif
#else
    /* tdm_inject_push_mp: claim the position by CAS on enq (locked) ... */
    atomic { DRAINED(me) -> pos = enq; enq++ }
    /* ... then write cellp, owner, item and release seq = pos + 1. */
#ifdef TSO
    atomic { pend[pos] = 1; pown[pos] = me; nbuf[me]++ }
#else
    pub[pos] = 1;
#endif
#endif
#ifndef NO_FENCE
    /* tdm_fence_sc(): the item before deq and the counters. */
    DRAINED(me);
#endif
    /* tdm_inject_ahead(): an item still waiting ahead of ours has a
     * worker sent for it, and whoever takes it wakes the next. */
    if
    :: pos > deq -> skip
    :: else -> notify(me)
    fi
  };
  pos = 0
}

#ifdef TSO
/* The store buffers drain in their own time (FIFO per submitter; in the
 * CAS variant each submitter has at most one store in flight). */
active proctype flusher() {
  byte p;
end_flush:
  do
#ifdef PLAIN_PUBLISH
  :: atomic { enq < enq_local -> enq++; nbuf[0]-- }
#else
  :: atomic { pend[0] -> pend[0] = 0; pub[0] = 1; nbuf[pown[0]]-- }
  :: atomic { pend[1] -> pend[1] = 0; pub[1] = 1; nbuf[pown[1]]-- }
#if NI > 2
  :: atomic { pend[2] -> pend[2] = 0; pub[2] = 1; nbuf[pown[2]]-- }
  :: atomic { pend[3] -> pend[3] = 0; pub[3] = 1; nbuf[pown[3]]-- }
#endif
#endif
  od
}
#endif

proctype worker(byte me) {
  bool spinning, hot, got, vis, ok, last;
  byte p, e, d, i, w, start;

top:
  /* find_work(): the ring (pop_mc).  Claiming pos needs its cell
   * published; the load of seq and the CAS on deq are one step here, which
   * is sound because only the CAS's winner changes the cell. */
  atomic {
    if
    :: deq < NI && PUBLISHED(deq) -> p = deq; deq++; got = true; taken++
    :: else -> got = false
    fi
  }
  if
  :: got ->
     got = false;
     /* *more: is the next cell published too?  Then wake the next worker
      * (the pop's CAS was the full barrier). */
     if
     :: atomic { p + 1 < NI && PUBLISHED(p + 1) -> p = 0 }
        notify(255)
     :: else -> p = 0
     fi;
     if
     :: spinning ->
        /* stop_spinning(): the last spinner passes the role on. */
        spinning = false;
        atomic { assert(nspinning > 0); nspinning--; ok = (nspinning == 0) }
        if
        :: ok ->
           ok = false;
           work_visible(vis);
           if
           :: vis -> vis = false; notify(255)
           :: else -> skip
           fi
        :: else -> skip
        fi
     :: else -> skip
     fi;
     hot = true;     /* run_item(): the job itself is any interleaving */
     goto top
  :: else -> skip
  fi;

  /* Nothing found: maybe become a spinner. */
  if
  :: !spinning ->
     if
     :: hot -> nspinning++; spinning = true  /* just ran a job: spin */
     :: !hot ->                            /* try_start_spinning() */
        atomic {
          if
          :: nspinning < MAXSPIN -> nspinning++; spinning = true
          :: else -> skip
          fi
        }
     :: skip /* worker_spin_ns == 0, or the machine is contended */
     fi
  :: else -> skip
  fi;
  hot = false;
  if
  :: spinning ->
     if
     :: goto top                /* look again, before the deadline */
     :: spinning = false; DEC(nspinning) /* deadline: full barrier */
     fi
  :: else -> skip
  fi;

  /* park() */
  moved[me] = 0;                /* snap = tdm_parker_snapshot() */
  sleeping[me] = 1;
  nsleeping++;                  /* full barrier before the re-check */
  work_visible(vis);
  if
  :: !vis ->
end_wait:
     moved[me]                  /* tdm_parker_wait(snap) */
  :: else -> skip
  fi;
  vis = false;
  if
  :: atomic { sleeping[me] == 1 -> sleeping[me] = 0 }
     nsleeping--;               /* nobody woke us */
  :: atomic { sleeping[me] == 0 -> spinning = true } /* woken: a spinner */
  fi;
  goto top
}

/* Quiescence: nobody can move.  Then no item may be left waiting. */
active proctype watch() {
  byte w;
  timeout ->
  assert(taken == NI);          /* no lost wake-up */
  assert(nspinning == 0 && nsleeping == NW);
  for (w : 0 .. NW - 1) {
    assert(sleeping[w] == 1)
  }
}

init {
  byte k;
  atomic {
    for (k : 0 .. NW - 1) {
      run worker(k)
    }
    for (k : 0 .. NS - 1) {
      run submitter(k)
    }
  }
}

ltl all_taken { <> (taken == NI) }
