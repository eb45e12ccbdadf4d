/* SPDX-License-Identifier: MIT */
/*
 * ring.pml: the injection ring (src/inject.c) -- Vyukov's bounded MPMC
 * queue with per-cell sequence numbers, the take-versus-cancel claim on a
 * cell's item, and tandem_close()'s scan (tdm_inject_cancel_owned).
 *
 * Processes: NP producers (tdm_inject_push_mp), NC consumers
 * (tdm_inject_pop_mc), one canceller (tandem_cancel -> tdm_inject_cancel_in
 * on the cell the push recorded) and one closer that scans the ring for
 * the items of owner A.  Properties, all safety (-DSAFETY):
 *   - each item is claimed by exactly one of consumer, canceller, scan:
 *     never two (assertion at each claim), never none (a consumer waits
 *     until an item can be taken or all are claimed: an item nobody can
 *     claim leaves it blocked, an invalid end state);
 *   - the scan takes only items of its owner (the seqlock on seq);
 *   - the scan visits only positions it read as in use, so it ends: with
 *     the read end read first, pos <= end, and every step moves pos towards
 *     end (assertion in the loop: end - pos > 0);
 *   - at rest, the tombstone count equals the tombstones in the cells.
 * -DF1_OLD_SCAN models the scan before the fix of defect F1 -- end = enq
 * read first, then pos = deq, loop while pos != end -- which must fail the
 * loop's bound assertion: deq can pass the end read earlier, and the C
 * loop then counts towards 2^64.
 *
 * Memory model: sequentially consistent interleaving.  On the C side
 * every claim is a CAS/FAS (a full barrier), seq is written with release
 * and read with acquire, so a thread that sees seq == pos + 1 sees the
 * item and owner written before it; the scan's second read of seq after an
 * acquire fence is the seqlock check.  Those are the orders the model's
 * interleaving assumes.
 *
 * Bounds: C cells (2: every cell is reused, so laps and the seqlock are
 * exercised), N = NP * PER items in all, so positions stay below N and
 * seq below N + C (bytes, never wrapping).  A push that finds the ring full
 * waits for a consumer (the C code sends the item to the overflow stack
 * instead, outside the ring: not modelled); cellp and posp are recorded
 * as the C code does, before the item is written.
 */

#ifndef C
#define C 2
#endif
#ifndef NP
#define NP 2
#endif
#ifndef PER
#define PER 2
#endif
#ifndef NC
#define NC 1
#endif
#if C < 2
#error "Vyukov's ring needs two cells at least (tdm_inject_init rounds up to 2)"
#endif
#define N (NP * PER)
#define NONE 0          /* NULL */
#define TOMB 255        /* the tombstone */
#define NOCELL 255      /* cellp still NULL */
#define OWNER_A 1
#define OWNER_B 2
#define CANCEL_ITEM 2   /* the item tandem_cancel() goes for */
#define BY_CONSUMER 1
#define BY_CANCEL 2
#define BY_SCAN 3

byte enq, deq;          /* tdm_inject_t */
/* Signed: the canceller's CAS and its tombs++ are two steps, and a
 * consumer may swap the tombstone out and decrement in between; the C
 * counter (uint64_t) wraps for that moment -- harmless, tdm_inject_live()
 * is a statistic and clamps at 0. */
short tombs;
byte seq[C];            /* tdm_cell_t */
byte item[C];
byte owner[C];

byte ownerof[N + 1];    /* ghost: who queued item x (1..N) */
byte cellof[N + 1];     /* the request's cell_, written by the push */
byte claimed[N + 1];    /* ghost: who took item x */
byte nclaimed;
bit scan_done;

inline claim(x, who) {
  d_step {
    assert(x >= 1 && x <= N);
    assert(claimed[x] == 0);    /* never two */
    claimed[x] = who;
    nclaimed++
  }
}

/* tdm_inject_push_mp */
inline push(x, o) {
  pos = enq;
  do
  :: c = pos % C;
     if
     :: seq[c] == pos ->                      /* dif == 0 */
        if
        :: atomic { enq == pos -> enq = pos + 1 } /* CAS won */
           break
        :: atomic { enq != pos -> pos = enq }      /* CAS lost */
        fi
     :: seq[c] < pos ->
        /* dif < 0: full (the C code overflows instead): wait for room */
        atomic { seq[c] >= pos -> pos = enq }
     :: seq[c] > pos -> pos = enq             /* another producer won */
     fi
  od;
  cellof[x] = c;                /* *cellp, before the item is visible */
  owner[c] = o;
  item[c] = x;
  seq[c] = pos + 1;             /* release */
  pos = 0; c = 0
}

