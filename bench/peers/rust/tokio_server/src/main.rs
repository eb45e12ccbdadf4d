// SPDX-License-Identifier: MIT
//! tokio_server: examples/compute_server's /ping and /fib/N, written the way
//! a Rust user would: a Tokio multi-thread runtime, hyper 0.14's HTTP/1.1
//! server, and the CPU work on `tokio::task::spawn_blocking`.  A peer of
//! bench/server.
//!
//!   tokio_server [--host ADDR] [--port PORT] [--workers N]
//!                [--blocking-threads N] [--quiet]
//!
//! Routes, with compute_server's status lines and byte-identical bodies
//! (text/plain):
//!
//!   GET /ping    200 "pong\n", answered on the runtime's worker
//!   GET /fib/N   200 fib(N) and "\n": compute_server's recursion (u32
//!                argument, u64 result), on a blocking thread; N is 1 to 19
//!                decimal digits and at most 45, else 400
//!                "usage: /fib/N with 0 <= N <= 45\n"
//!   other paths  404 "not found\n"; a method other than GET or HEAD on
//!                /ping or /fib/ is 405 "method not allowed\n"
//!
//! --workers N sets the runtime's worker threads (0: one per CPU, Tokio's
//! default); --blocking-threads caps spawn_blocking's pool (default:
//! Tokio's, 512).  Stdout carries one line, "listening on HOST:PORT",
//! for whoever started it; a start line goes to stderr unless --quiet.
//! SIGINT or SIGTERM: stop accepting, let requests in flight finish,
//! exit 0; a second signal ends it at once.
use std::convert::Infallible;
use std::env;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process;

use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::AddrIncoming;
use hyper::service::{make_service_fn, service_fn};
use hyper::{Body, Method, Request, Response, Server, StatusCode};
use tokio::signal::unix::{signal, SignalKind};

const FIB_MAX: u64 = 45; // compute_server's FIB_MAX
const BACKLOG: u32 = 1024; // compute_server's uv_listen backlog

const USAGE: &str = "\
usage: tokio_server [options]
  --host ADDR             address to listen on [127.0.0.1]
  --port PORT             port, 0 = any free one [8080]
  --workers N             Tokio worker threads, 0 = one per CPU [0]
  --blocking-threads N    most threads of spawn_blocking's pool [512]
  --quiet                 no start line on stderr
  --help                  this text
Endpoints: /ping, /fib/N (on spawn_blocking), as examples/compute_server.
SIGINT or SIGTERM: finish requests in flight, close, exit 0.
";

/// compute_server's fib, without its cancellation check.
fn fib(n: u32) -> u64 {
    if n < 2 {
        return n as u64;
    }
    fib(n - 1) + fib(n - 2)
}

/// The decimal number that ends a path, as compute_server's parse_bound:
/// 1 to 19 digits, at most max.
fn parse_bound(s: &str, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|&v| v <= max)
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

async fn route(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path();
    let fib_arg = path.strip_prefix("/fib/");
    if path != "/ping" && fib_arg.is_none() {
        return Ok(text(StatusCode::NOT_FOUND, "not found\n".into()));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    let n = match fib_arg {
        None => return Ok(text(StatusCode::OK, "pong\n".into())),
        Some(arg) => match parse_bound(arg, FIB_MAX) {
            Some(n) => n as u32,
            None => {
                return Ok(text(
                    StatusCode::BAD_REQUEST,
                    format!("usage: /fib/N with 0 <= N <= {}\n", FIB_MAX),
                ))
            }
        },
    };
    Ok(match tokio::task::spawn_blocking(move || fib(n)).await {
        Ok(v) => text(StatusCode::OK, format!("{}\n", v)),
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n".into()),
    })
}

struct Options {
    host: IpAddr,
    port: u16,
    workers: usize,
    blocking: usize,
    quiet: bool,
}

fn bad_argument(arg: &str) -> ! {
    let known = ["--host", "--port", "--workers", "--blocking-threads"];
    let what = if known.contains(&arg) {
        " (or its value)"
    } else {
        ""
    };
    eprint!("tokio_server: bad argument '{}'{}\n{}", arg, what, USAGE);
    process::exit(2);
}

fn parse_args() -> Options {
    let args: Vec<String> = env::args().skip(1).collect();
    let mut o = Options {
        host: IpAddr::from([127, 0, 0, 1]),
        port: 8080,
        workers: 0,
        blocking: 512,
        quiet: false,
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let val = args.get(i + 1).map(|s| s.as_str()).unwrap_or("");
        let digits = !val.is_empty() && val.bytes().all(|b| b.is_ascii_digit());
        match a {
            "-h" | "--help" => {
                print!("{}", USAGE);
                process::exit(0);
            }
            "--quiet" => {
                o.quiet = true;
                i += 1;
                continue;
            }
            "--host" => o.host = val.parse().unwrap_or_else(|_| bad_argument(a)),
            "--port" if digits => o.port = val.parse().unwrap_or_else(|_| bad_argument(a)),
            "--workers" if digits => {
                o.workers = val
                    .parse()
                    .ok()
                    .filter(|&n| n <= 1024)
                    .unwrap_or_else(|| bad_argument(a))
            }
            "--blocking-threads" if digits => {
                o.blocking = val
                    .parse()
                    .ok()
                    .filter(|&n| n >= 1 && n <= 4096)
                    .unwrap_or_else(|| bad_argument(a))
            }
            _ => bad_argument(a),
        }
        i += 2;
    }
    o
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        process::exit(1);
    });
}

async fn serve(o: Options) -> Result<(), Box<dyn std::error::Error>> {
    let addr = SocketAddr::new(o.host, o.port);
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?; // as libuv does
    socket.bind(addr)?;
    let mut incoming = AddrIncoming::from_listener(socket.listen(BACKLOG)?)?;
    incoming.set_nodelay(true); // as compute_server does
    let local = incoming.local_addr();
    println!("listening on {}:{}", local.ip(), local.port());
    std::io::stdout().flush()?;

    let make = make_service_fn(|_conn| async { Ok::<_, Infallible>(service_fn(route)) });
    Server::builder(incoming)
        .http1_only(true)
        .serve(make)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

fn main() {
    let mut o = parse_args();
    if o.workers == 0 {
        o.workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.workers)
        .max_blocking_threads(o.blocking)
        .enable_all()
        .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio_server: runtime: {}", e);
            process::exit(1);
        }
    };
    if !o.quiet {
        eprintln!(
            "tokio_server: tokio + hyper 0.14, {} worker threads, at most {} blocking threads",
            o.workers, o.blocking
        );
    }
    let result = rt.block_on(serve(o));
    // Requests in flight have been answered: nothing is left to wait for.
    rt.shutdown_background();
    if let Err(e) = result {
        eprintln!("tokio_server: {}", e);
        process::exit(1);
    }
}
