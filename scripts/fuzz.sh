#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer targets (tests/fuzz) in build-fuzz/ with clang and
# runs each for SECONDS, one after the other; exits non-zero on any finding
# (crash, leak, timeout, sanitizer report).
#   scripts/fuzz.sh [SECONDS]                 SECONDS per target [60]
#   TANDEM_FUZZ_SECONDS=3600 scripts/fuzz.sh  a long run (overrides SECONDS)
# Each target fuzzes a corpus of its own under build-fuzz/fuzz/corpus/,
# seeded from tests/fuzz/corpus/ and kept from run to run (the repository
# is never written); findings land in build-fuzz/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${TANDEM_FUZZ_SECONDS:-${1:-60}}"
case "$secs" in
  '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a number, not '$secs'" >&2
                 exit 2 ;;
esac
dir=build-fuzz
work="$dir/fuzz"
start=$(date +%s)

bash scripts/install-deps.sh # clang and its fuzzer runtime among them
CC=clang cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_FUZZ=ON \
  -DTANDEM_BUILD_TESTS=OFF -DTANDEM_BUILD_BENCH=OFF \
  -DTANDEM_BUILD_EXAMPLES=OFF -DTANDEM_BUILD_DOCS=OFF >/dev/null
cmake --build "$dir" -j2 --target fuzz_http fuzz_runtime

# Reports stop the process: a leak, an ASan or UBSan error is a finding.
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

failed=0
summary=""
# What a sanitizer or libFuzzer prints when it found something.
report='runtime error:|ERROR: [A-Za-z]+Sanitizer|ERROR: libFuzzer|SUMMARY: '

# run_target NAME [libFuzzer flags...]
run_target() {
  local name=$1 rc=0 execs rate cov files
  shift
  local corpus="$work/corpus/$name" art="$work/artifacts/$name"
  local log="$work/$name.log"

  mkdir -p "$corpus" "$art"
  for f in tests/fuzz/corpus/"$name"/*; do # the seeds, once
    [ -e "$corpus/${f##*/}" ] || cp "$f" "$corpus/"
  done
  touch "$work/.started-$name" # to tell this run's findings from older ones
  echo "== fuzz_$name: $secs s (log: $log)"
  "$dir/tests/fuzz/fuzz_$name" -max_total_time="$secs" -max_len=4096 \
    -print_final_stats=1 -artifact_prefix="$art/" "$@" "$corpus" \
    >"$log" 2>&1 || rc=$?
  execs=$(awk '/stat::number_of_executed_units/ {print $2}' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ {print $2}' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  files=$(find "$corpus" -type f | wc -l)
  if [ "$rc" -ne 0 ] || grep -qE "$report" "$log"; then
    failed=1
    summary+="fuzz_$name: FINDING (exit $rc) after ${execs:-?} executions"
    summary+=", see $log"$'\n'
    echo "fuzz_$name: FINDING (exit $rc); the report:" >&2
    grep -E -A25 "$report|fuzz_[a-z]+: |ALARM" "$log" | head -60 >&2
    find "$art" -type f -newer "$work/.started-$name" |
      sed "s|^|  reproduce: $dir/tests/fuzz/fuzz_$name |" >&2
  else
    summary+="fuzz_$name: ${execs:-?} executions in $secs s (${rate:-?}/s)"
    summary+=", $cov, corpus $files inputs"$'\n'
  fi
  return 0
}

run_target http -dict=tests/fuzz/http.dict -timeout=40
run_target runtime -timeout=20

echo
printf '%s' "$summary"
echo "fuzz.sh: $(($(date +%s) - start)) s in all"
exit "$failed"
