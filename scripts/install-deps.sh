#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs, from Debian's packages, whatever tandem needs that is missing.
#   scripts/install-deps.sh          what building and testing needs
#   scripts/install-deps.sh --bench  also the benchmark peers and tools
#   scripts/install-deps.sh --peers  also the other runtimes' toolchains
#                                    (Go, Rust with Rayon/Tokio/hyper, Node)
#                                    for tandem-bench --full
# Runs apt-get only when something is missing; needs root for that.
set -euo pipefail

pkgs=(
  gcc libc6-dev make cmake pkg-config # toolchain
  libuv1-dev libck-dev check          # the library and its tests
  libhttp-parser-dev nettle-dev       # the example HTTP server
  curl python3                        # real clients in the tests, bench driver
  doxygen                             # the API reference (docs/), checked in CI
  clang libclang-rt-14-dev            # libFuzzer targets (tests/fuzz)
  spin                                # model check of the protocols (tests/model)
  prometheus                          # promtool and a real scrape of /metrics
  chromium fonts-dejavu-core          # headless test of the /dashboard page
)
if [ "${1:-}" = "--bench" ] || [ "${1:-}" = "--peers" ]; then
  pkgs+=(
    g++ libtbb-dev                    # oneTBB peer (OpenMP comes with gcc)
    wrk                               # HTTP load generator
    gnuplot-nox                       # plots of the comparison demo
  )
fi
if [ "${1:-}" = "--peers" ]; then
  pkgs+=(
    golang-go                         # Go net/http server peer
    cargo rustc librust-rayon-dev     # Rayon fork-join peer (offline build)
    librust-tokio-dev librust-hyper-dev # Tokio + hyper server peer
    nodejs                            # Node http + piscina server peer
  )
  # Debian's nodejs needs its npm package; a nodejs from elsewhere (e.g.
  # NodeSource's) brings npm itself and conflicts with Debian's.
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