/* tdm_inject_pop_mc: the oldest live item into it, or NONE. */
inline pop(it) {
  pos = deq;
  do
  :: c = pos % C;
     if
     :: seq[c] == pos + 1 ->
        if
        :: atomic { deq == pos -> deq = pos + 1 }   /* CAS won */
           /* The swap is the claim: a canceller's CAS can no longer win. */
           atomic { it = item[c]; item[c] = NONE }
           assert(it != NONE);
           seq[c] = pos + C;                        /* release: next lap */
           if
           :: it == TOMB ->
              tombs--;
              it = NONE;
              pos = deq
           :: else -> break
           fi
        :: atomic { deq != pos -> pos = deq }       /* CAS lost */
        fi
     :: seq[c] < pos + 1 -> break   /* empty, or not published: NULL */
     :: seq[c] > pos + 1 -> pos = deq
     fi
  od;
  pos = 0; c = 0
}

proctype producer(byte first) {
  byte k, x, pos, c;
  for (k : 0 .. PER - 1) {
    x = first + k * NP;
    push(x, ownerof[x])
  }
}

proctype consumer() {
  byte it, pos, c;
  do
  :: nclaimed == N -> break
  :: else ->
     pop(it);
     if
     :: it != NONE -> claim(it, BY_CONSUMER); it = NONE
     :: else ->
        /* NULL: look again once a pop could succeed, or all is claimed.
         * An item nobody can ever take leaves us blocked here. */
        (nclaimed == N || seq[deq % C] == deq + 1)
     fi
  od
}

/* tandem_cancel: the cas on the cell the push recorded. */
proctype canceller() {
  byte c;
  c = cellof[CANCEL_ITEM];
  if
  :: c == NOCELL -> skip                          /* not pushed yet */
  :: else ->
     if
     :: atomic { item[c] == CANCEL_ITEM -> item[c] = TOMB }
        tombs++;
        claim(CANCEL_ITEM, BY_CANCEL)
     :: atomic { item[c] != CANCEL_ITEM -> skip } /* UV_EBUSY */
     fi
  fi
}

/* tandem_close: tdm_inject_cancel_owned(q, A, ...) */
proctype closer() {
  byte pos, end, c, s, it, steps;
#ifdef F1_OLD_SCAN
  end = enq;
  pos = deq;
  do
  :: pos == end -> break
  :: else ->
#else
  pos = deq;                    /* the read end first (acquire) */
  end = enq;
  assert(pos <= end);           /* deq never passes enq */
  do
  :: end <= pos -> break        /* (int64_t)(end - pos) > 0 */
  :: else ->
#endif
     /* The scan only visits positions it read as in use: else it runs
      * towards 2^64 in the C code (defect F1). */
     assert(end > pos);
     steps++;
     assert(steps <= N);
     c = pos % C;
     s = seq[c];                                  /* acquire */
     if
     :: s != pos + 1 -> skip          /* taken already, or not published */
     :: else ->
        if
        :: owner[c] != OWNER_A -> skip
        :: else ->
           it = item[c];
           /* acquire fence, then seq again: same lap? */
           if
           :: seq[c] != s || it == NONE || it == TOMB -> skip
           :: else ->
              if
              :: atomic { item[c] == it -> item[c] = TOMB }
                 tombs++;
                 assert(ownerof[it] == OWNER_A);
                 claim(it, BY_SCAN)
              :: atomic { item[c] != it -> skip }
              fi
           fi
        fi
     fi;
     it = 0; s = 0; c = 0;
     pos++
  od;
  scan_done = 1
}

/* At rest: every item claimed once; the tombstone count is right. */
active proctype watch() {
  byte c, n;
  timeout ->
  assert(nclaimed == N && scan_done);
  for (c : 0 .. C - 1) {
    if
    :: item[c] == TOMB -> n++
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
    for (k : 1 .. N) {
      cellof[k] = NOCELL;
      ownerof[k] = (k % 3 == 0 -> OWNER_B : OWNER_A)
    }
  }
  atomic {
    for (k : 1 .. NP) {
      run producer(k)
    }
    for (k : 1 .. NC) {
      run consumer()
    }
    run canceller();
    run closer()
  }
}
