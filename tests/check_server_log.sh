#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# compute_server's log on stderr: a start line (address, mode, workers,
# metrics on or off, limits, version), a line for a 4xx answer, a line on
# SIGTERM and one with the totals; nothing at all with --quiet.  Stdout
# keeps its one line, "listening on HOST:PORT".
#   usage: check_server_log.sh COMPUTE_SERVER
set -euo pipefail
server=$1
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

run() { # run NAME [OPTIONS]: one server, one 404, then SIGTERM
  local name=$1 port line
  shift
  "$server" --port 0 --workers 1 "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
  pid=$!
  for _ in $(seq 100); do
    line=$(head -n 1 "$dir/$name.out" 2>/dev/null || true)
    [ -n "$line" ] && break
    sleep 0.1
  done
  [ -n "$line" ] || { echo "check_server_log: $name did not start" >&2; exit 1; }
  port=${line##*:}
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf 'GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&3
  cat <&3 >/dev/null
  exec 3<&-
  kill -TERM "$pid"
  wait "$pid"
}

expect() { # expect FILE PATTERN WHAT
  if ! grep -Eq "$2" "$1"; then
    echo "check_server_log: no $3 in $1:" >&2
    cat "$1" >&2
    exit 1
  fi
}

run log
expect "$dir/log.out" '^listening on 127\.0\.0\.1:[0-9]+$' "listening line"
[ "$(wc -l <"$dir/log.out")" = 1 ] || { echo "more on stdout" >&2; exit 1; }
expect "$dir/log.err" 'tandem [0-9]+\.[0-9]+\.[0-9]+, listening on 127\.0\.0\.1:[0-9]+, mode hybrid, 1 worker at nice \+5, metrics on; limits:' "start line"
expect "$dir/log.err" ' 404 Not Found: GET /nope from 127\.0\.0\.1:' "404 line"
expect "$dir/log.err" 'SIGTERM: stopping' "SIGTERM line"
expect "$dir/log.err" 'stopped after .* 1 requests, 1 answered 4xx and 0 5xx' "totals"

run nometrics --no-metrics
expect "$dir/nometrics.err" 'mode hybrid, 1 worker at nice \+5, metrics off; limits:' "metrics off in the start line"

run quiet --quiet
expect "$dir/quiet.out" '^listening on ' "listening line"
# The chaos build (src/chaos.h) names its seed on stderr: not the server's.
sed -i '/^tandem chaos: /d' "$dir/quiet.err"
if [ -s "$dir/quiet.err" ]; then
  echo "check_server_log: --quiet still logged:" >&2
  cat "$dir/quiet.err" >&2
  exit 1
fi
echo "check_server_log: start, 404, SIGTERM and totals lines; metrics on/off; --quiet silent"
