// SPDX-License-Identifier: MIT
//! rayon_forkjoin: bench/forkjoin's two kernels on Rayon, so that
//! bench/tandem-bench can show Rayon beside tandem, oneTBB and OpenMP.
//!
//! The kernels are bench/forkjoin.c's, line for line:
//!
//!   fib(30), no cutoff, `int` argument and `long` (i64) result: every call
//!   with n >= 2 forks once through `rayon::join(|| fib(n - 1), || fib(n -
//!   2))`, which, like tandem_join, runs the first closure inline and
//!   offers the second to thieves.  The root runs on a worker of a
//!   ThreadPool of --workers threads (`install`), and the clock runs there,
//!   so only the computation is timed.  Figures: wall time, and wall time
//!   per join (joins = calls that fork, counted exactly).
//!
//!   A Mandelbrot image (2048 x 2048, or 1024 x 1024 with --quick, 256
//!   iterations at most) of u16 pixels, by rows: `par_chunks_mut(width)`,
//!   Rayon's adaptive splitting, timed from the calling thread around the
//!   whole `install`.  Every image is checked against the serial one's
//!   FNV-1a checksum, which is the C program's too (the same f64
//!   operations in the same order, no FMA), so tandem-bench can tell that
//!   both drew the same image.
//!
//! A serial run of each kernel, compiled by the same rustc, is measured
//! beside Rayon (repetitions interleaved, the order rotated, 20 ms between
//! measurements, one warm-up run of each first): the Mandelbrot speedup is
//! over it, so the compiler's code for the kernel is not read as Rayon's
//! scaling.
//!
//! Options and report follow bench/cli.h: --workers N (default: the online
//! CPUs), --reps R (9; --quick 5; --tiny 1 and fib(20)), --json FILE (else
//! stdout), --kernel fib|mandel, --fib N; --help exits 0, a bad argument 2.
//! The report is one JSON object shaped like bench/forkjoin's ("fib" and
//! "mandelbrot": lists of peers with "elapsed_ns" and, for fib,
//! "ns_per_spawn" samples).

use std::env;
use std::fs;
use std::io::{self, Write};
use std::process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const FIB_N: i32 = 30;
const FIB_N_TINY: i32 = 20;
const FIB_MAX_N: i32 = 40;
const MANDEL_SIDE: usize = 2048;
const MANDEL_SIDE_QUICK: usize = 1024;
const MANDEL_MAX_ITER: u32 = 256;
const MAX_WORKERS: u64 = 1024;
const MAX_REPS: u64 = 99;
const WATCHDOG_S: u64 = 120; // one measurement gives up after this
const SETTLE: Duration = Duration::from_millis(20); // between measurements

const USAGE: &str = "\
usage: rayon_forkjoin [--workers N] [--reps R] [--quick | --tiny] [--json FILE]
                      [--kernel fib|mandel] [--fib N]
  --workers N   threads of the Rayon pool (default: the online CPUs)
  --reps R      repetitions (default 9, --quick 5, --tiny 1)
  --quick       fewer reps and a 1024x1024 image, for a quick look
  --tiny        --quick with one rep and fib(20): a smoke test
  --json FILE   write the JSON report to FILE (default: stdout)
  --kernel K    run only fib or only mandel
  --fib N       fib(N), 2..40, instead of fib(30)
";

// ------------------------------------------------------------- kernels

fn fib_serial(n: i32) -> i64 {
    if n < 2 {
        return n as i64;
    }
    fib_serial(n - 1) + fib_serial(n - 2)
}

