#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// server.js: bench/server's Node peer, the way a Node programmer keeps CPU
// work off the event loop: the `http` module on the main thread, /fib on a
// piscina pool of worker threads.
//
//   node server.js [--host ADDR] [--port PORT] [--workers N]
//   node server.js --help
//
//   GET /ping    "pong\n", from the event loop
//   GET /fib/N   naive recursive Fibonacci, 0 <= N <= 45 (fib_worker.js, on
//                the pool), "%d\n"; another N gets 400
//                "usage: /fib/N with 0 <= N <= 45\n"
//
// The bodies are byte for byte those of examples/compute_server.  The pool
// has exactly --workers threads (0: one per CPU), started at once and kept
// (minThreads = maxThreads), so the driver sees every thread from the
// first request.  Everything runs in this one process: the workers are
// threads, so /proc/PID/task counts their CPU and VmRSS their memory.
//
// Stdout carries one line, "listening on HOST:PORT", as compute_server's.
// SIGINT or SIGTERM: stop accepting, let running requests finish (5 s at
// most), stop the pool, exit 0.  A usage error exits 2.
//
// piscina comes from npm (package.json, package-lock.json beside this
// file); the build copies these files into BUILD/bench/peers/node and runs
// `npm ci` there (bench/CMakeLists.txt, target bench_peer_node).
'use strict';

const http = require('http');
const os = require('os');
const path = require('path');

const FIB_MAX = 45; // compute_server's FIB_MAX
const STOP_TIMEOUT_MS = 5000;

const usage = `usage: server.js [--host ADDR] [--port PORT] [--workers N]
  --host ADDR    address to listen on [127.0.0.1]
  --port PORT    port, 0 = any free one [8080]
  --workers N    piscina worker threads, 0 = one per CPU [0]
  --help         this text
Endpoints: /ping, /fib/N (N <= 45).  bench/server's Node peer.
SIGINT or SIGTERM: finish running requests, close, exit 0.
`;

// "--name value" pairs, as compute_server takes them.  Returns the
// options, or 'help', or an error message.
function parseArgs(args) {
  const o = { host: '127.0.0.1', port: 8080, workers: 0 };
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i];
    if (name === '--help' || name === '-h') return 'help';
    if (i + 1 >= args.length) return `${name} needs a value`;
    const value = args[i + 1];
    if (name === '--host') {
      o.host = value;
      continue;
    }
    if (name !== '--port' && name !== '--workers')
      return `unknown option ${name}`;
    if (!/^[0-9]{1,5}$/.test(value) || Number(value) > 65535)
      return `${name} ${value}: not a number in range`;
    o[name.slice(2)] = Number(value);
  }
  return o;
}

// routes.c's parse_bound: 1 to 19 decimal digits, at most max; -1 if not.
function parseBound(s, max) {
  if (s.length === 0 || s.length > 19 || !/^[0-9]+$/.test(s)) return -1;
  const v = Number(s); // inexact above 2^53, but far above max then
  return v <= max ? v : -1;
}

function text(res, status, body, headers) {
  res.writeHead(status, Object.assign({
    'Content-Type': 'text/plain',
    'Content-Length': Buffer.byteLength(body),
  }, headers));
  res.end(body);
}

function getOnly(req, res) {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  text(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
  return false;
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o === 'help') {
    process.stdout.write(usage);
    return;
  }
  if (typeof o === 'string') {
    process.stderr.write(`server.js: ${o}\n${usage}`);
    process.exit(2);
  }
  // After the arguments, so that --help works without `npm ci`.
  const Piscina = require('piscina');
  const workers = o.workers > 0 ? o.workers
    : (os.availableParallelism ? os.availableParallelism() : os.cpus().length);
  const pool = new Piscina({
    filename: path.join(__dirname, 'fib_worker.js'),
    minThreads: workers,
    maxThreads: workers,
    idleTimeout: Infinity,
  });

  // One handler, as compute_server's route_request: paths taken as sent
  // (no normalizing), the query cut off.
  const server = http.createServer((req, res) => {
    const p = req.url.split('?')[0];
    if (p === '/ping') {
      if (getOnly(req, res)) text(res, 200, 'pong\n');
    } else if (p.startsWith('/fib/')) {
      if (!getOnly(req, res)) return;
      const n = parseBound(p.slice(5), FIB_MAX);
      if (n < 0) {
        text(res, 400, `usage: /fib/N with 0 <= N <= ${FIB_MAX}\n`);
        return;
      }
      pool.run(n).then((v) => text(res, 200, `${v}\n`), (err) => {
        text(res, 500, `job failed: ${err.message}\n`);
      });
    } else {
      text(res, 404, 'not found\n');
    }
  });

  server.on('error', (err) => {
    process.stderr.write(`server.js: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(o.port, o.host, () => {
    const a = server.address();
    process.stdout.write(`listening on ${a.address}:${a.port}\n`);
  });

  let stopping = false;
  const stop = () => {
    if (stopping) process.exit(1); // a second signal: at once
    stopping = true;
    // close() stops accepting and ends the idle keep-alive connections;
    // the busy ones end after their answer, or when the timer cuts them.
    const cut = setTimeout(() => server.closeAllConnections(),
      STOP_TIMEOUT_MS);
    cut.unref();
    server.close(() => {
      pool.destroy().then(() => process.exit(0), () => process.exit(1));
    });
    server.closeIdleConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
