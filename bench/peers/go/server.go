// SPDX-License-Identifier: MIT

// Command server is bench/server's Go peer: the routes the benchmark uses,
// served the way a Go programmer would serve them, with net/http alone.
//
//	server [--host ADDR] [--port PORT] [--workers N]
//	server --help
//
//	GET /ping    "pong\n"
//	GET /fib/N   naive recursive Fibonacci, 0 <= N <= 45, "%d\n"; another
//	             N gets 400 "usage: /fib/N with 0 <= N <= 45\n"
//
// The bodies are byte for byte those of examples/compute_server (routes.c),
// and fib is its recursion on the same type (uint64), minus the look at a
// cancel flag every 10^5 calls.  fib runs in the handler's goroutine, as
// net/http programs do: Go's scheduler preempts it (asynchronous
// preemption, every 10 ms) so that the goroutines that read /ping get a
// turn.  --workers N sets GOMAXPROCS (0: one per CPU).
//
// Stdout carries one line, "listening on HOST:PORT", as compute_server's.
// SIGINT or SIGTERM: stop accepting, let running requests finish (5 s at
// most), exit 0.  A usage error exits 2.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	fibMax      = 45 // compute_server's FIB_MAX
	stopTimeout = 5 * time.Second
)

const usage = `usage: server [--host ADDR] [--port PORT] [--workers N]
  --host ADDR    address to listen on [127.0.0.1]
  --port PORT    port, 0 = any free one [8080]
  --workers N    GOMAXPROCS, 0 = one per CPU [0]
  --help         this text
Endpoints: /ping, /fib/N (N <= 45).  bench/server's Go peer.
SIGINT or SIGTERM: finish running requests, close, exit 0.
`

func fib(n uint32) uint64 {
	if n < 2 {
		return uint64(n)
	}
	return fib(n-1) + fib(n-2)
}

// parseBound is routes.c's parse_bound: 1 to 19 decimal digits, at most max.
func parseBound(s string, max uint64) (uint64, bool) {
	var v uint64
	if len(s) == 0 || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		v = v*10 + uint64(s[i]-'0')
	}
	return v, v <= max
}

func text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func getOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	text(w, http.StatusMethodNotAllowed, "method not allowed\n")
	return false
}

// route answers as compute_server's route_request does for these paths.
// One handler for all: ServeMux would clean paths and redirect, which
// compute_server does not.
func route(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case path == "/ping":
		if getOnly(w, r) {
			text(w, http.StatusOK, "pong\n")
		}
	case strings.HasPrefix(path, "/fib/"):
		if !getOnly(w, r) {
			return
		}
		n, ok := parseBound(path[len("/fib/"):], fibMax)
		if !ok {
			text(w, http.StatusBadRequest,
				fmt.Sprintf("usage: /fib/N with 0 <= N <= %d\n", fibMax))
			return
		}
		text(w, http.StatusOK, strconv.FormatUint(fib(uint32(n)), 10)+"\n")
	default:
		text(w, http.StatusNotFound, "not found\n")
	}
}

type options struct {
	host          string
	port, workers uint64
}

// parseArgs takes "--name value" pairs, as compute_server does.  It
// returns (true, nil) for --help.
func parseArgs(args []string, o *options) (bool, error) {
	for i := 0; i < len(args); i += 2 {
		name := args[i]
		if name == "--help" || name == "-h" {
			return true, nil
		}
		if i+1 >= len(args) {
			return false, fmt.Errorf("%s needs a value", name)
		}
		value := args[i+1]
		var err error
		switch name {
		case "--host":
			o.host = value
		case "--port":
			o.port, err = strconv.ParseUint(value, 10, 16)
		case "--workers":
			o.workers, err = strconv.ParseUint(value, 10, 16)
		default:
			return false, fmt.Errorf("unknown option %s", name)
		}
		if err != nil {
			return false, fmt.Errorf("%s %s: not a number in range", name,
				value)
		}
	}
	return false, nil
}

func main() {
	o := options{host: "127.0.0.1", port: 8080}
	help, err := parseArgs(os.Args[1:], &o)
	if help {
		fmt.Print(usage)
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n%s", err, usage)
		os.Exit(2)
	}
	if o.workers > 0 {
		runtime.GOMAXPROCS(int(o.workers))
	}

	ln, err := net.Listen("tcp", net.JoinHostPort(o.host,
		strconv.FormatUint(o.port, 10)))
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		os.Exit(1)
	}
	addr := ln.Addr().(*net.TCPAddr)
	fmt.Printf("listening on %s:%d\n", addr.IP.String(), addr.Port)

	srv := &http.Server{Handler: http.HandlerFunc(route)}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT,
		syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err = <-served: // Serve failed before any signal
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		os.Exit(1)
	case <-ctx.Done():
	}
	stop() // a second signal ends the process at once
	sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close() // a request ran too long: cut it
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		os.Exit(1)
	}
}
