#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The randomized-interleaving run: builds build-chaos/ with -DTANDEM_CHAOS=ON
# (every atomic of src/atomic.h may yield or spin first and after: see
# src/chaos.h) and runs the whole test suite there, the soak included.
#   scripts/chaos.sh                              fixed seed, default rate
#   TANDEM_CHAOS_SEED=0x1f TANDEM_CHAOS_RATE=0.05 scripts/chaos.sh
#   TANDEM_SOAK_SECONDS=600 scripts/chaos.sh      a longer soak
# Each test process prints the chaos seed and rate it used; run again with
# the same TANDEM_CHAOS_SEED (and TANDEM_SOAK_SEED for the soak) to replay
# its random choices.  Exits non-zero if any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build-chaos
start=$(date +%s)
bash scripts/install-deps.sh
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_CHAOS=ON \
  -DTANDEM_BUILD_BENCH=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)"
echo "chaos: TANDEM_CHAOS_SEED=${TANDEM_CHAOS_SEED:-default}" \
  "TANDEM_CHAOS_RATE=${TANDEM_CHAOS_RATE:-default}"
status=0
(cd "$dir" && ctest --output-on-failure --timeout 900) || status=$?
echo "chaos: build and tests took $(( $(date +%s) - start )) s"
exit "$status"
