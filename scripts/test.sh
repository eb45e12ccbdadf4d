#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs what is missing, builds tandem and runs the whole test suite.
#   scripts/test.sh                     normal build (build/)
#   scripts/test.sh --sanitize thread   ThreadSanitizer build (build-tsan/)
#   scripts/test.sh --sanitize address  AddressSanitizer+UBSan (build-asan/)
set -euo pipefail
cd "$(dirname "$0")/.."

san=""
if [ "${1:-}" = "--sanitize" ]; then
  san="${2:?--sanitize needs thread or address}"
fi
case "$san" in
  "") dir=build ;;
  thread) dir=build-tsan ;;
  address) dir=build-asan ;;
  *) echo "test.sh: unknown sanitizer '$san'" >&2; exit 2 ;;
esac

# The normal build also builds the benchmarks, for the comparison demo's
# smoke test; sanitizer builds leave them (and their peers) out.
if [ -z "$san" ]; then
  bash scripts/install-deps.sh --bench
  bench=ON
else
  bash scripts/install-deps.sh
  bench=OFF
fi
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTANDEM_SANITIZE="$san" -DTANDEM_BUILD_BENCH="$bench" >/dev/null
cmake --build "$dir" -j"$(nproc)"
# Sanitizer reports fail the run: TSan and ASan exit non-zero on a report,
# halt_on_error stops at the first, and Check counts that test as an error.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
export ASAN_OPTIONS="detect_leaks=1 halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"
cd "$dir"
ctest --output-on-failure --timeout 900
