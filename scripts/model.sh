#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Model-checks tandem's concurrency protocols with spin, exhaustively
# (tests/model/README.md says what each model covers).
#   scripts/model.sh          the CI set: every model passes, and every
#                             variant with a known defect fails
#   scripts/model.sh --deep   also the larger configurations (several GB of
#                             memory, a few minutes more)
#   scripts/model.sh --keep   keep the scratch folder (pan sources, trails)
# Each run: spin -a, compile pan (no bitstate hashing: every state is
# stored), run it, and read its report.  A model that should pass must show
# "errors: 0" and a complete search; a variant that should fail must show an
# error, whose first lines are quoted.  Exits non-zero on any surprise.
# Environment: SPIN (default spin), CC (default cc), TMPDIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models=$root/tests/model
spin=${SPIN:-spin}
cc=${CC:-cc}

deep=0
keep=0
for arg in "$@"; do
  case "$arg" in
    --deep) deep=1 ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "model.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

if ! command -v "$spin" >/dev/null 2>&1; then
  echo "model.sh: spin not found: install the Debian package 'spin'" \
       "(scripts/install-deps.sh installs it)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tandem-model.XXXXXX")
cleanup() {
  if [ "$keep" = 1 ] || [ "${surprises:-0}" != 0 ]; then
    echo "model.sh: scratch folder kept: $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

surprises=0
runs=0
printf '%-8s %-44s %-6s %-9s %11s %12s %6s %9s %7s\n' \
  model variant expect result stored transitions depth 'mem(MB)' 'time(s)'

# check MODEL EXPECT MODE HASH "SPIN -D FLAGS" [LABEL]
#   EXPECT pass|fail; MODE safety (assertions, invalid end states) or ltl
#   (the model's ltl formula under weak fairness, assertions too); HASH is
#   pan's -w (log2 of the hash table's slots).
check() {
  local model=$1 expect=$2 mode=$3 hash=$4 defs=$5
  local label=${6:-$mode ${defs:-default}}
  local dir out ccflags panflags result errors stored trans depth mem secs
  local t0 t1
  runs=$((runs + 1))
  dir=$work/$runs-$model
  mkdir -p "$dir"
  cp "$models/$model.pml" "$dir/"
  if [ "$mode" = safety ]; then
    ccflags="-DSAFETY -DNOCLAIM"
    panflags=""
  else
    ccflags="-DNFAIR=3"
    panflags="-a -f"
  fi
  # shellcheck disable=SC2086 # the flag lists are meant to split
  (cd "$dir" && "$spin" $defs -a "$model.pml" >spin.log 2>&1 &&
     "$cc" -O2 -w $ccflags -o pan pan.c >cc.log 2>&1) || {
    echo "model.sh: $model ($label): spin -a or the compile failed:" >&2
    cat "$dir/spin.log" "$dir/cc.log" >&2 || true
    surprises=$((surprises + 1))
    return
  }
  t0=$(date +%s.%N)
  # -m: depth bound (never reached: checked below); -w: hash table size.
  # shellcheck disable=SC2086
  (cd "$dir" && ./pan -m1000000 -w"$hash" $panflags >pan.log 2>&1) || true
  t1=$(date +%s.%N)
  out=$dir/pan.log
  errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out" | tail -1)
  stored=$(awk '/states, stored/ {print $1; exit}' "$out")
  trans=$(awk '/transitions \(= / {print $1; exit}' "$out")
  depth=$(sed -n 's/.*depth reached \([0-9][0-9]*\),.*/\1/p' "$out" | tail -1)
  mem=$(awk '/total actual memory usage/ {print $1; exit}' "$out")
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  if [ -z "$errors" ]; then
    result=broken
  elif [ "$errors" = 0 ]; then
    if grep -qE 'search depth too small|Search not completed|out of memory' \
         "$out"; then
      result=partial
    else
      result=passed
    fi
  else
    result=failed
  fi
  printf '%-8s %-44s %-6s %-9s %11s %12s %6s %9s %7s\n' "$model" "$label" \
    "$expect" "$result" "${stored:--}" "${trans:--}" "${depth:--}" \
    "${mem:--}" "$secs"
  if [ "$result" = failed ]; then
    # The error pan found, and the failed assertion replayed from its trail.
    grep -E '^pan:[0-9]+: ' "$out" | head -2 | sed 's/^/    /'
    # shellcheck disable=SC2086
    (cd "$dir" && "$spin" $defs -t "$model.pml" 2>&1 |
       grep -E 'text of failed assertion|trail ends after' | head -2 |
       sed 's/^/    /') || true
  fi
  if { [ "$expect" = pass ] && [ "$result" != passed ]; } ||
     { [ "$expect" = fail ] && [ "$result" != failed ]; }; then
    echo "    ^ SURPRISE: expected to $expect (pan's report: $out)"
    grep -E 'error|Warning' "$out" | head -5 | sed 's/^/    /' || true
    surprises=$((surprises + 1))
  fi
}

# park.pml: the sleep protocol (no lost wake-up).
check park pass safety 26 "-DNW=2 -DNS=2" "safety NW=2 NS=2"
check park pass safety 24 "-DNW=3 -DNS=1" "safety NW=3 NS=1"
check park pass ltl 24 "-DNW=3 -DNS=1" "ltl all_taken, weak fairness, NW=3 NS=1"
check park pass safety 24 "-DNW=2 -DNS=1 -DPER=2 -DTSO" \
  "x86-TSO NW=2 NS=1 PER=2"
check park pass safety 24 "-DNW=2 -DNS=1 -DPER=2 -DTSO -DNO_FENCE" \
  "x86-TSO, no fence after the push"
check park pass safety 24 "-DNW=2 -DNS=1 -DPER=2 -DTSO -DPLAIN_PUBLISH" \
  "x86-TSO, plain-store publish, fence"
check park fail safety 24 \
  "-DNW=2 -DNS=2 -DUNDO_NO_RECHECK" "notify undo without a re-check (old pool.c)"
check park fail safety 24 \
  "-DNW=2 -DNS=1 -DPER=2 -DTSO -DPLAIN_PUBLISH -DNO_FENCE" \
  "x86-TSO, plain-store publish, no fence"
# ring.pml: take versus cancel, and the close scan.
check ring pass safety 25 "" "safety NP=2 PER=2 NC=1 C=2"
check ring pass safety 24 "-DPER=1 -DNC=2" "safety NP=2 PER=1 NC=2 C=2"
check ring fail safety 24 "-DF1_OLD_SCAN" "scan reads enq first (F1)"
# request.pml: the request state machine.
check request pass safety 25 "" "safety C=2 NCANCEL=2 REQUEUES=2"
check request pass safety 24 "-DCANCEL_LATE" "safety, cancels after the first"
check request fail safety 24 "-DF2_OLD_ORDER" "QUEUED before req->tandem (F2)"
check request fail safety 24 "-DF2_OLD_ORDER -DCANCEL_LATE" \
  "F2, a requeue: the previous handle"

if [ "$deep" = 1 ]; then
  check park pass safety 27 "-DNW=3 -DNS=1 -DPER=2" "safety NW=3 NS=1 PER=2"
  check park pass ltl 26 "-DNW=2 -DNS=2" "ltl all_taken, weak fairness, NW=2 NS=2"
  check park pass safety 26 "-DNW=2 -DNS=2 -DTSO -DNO_FENCE" \
    "x86-TSO NW=2 NS=2, no fence after the push"
  check ring pass safety 26 "-DNP=3 -DPER=1 -DNC=2" "safety NP=3 PER=1 NC=2 C=2"
  check ring pass safety 26 "-DC=3" "safety NP=2 PER=2 NC=1 C=3"
  check request pass safety 26 "-DC=3 -DREQUEUES=3" \
    "safety C=3 NCANCEL=2 REQUEUES=3"
fi

if [ "$surprises" != 0 ]; then
  echo "model.sh: $surprises of $runs runs did not end as expected" >&2
  exit 1
fi
echo "model.sh: all $runs runs ended as expected"
