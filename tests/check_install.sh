#!/usr/bin/env bash
# Installs the build tree into a scratch prefix, then builds a consumer
# with find_package(tandem) and another with pkg-config, and runs both.
#   usage: check_install.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR
set -euo pipefail
build=$1 src=$2 scratch=$3
rm -rf "$scratch"
mkdir -p "$scratch"
cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
cmake -S "$src/tests/consumer" -B "$scratch/cmake" \
  -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/cmake" >/dev/null
LD_LIBRARY_PATH="$scratch/prefix/lib:$scratch/prefix/lib/x86_64-linux-gnu" \
  "$scratch/cmake/consumer"
libdir=$(ls -d "$scratch"/prefix/lib*/pkgconfig | head -n 1)
PKG_CONFIG_PATH="$libdir" cc -o "$scratch/pc-consumer" \
  "$src/tests/consumer/consumer.c" \
  $(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs tandem)
LD_LIBRARY_PATH="$(dirname "$libdir")" "$scratch/pc-consumer"
# The static library with its private dependencies, as pkg-config --static
# describes them.
cc -o "$scratch/pc-static" "$src/tests/consumer/consumer.c" \
  $(PKG_CONFIG_PATH="$libdir" pkg-config --cflags tandem) \
  "$(dirname "$libdir")/libtandem.a" \
  $(PKG_CONFIG_PATH="$libdir" pkg-config --static --libs-only-l tandem | \
    sed 's/-ltandem//')
"$scratch/pc-static"
echo "check_install: find_package, pkg-config and static consumers ran"
