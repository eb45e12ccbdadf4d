// SPDX-License-Identifier: MIT
// fib_worker: the /fib job of bench/server's Node peer (server.js), run on
// a piscina worker thread.  The recursion of examples/compute_server's
// routes.c.  JavaScript has no uint64 short of BigInt, which would make
// every addition an allocation; fib(45) = 1134903170 is exact in a Number
// (a double, exact up to 2^53), and V8 keeps the smaller values in
// integer registers, so this is the code a Node programmer would write.
'use strict';

function fib(n) {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

module.exports = (n) => fib(n);
