#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# compute_server's /metrics against the real Prometheus tools, under /fib
# load: `promtool check metrics` finds nothing to say about it, and a real
# Prometheus server that scrapes it every second sees tandem_jobs_total
# rise and computes a p99 of the job wait from the histogram's buckets.
# Exit 77 (skipped) when promtool or prometheus is not installed
# (scripts/install-deps.sh installs them).
#   usage: check_metrics.sh COMPUTE_SERVER
set -euo pipefail
server=$1
for tool in promtool prometheus curl python3; do
  if ! command -v "$tool" >/dev/null; then
    echo "check_metrics: SKIP: no $tool (Debian package prometheus;" \
      "scripts/install-deps.sh installs it)"
    exit 77
  fi
done

dir=$(mktemp -d)
server_pid=
pids=() # the load and Prometheus
stop_load() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  pids=()
}
cleanup() {
  stop_load
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

fail() {
  echo "check_metrics: $*" >&2
  exit 1
}

# A port nobody listens on now (Prometheus takes no port 0).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The server, on any free port.
"$server" --port 0 --workers 2 --quiet >"$dir/server.out" &
server_pid=$!
for _ in $(seq 100); do
  line=$(head -n 1 "$dir/server.out" 2>/dev/null || true)
  [ -n "$line" ] && break
  sleep 0.1
done
[ -n "$line" ] || fail "the server did not start"
port=${line##*:}
url="http://127.0.0.1:$port"

# Load: two clients asking for /fib/27 (a few ms of work) back to back.
for _ in 1 2; do
  (while :; do curl -s --max-time 5 -o /dev/null "$url/fib/27" || true; done) &
  pids+=($!)
done
sleep 1

# promtool: exit 0 and not a word of lint.
curl -sS --max-time 10 "$url/metrics" >"$dir/metrics.txt"
if ! promtool check metrics <"$dir/metrics.txt" >"$dir/lint" 2>&1 ||
  [ -s "$dir/lint" ]; then
  cat "$dir/lint" >&2
  fail "promtool check metrics is not clean on $url/metrics"
fi
# What promtool does not look at: each histogram's buckets are cumulative
# (never fewer at a larger bound) and +Inf equals _count.
python3 - "$dir/metrics.txt" <<'EOF' || fail "bad histogram in /metrics"
import sys
names = ["tandem_job_wait_seconds", "tandem_job_run_seconds",
         "tandem_loop_lag_seconds"]
samples = {}
for line in open(sys.argv[1]):
    if not line.startswith("#") and line.strip():
        series, value = line.rsplit(" ", 1)
        samples[series] = float(value)
for n in names:
    les = sorted((float(s.split('"')[1]), v) for s, v in samples.items()
                 if s.startswith(n + "_bucket{"))
    counts = [v for _, v in les]
    if len(les) < 2 or counts != sorted(counts):
        sys.exit("%s: buckets not cumulative: %s" % (n, les))
    if les[-1][0] != float("inf") or counts[-1] != samples.get(n + "_count"):
        sys.exit("%s: +Inf is not _count" % n)
EOF

# A real Prometheus, scraping the server every second.
pport=$(free_port)
cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tandem
    static_configs:
      - targets: ['127.0.0.1:$port']
EOF
prometheus --config.file="$dir/prometheus.yml" \
  --storage.tsdb.path="$dir/tsdb" \
  --web.listen-address="127.0.0.1:$pport" \
  --log.level=warn >"$dir/prometheus.log" 2>&1 &
pids+=($!)
papi="http://127.0.0.1:$pport/api/v1/query"

# The value of an instant query's first sample; "empty" if it has none or
# Prometheus does not answer yet.
query() {
  curl -sS --max-time 5 --data-urlencode "query=$1" "$papi" 2>/dev/null |
    python3 -c 'import json, sys
d = json.load(sys.stdin)
r = d["data"]["result"] if d["status"] == "success" else []
print(r[0]["value"][1] if r else "empty")' 2>/dev/null || echo empty
}

# Rising: tandem_jobs_total grows between two queries a few scrapes apart,
# and increase() over 10 s agrees.
deadline=$((SECONDS + 30))
first=empty now=empty rise=empty p99=empty
while [ "$first" = empty ]; do
  [ $SECONDS -lt $deadline ] || {
    cat "$dir/prometheus.log" >&2
    fail "Prometheus never scraped the server"
  }
  sleep 1
  first=$(query tandem_jobs_total)
done
while :; do
  [ $SECONDS -lt $deadline ] ||
    fail "tandem_jobs_total went $first -> $now (increase $rise), p99 wait $p99"
  sleep 1
  now=$(query tandem_jobs_total)
  rise=$(query 'increase(tandem_jobs_total[10s])')
  p99=$(query 'histogram_quantile(0.99, rate(tandem_job_wait_seconds_bucket[5s]))')
  if python3 -c 'import math, sys
a, b, r, q = sys.argv[1:]
ok = float(b) > float(a) and r != "empty" and float(r) > 0
# Below the last finite bound (2^37 ns): histogram_quantile answers that
# bound when the buckets put the p99 in +Inf (non-cumulative ones do).
ok = ok and q != "empty" and math.isfinite(float(q)) and 0 < float(q) < 137
sys.exit(0 if ok else 1)' "$first" "$now" "$rise" "$p99"; then
    break
  fi
done
# The load stops, then the server exits 0 on SIGTERM: its rate timer
# closed, so uv_loop_close() found nothing open.
stop_load
kill -TERM "$server_pid"
rc=0
wait "$server_pid" || rc=$?
server_pid=
[ $rc -eq 0 ] || fail "the server exited $rc after SIGTERM"
echo "check_metrics: promtool clean; Prometheus saw tandem_jobs_total go" \
  "$first -> $now (increase over 10 s: $rise), p99 wait $p99 s"