fn fib_rayon(n: i32) -> i64 {
    if n < 2 {
        return n as i64;
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

/// The exact value, and how many calls fork (n >= 2).
fn fib_count(n: i32) -> (i64, u64) {
    let (mut f0, mut f1) = (0i64, 1i64); // fib(i - 1), fib(i)
    let (mut s0, mut s1) = (0u64, 0u64); // the same for spawns
    if n == 0 {
        return (0, 0);
    }
    for _ in 2..=n {
        let f2 = f0 + f1;
        let s2 = 1 + s0 + s1;
        f0 = f1;
        f1 = f2;
        s0 = s1;
        s1 = s2;
    }
    (f1, s1)
}

struct Image {
    width: usize,
    height: usize,
    max_iter: u32,
    pixels: Vec<u16>,
}

/// Row y of the region [-2, 0.5] x [-1.25, 1.25], as bench/forkjoin.c's
/// forkjoin_mandel_rows computes it.
fn mandel_row(width: usize, height: usize, max_iter: u32, y: usize, row: &mut [u16]) {
    let dx = 2.5 / width as f64;
    let dy = 2.5 / height as f64;
    let ci = -1.25 + y as f64 * dy;
    for (x, px) in row.iter_mut().enumerate() {
        let cr = -2.0 + x as f64 * dx;
        let (mut zr, mut zi, mut zr2, mut zi2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        let mut i = 0;
        while i < max_iter && zr2 + zi2 <= 4.0 {
            zi = 2.0 * zr * zi + ci;
            zr = zr2 - zi2 + cr;
            zr2 = zr * zr;
            zi2 = zi * zi;
            i += 1;
        }
        *px = i as u16;
    }
}

fn mandel_serial(m: &mut Image) {
    let (w, h, it) = (m.width, m.height, m.max_iter);
    for (y, row) in m.pixels.chunks_mut(w).enumerate() {
        mandel_row(w, h, it, y, row);
    }
}

fn mandel_rayon(m: &mut Image) {
    use rayon::prelude::*;
    let (w, h, it) = (m.width, m.height, m.max_iter);
    m.pixels
        .par_chunks_mut(w)
        .enumerate()
        .for_each(|(y, row)| mandel_row(w, h, it, y, row));
}

/// FNV-1a over the pixels, as the C program's.
fn mandel_checksum(m: &Image) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
    for &p in &m.pixels {
        h ^= p as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Every pixel 0xffff, which none reaches: a skipped row fails the check.
fn mandel_poison(m: &mut Image) {
    for p in m.pixels.iter_mut() {
        *p = 0xffff;
    }
}

// ------------------------------------------------------------- options

struct Options {
    workers: usize,
    reps: usize,
    quick: bool,
    tiny: bool,
    json: Option<String>,
    fib: bool,
    mandel: bool,
    fib_n: i32,
}

fn count(val: Option<&String>, min: u64, max: u64) -> Option<u64> {
    let s = val?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    if v < min || v > max {
        return None;
    }
    Some(v)
}

fn bad_argument(arg: &str, value: bool) -> ! {
    eprint!(
        "rayon_forkjoin: bad argument '{}'{}\n{}",
        arg,
        if value { " (or its value)" } else { "" },
        USAGE
    );
    process::exit(2);
}

/// The online CPUs, as sysconf(_SC_NPROCESSORS_ONLN) counts them.
fn online_cpus() -> usize {
    let mut n = 0;
    if let Ok(s) = fs::read_to_string("/sys/devices/system/cpu/online") {
        for part in s.trim().split(',') {
            let mut ends = part.splitn(2, '-');
            let lo: usize = ends.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            let hi: usize = ends.next().and_then(|v| v.parse().ok()).unwrap_or(lo);
            n += hi + 1 - lo.min(hi + 1);
        }
    }
    if n == 0 {
        n = thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
    }
    n
}

fn parse_args() -> Options {
    let args: Vec<String> = env::args().skip(1).collect();
    let mut workers = 0u64;
    let mut reps = 0u64;
    let mut o = Options {
        workers: 0,
        reps: 0,
        quick: false,
        tiny: false,
        json: None,
        fib: true,
        mandel: true,
        fib_n: FIB_N,
    };
    let mut fib_given = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let val = args.get(i + 1);
        let used = match a {
            "-h" | "--help" => {
                print!("{}", USAGE);
                process::exit(0);
            }
            "--quick" => {
                o.quick = true;
                1
            }
            "--tiny" => {
                o.tiny = true;
                1
            }
            "--json" => match val {
                Some(v) => {
                    o.json = Some(v.clone());
                    2
                }
                None => bad_argument(a, true),
            },
            "--workers" => match count(val, 1, MAX_WORKERS) {
                Some(v) => {
                    workers = v;
                    2
                }
                None => bad_argument(a, true),
            },
            "--reps" => match count(val, 1, MAX_REPS) {
                Some(v) => {
                    reps = v;
                    2
                }
                None => bad_argument(a, true),
            },
            "--fib" => match count(val, 2, FIB_MAX_N as u64) {
                Some(v) => {
                    o.fib_n = v as i32;
                    fib_given = true;
                    2
                }
                None => bad_argument(a, true),
            },
            "--kernel" => match val.map(|s| s.as_str()) {
                Some("fib") => {
                    o.mandel = false;
                    o.fib = true;
                    2
                }
                Some("mandel") => {
                    o.fib = false;
                    o.mandel = true;
                    2
                }
                _ => bad_argument(a, true),
            },
            _ => bad_argument(a, false),
        };
        i += used;
    }
    o.workers = if workers != 0 {
        workers as usize
    } else {
        online_cpus()
    };
    o.reps = if reps != 0 {
        reps as usize
    } else if o.tiny {
        1
    } else if o.quick {
        5
    } else {
        9
    };
    if o.tiny && !fib_given {
        o.fib_n = FIB_N_TINY;
    }
    o
}

// ----------------------------------------------------------- measuring

/// Milliseconds since START past which the watchdog ends the process; 0
/// while nothing is measured.
static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);

fn start_watchdog(start: Instant) {
    thread::spawn(move || loop {
        thread::sleep(Duration::from_millis(500));
        let d = DEADLINE_MS.load(Ordering::Relaxed);
        if d != 0 && start.elapsed().as_millis() as u64 > d {
            eprintln!("rayon_forkjoin: a measurement ran past the watchdog, giving up");
            process::exit(1);
        }
    });
}

struct Bench {
    opts: Options,
    start: Instant,
    pool: rayon::ThreadPool,
    fib_expected: i64,
    fib_spawns: u64,
    image: Image,
    checksum: u64,
}

#[derive(Clone, Copy)]
enum Peer {
    FibSerial,
    FibRayon,
    MandelSerial,
    MandelRayon,
}

impl Bench {
    fn fail(&self, what: &str) -> ! {
        eprintln!("rayon_forkjoin: {}", what);
        process::exit(1);
    }

    fn fib_check(&self, who: &str, got: i64) {
        if got != self.fib_expected {
            self.fail(&format!(
                "{} computed fib({}) = {}, expected {}",
                who, self.opts.fib_n, got, self.fib_expected
            ));
        }
    }

    fn mandel_check(&self, who: &str) {
        let sum = mandel_checksum(&self.image);
        if sum != self.checksum {
            self.fail(&format!(
                "{} image checksum {:016x}, serial {:016x}",
                who, sum, self.checksum
            ));
        }
    }

    /// One measurement, in nanoseconds, checked.
    fn run(&mut self, peer: Peer) -> f64 {
        let n = self.opts.fib_n;
        match peer {
            Peer::FibSerial => {
                let t0 = Instant::now();
                let r = fib_serial(n);
                let ns = t0.elapsed().as_nanos() as f64;
                self.fib_check("serial", r);
                ns
            }
            Peer::FibRayon => {
                // The clock runs on the worker that runs the root.
                let (ns, r) = self.pool.install(|| {
                    let t0 = Instant::now();
                    let r = fib_rayon(n);
                    (t0.elapsed().as_nanos() as f64, r)
                });
                self.fib_check("rayon", r);
                ns
            }
            Peer::MandelSerial => {
                mandel_poison(&mut self.image);
                let t0 = Instant::now();
                mandel_serial(&mut self.image);
                let ns = t0.elapsed().as_nanos() as f64;
                self.mandel_check("serial");
                ns
            }
            Peer::MandelRayon => {
                mandel_poison(&mut self.image);
                let t0 = Instant::now();
                let image = &mut self.image;
                self.pool.install(|| mandel_rayon(image));
                let ns = t0.elapsed().as_nanos() as f64;
                self.mandel_check("rayon");
                ns
            }
        }
    }

    fn measure(&mut self, peer: Peer) -> f64 {
        thread::sleep(SETTLE);
        let now = self.start.elapsed().as_millis() as u64;
        DEADLINE_MS.store(now + WATCHDOG_S * 1000, Ordering::Relaxed);
        let ns = self.run(peer);
        DEADLINE_MS.store(0, Ordering::Relaxed);
        ns
    }
}

// -------------------------------------------------------------- report

/// p-th percentile, interpolated as bench/stats.c does.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = p / 100.0 * (n - 1) as f64;
    let lo = rank as usize;
    if lo + 1 >= n {
        return sorted[n - 1];
    }
    sorted[lo] + (rank - lo as f64) * (sorted[lo + 1] - sorted[lo])
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    percentile(&s, 50.0)
}

fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{}", v)
    } else {
        "null".to_string()
    }
}

