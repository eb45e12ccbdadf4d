#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The comparison demo: installs what is missing, builds the benchmarks (not
# the test suites), runs bench/tandem-bench (tandem against every peer) and
# leaves the tables, the JSON and the plots in results/.
#   scripts/demo.sh [OPTIONS]   options of tandem-bench (--quick, the
#                               default; --full; --only WORKLOAD; ...)
#   scripts/demo.sh --help
# Environment: TANDEM_BUILD_DIR (default build-demo), TANDEM_RESULTS
# (default results).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${TANDEM_BUILD_DIR:-build-demo}
results=${TANDEM_RESULTS:-results}

for arg in "$@"; do
  case "$arg" in
    -h|--help)
      cat <<EOF
usage: scripts/demo.sh [OPTIONS]
Installs what is missing (Debian), builds the benchmarks in $build/ (the
Release build; no test suites), runs bench/tandem-bench with OPTIONS and
writes its tables, JSON and plots to $results/.
Environment: TANDEM_BUILD_DIR (build tree, default build-demo),
TANDEM_RESULTS (output folder, default results).

OPTIONS are tandem-bench's:
EOF
      python3 bench/tandem-bench --help | sed -n '/^options:/,$p'
      exit 0
      ;;
  esac
done

# --full compares with the other runtimes too (Go, Rust, Node): their
# toolchains come with --peers; quick mode leaves them out.
deps=--bench
peers=
for arg in "$@"; do
  if [ "$arg" = "--full" ]; then
    deps=--peers
    peers=bench_server_peers # Go, Node, and Rust's Tokio and Rayon
  fi
done
bash scripts/install-deps.sh "$deps"

# Only what the demo runs: the benchmarks and the servers bench/server
# starts (the examples); no tests, no docs.  The build's output goes to a
# log, shown only if it fails.
mkdir -p "$build"
log=$build/demo-build.log
echo "demo: building the benchmarks in $build/ (log: $log)"
# bench/server's driver, load, exists only with libhttp-parser-dev.
if ! { cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release \
         -DTANDEM_BUILD_TESTS=OFF -DTANDEM_BUILD_DOCS=OFF \
         -DTANDEM_BUILD_BENCH=ON -DTANDEM_BUILD_EXAMPLES=ON &&
       known=$(cmake --build "$build" --target help) &&
       targets="roundtrip forkjoin" &&
       for t in $peers; do
         if grep -Eq "(^|[. ])$t(:|\$)" <<<"$known"; then
           targets="$targets $t"
         fi
       done &&
       { ! grep -Eq '(^|[. ])load(:|$)' <<<"$known" ||
         targets="$targets load"; } &&
       cmake --build "$build" -j"$(nproc)" --target $targets; } >"$log" 2>&1
then
  tail -n 30 "$log" >&2
  echo "demo: the build failed (all of it in $log)" >&2
  exit 1
fi

mkdir -p "$results"
rc=0
python3 bench/tandem-bench --build-dir "$build" \
  --json "$results/tandem-bench.json" --plot "$results" "$@" |
  tee "$results/tandem-bench.txt" || rc=$?

abs=$(cd "$results" && pwd)
cat <<EOF

demo: the results are in $abs/
  tandem-bench.txt    the tables and the summary above
  tandem-bench.json   every figure, the machine and the versions
  index.html          every plot on one page: open it in a browser,
                      e.g. xdg-open $abs/index.html
                      (or file://$abs/index.html)
  *.png, *.svg        each plot alone (*.gp, *.dat: what gnuplot drew)
EOF
exit "$rc"
