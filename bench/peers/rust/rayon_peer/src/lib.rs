// SPDX-License-Identifier: MIT
//! rayon_peer: Rayon as a peer of bench/forkjoin, inside its process.
//!
//! A cdylib with a C ABI that bench/forkjoin dlopen()s at run time
//! (--rayon-lib PATH; absent, the peer is reported as not built), so that
//! Rayon's repetitions are interleaved with tandem's, oneTBB's and
//! OpenMP's in one run instead of being measured in a process of their
//! own at another moment.  The declarations the driver uses are in
//! bench/forkjoin.c ("rayon"); keep RAYON_PEER_ABI in step with it.
//!
//! The kernels are forkjoin.c's:
//!
//!   fib(n), no cutoff, `int` argument and `long` result: every call with
//!   n >= 2 forks once through `rayon::join(|| fib(n - 1), || fib(n - 2))`,
//!   which, like tandem_join, runs the first closure inline and offers the
//!   second to thieves.  The root runs on a worker of the pool
//!   (`install`), and the clock runs there, so only the computation is
//!   timed.
//!
//!   The Mandelbrot image: the driver passes its own row kernel
//!   (forkjoin_mandel_rows) and its image, and Rayon shares the rows out,
//!   one row per item of `(0..height).into_par_iter()`, with the adaptive
//!   splitting par_chunks_mut(width) would get.  So every peer runs the same
//!   compiled kernel and differs only in the scheduling.  Timed from the
//!   calling thread around the whole `install`, as the other peers are.
//!
//! The clock is Instant, CLOCK_MONOTONIC on Linux, as stats_now_ns().
//! Call every function from one thread, one call at a time.

use std::ffi::c_void;
use std::os::raw::{c_char, c_int, c_long, c_uint};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

/// Bumped whenever a signature below changes: the driver refuses another.
const RAYON_PEER_ABI: c_uint = 1;

/// The pool every kernel runs on; None before init and after fini.
static POOL: Mutex<Option<rayon::ThreadPool>> = Mutex::new(None);

/// forkjoin_mandel_rows(lo, hi, ctx): rows [lo, hi) of the image ctx.
type RowsFn = unsafe extern "C" fn(usize, usize, *mut c_void);

/// The driver's image, shared by the workers: rows are disjoint, and the
/// kernel is C that may run on any thread.
struct Image(*mut c_void);
unsafe impl Send for Image {}
unsafe impl Sync for Image {}

fn fib(n: c_int) -> c_long {
    if n < 2 {
        return n as c_long;
    }
    let (a, b) = rayon::join(|| fib(n - 1), || fib(n - 2));
    a + b
}

/// The ABI version this library implements.
#[no_mangle]
pub extern "C" fn rayon_peer_abi() -> c_uint {
    RAYON_PEER_ABI
}

/// The Rayon version the build resolved, and the compiler's.
#[no_mangle]
pub extern "C" fn rayon_peer_version() -> *const c_char {
    concat!(env!("RAYON_PEER_RAYON_VERSION"), "\0").as_ptr() as *const c_char
}

#[no_mangle]
pub extern "C" fn rayon_peer_rustc_version() -> *const c_char {
    concat!(env!("RAYON_PEER_RUSTC_VERSION"), "\0").as_ptr() as *const c_char
}

/// Builds the pool, `threads` workers (the caller is not one of them: it
/// sleeps in `install` while they run).  Returns its thread count, or 0.
#[no_mangle]
pub extern "C" fn rayon_peer_init(threads: c_uint) -> c_uint {
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(threads as usize)
        .thread_name(|i| format!("rayon-peer-{}", i))
        .build();
    match (built, POOL.lock()) {
        (Ok(pool), Ok(mut slot)) => {
            let n = pool.current_num_threads() as c_uint;
            *slot = Some(pool);
            n
        }
        _ => 0,
    }
}

/// Drops the pool; its threads end on their own.  The library must stay
/// loaded (no dlclose): they may still be running its code.
#[no_mangle]
pub extern "C" fn rayon_peer_fini() {
    if let Ok(mut slot) = POOL.lock() {
        *slot = None;
    }
}

/// Runs `f` on the pool; -1 without one or after a panic.
fn with_pool<F: FnOnce(&rayon::ThreadPool) -> f64>(f: F) -> f64 {
    let slot = match POOL.lock() {
        Ok(slot) => slot,
        Err(_) => return -1.0,
    };
    match slot.as_ref() {
        Some(pool) => panic::catch_unwind(AssertUnwindSafe(|| f(pool))).unwrap_or(-1.0),
        None => -1.0,
    }
}

/// fib(n) by rayon::join into *result; the nanoseconds, timed on the
/// worker that runs the root, or -1.
///
/// # Safety
/// `result` points to a writable long.
#[no_mangle]
pub unsafe extern "C" fn rayon_peer_fib_ns(n: c_int, result: *mut c_long) -> f64 {
    with_pool(|pool| {
        let (ns, r) = pool.install(|| {
            let t0 = Instant::now();
            let r = fib(n);
            (t0.elapsed().as_nanos() as f64, r)
        });
        *result = r;
        ns
    })
}

/// Rows [0, height) of `image` by `rows`, shared out by Rayon; the
/// nanoseconds around the whole call, or -1.
///
/// # Safety
/// `rows` may be called on any thread with disjoint row ranges of `image`.
#[no_mangle]
pub unsafe extern "C" fn rayon_peer_mandel_ns(
    rows: RowsFn,
    image: *mut c_void,
    height: usize,
) -> f64 {
    let image = Image(image);
    with_pool(|pool| {
        let image = &image;
        let t0 = Instant::now();
        pool.install(|| {
            (0..height)
                .into_par_iter()
                .for_each(|y| unsafe { rows(y, y + 1, image.0) })
        });
        t0.elapsed().as_nanos() as f64
    })
}
