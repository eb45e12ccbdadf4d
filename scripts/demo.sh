#!/usr/bin/env bash
# Installs what is missing, builds tandem and runs its main job: the
# comparison of tandem against its peers.  Extra arguments go to the
# benchmark (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --bench
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
exec python3 bench/tandem-bench --build-dir build "$@"