fn string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// "key": {"median", "min", "p25", "p75", "max", "samples"}, as
/// json_write_sample() writes it.
fn sample(key: &str, v: &[f64]) -> String {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let samples: Vec<String> = v.iter().map(|&x| number(x)).collect();
    format!(
        "\"{}\": {{\"median\": {}, \"min\": {}, \"p25\": {}, \"p75\": {}, \"max\": {}, \"samples\": [{}]}}",
        key,
        number(percentile(&s, 50.0)),
        number(s[0]),
        number(percentile(&s, 25.0)),
        number(percentile(&s, 75.0)),
        number(s[s.len() - 1]),
        samples.join(", ")
    )
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.splitn(2, ':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

struct Row {
    key: &'static str,
    family: &'static str,
    threads: usize,
    how: &'static str,
    ns: Vec<f64>,
}

fn peer_json(row: &Row, extra: &str) -> String {
    format!(
        "    {{\"peer\": {}, \"family\": {}, \"threads\": {}, \"how\": {}, \"measured\": true,\n     {}{}}}",
        string(row.key),
        string(row.family),
        row.threads,
        string(row.how),
        sample("elapsed_ns", &row.ns),
        extra
    )
}

fn report(b: &Bench, fib: &[Row], mandel: &[Row]) -> String {
    let o = &b.opts;
    let mut j = String::new();
    j.push_str(&format!(
        "{{\"benchmark\": \"rayon_forkjoin\",\n \"machine\": {{\"cores\": {}, \"usable_cores\": {}, \"cpu_model\": {}}},\n",
        online_cpus(),
        thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        string(&cpu_model())
    ));
    j.push_str(&format!(
        " \"rayon_version\": {}, \"rustc_version\": {},\n",
        string(env!("FORKJOIN_RAYON_VERSION")),
        string(env!("FORKJOIN_RUSTC_VERSION"))
    ));
    j.push_str(&format!(
        " \"parameters\": {{\"workers\": {}, \"reps\": {}, \"quick\": {}, \"tiny\": {}, \"settle_ns\": {},\n",
        o.workers,
        o.reps,
        o.quick,
        o.tiny,
        SETTLE.as_nanos()
    ));
    j.push_str(&format!(
        "  \"fib\": {{\"n\": {}, \"value\": {}, \"spawns\": {}}},\n",
        o.fib_n, b.fib_expected, b.fib_spawns
    ));
    j.push_str(&format!(
        "  \"mandelbrot\": {{\"width\": {}, \"height\": {}, \"max_iter\": {}, \"checksum\": {}}},\n",
        b.image.width,
        b.image.height,
        b.image.max_iter,
        if o.mandel {
            format!("\"{:016x}\"", b.checksum)
        } else {
            "null".to_string()
        }
    ));
    j.push_str(&format!(
        "  \"threads\": {{\"rayon\": {}}}}},\n",
        b.pool.current_num_threads()
    ));
    let rows: Vec<String> = fib
        .iter()
        .map(|r| {
            let per: Vec<f64> = r.ns.iter().map(|&ns| ns / b.fib_spawns as f64).collect();
            peer_json(r, &format!(",\n     {}", sample("ns_per_spawn", &per)))
        })
        .collect();
    j.push_str(&format!(" \"fib\": [\n{}\n ],\n", rows.join(",\n")));
    let serial = mandel
        .iter()
        .find(|r| r.family == "serial")
        .map(|r| median(&r.ns));
    let rows: Vec<String> = mandel
        .iter()
        .map(|r| {
            let speedup = serial.map(|s| s / median(&r.ns)).unwrap_or(f64::NAN);
            peer_json(r, &format!(",\n     \"speedup\": {}", number(speedup)))
        })
        .collect();
    j.push_str(&format!(
        " \"mandelbrot\": [\n{}\n ]\n}}\n",
        rows.join(",\n")
    ));
    j
}

// ---------------------------------------------------------------- main

fn main() {
    let opts = parse_args();
    let start = Instant::now();
    start_watchdog(start);
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(opts.workers)
        .build()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rayon_forkjoin: ThreadPoolBuilder: {}", e);
            process::exit(1);
        }
    };
    let (fib_expected, fib_spawns) = fib_count(opts.fib_n);
    let side = if opts.quick || opts.tiny {
        MANDEL_SIDE_QUICK
    } else {
        MANDEL_SIDE
    };
    let mut image = Image {
        width: side,
        height: side,
        max_iter: MANDEL_MAX_ITER,
        pixels: Vec::new(),
    };
    let mut checksum = 0;
    if opts.mandel {
        image.pixels = vec![0u16; side * side];
        mandel_serial(&mut image); // the reference image
        checksum = mandel_checksum(&image);
    }
    let threads = pool.current_num_threads();
    let mut b = Bench {
        opts,
        start,
        pool,
        fib_expected,
        fib_spawns,
        image,
        checksum,
    };

    let mut fib = vec![
        Row {
            key: "serial_rust",
            family: "serial",
            threads: 1,
            how: "plain recursion on the calling thread, in Rust",
            ns: Vec::new(),
        },
        Row {
            key: "rayon",
            family: "rayon",
            threads,
            how: "rayon::join recursion, root run by ThreadPool::install",
            ns: Vec::new(),
        },
    ];
    let mut mandel = vec![
        Row {
            key: "serial_rust",
            family: "serial",
            threads: 1,
            how: "one loop over the rows, in Rust",
            ns: Vec::new(),
        },
        Row {
            key: "rayon",
            family: "rayon",
            threads,
            how: "par_chunks_mut(width).enumerate() in ThreadPool::install",
            ns: Vec::new(),
        },
    ];
    let fib_peers = [Peer::FibSerial, Peer::FibRayon];
    let mandel_peers = [Peer::MandelSerial, Peer::MandelRayon];
    let mut kernels: Vec<(&[Peer], &mut Vec<Row>)> = Vec::new();
    if b.opts.fib {
        kernels.push((&fib_peers, &mut fib));
    }
    if b.opts.mandel {
        kernels.push((&mandel_peers, &mut mandel));
    }

    // A first run of everything: starts the threads, faults pages in.
    for (peers, _) in kernels.iter() {
        for &p in peers.iter() {
            b.measure(p);
        }
    }
    for rep in 0..b.opts.reps {
        eprintln!("rayon_forkjoin: rep {} of {}", rep + 1, b.opts.reps);
        for (peers, rows) in kernels.iter_mut() {
            // Rotate the order so no peer always runs right after another.
            for i in 0..peers.len() {
                let k = (rep + i) % peers.len();
                let ns = b.measure(peers[k]);
                rows[k].ns.push(ns);
            }
        }
    }
    drop(kernels);

    let fib_rows: &[Row] = if b.opts.fib { &fib } else { &[] };
    let mandel_rows: &[Row] = if b.opts.mandel { &mandel } else { &[] };
    let text = report(&b, fib_rows, mandel_rows);
    let written = match &b.opts.json {
        Some(path) => fs::write(path, text.as_bytes()).map_err(|e| (path.clone(), e)),
        None => io::stdout()
            .write_all(text.as_bytes())
            .and_then(|_| io::stdout().flush())
            .map_err(|e| ("stdout".to_string(), e)),
    };
    if let Err((path, e)) = written {
        eprintln!("rayon_forkjoin: {}: {}", path, e);
        process::exit(1);
    }
}
