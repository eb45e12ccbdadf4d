#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the build tree into a scratch prefix, then builds and runs what a
# user would, the way the README's "Linking" section says: consumers made
# with find_package(tandem) (shared and static), with pkg-config (shared,
# -std=c11, and static with -static), and the README's example with the
# README's pkg-config line.  Also checks the ABI policy of the package's
# version file (only the same 0.minor is compatible) and that tandem.pc
# passes no flag of ck's to its users.
#   usage: check_install.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR
set -euo pipefail
build=$1 src=$(cd "$2" && pwd) scratch=$3
rm -rf "$scratch"
mkdir -p "$scratch"
cmake --install "$build" --prefix "$scratch/prefix" >/dev/null
libdir=$(dirname "$(ls -d "$scratch"/prefix/lib*/pkgconfig | head -n 1)")
export PKG_CONFIG_PATH="$libdir/pkgconfig"

# CMake: find_package(tandem 0.1), tandem::tandem and tandem::tandem_static,
# and the README's example with the README's CMake lines.
cmake -S "$src/tests/consumer" -B "$scratch/cmake" \
  -DCMAKE_PREFIX_PATH="$scratch/prefix" \
  -DQUICKSTART="$src/examples/quickstart.c" >/dev/null
cmake --build "$scratch/cmake" >/dev/null
LD_LIBRARY_PATH="$libdir" "$scratch/cmake/consumer"
"$scratch/cmake/consumer_static"
LD_LIBRARY_PATH="$libdir" "$scratch/cmake/quickstart" >/dev/null

# The version file: 0.MINOR.x accepts a request for 0.MINOR, not another
# minor (the SONAME differs too: libtandem.so.0.MINOR).
version=$(pkg-config --modversion tandem)
minor=${version#*.} minor=${minor%%.*}
cat >"$scratch/compat.cmake" <<CMAKE
foreach(want 0.${minor} 0.$((minor + 1)))
  set(PACKAGE_FIND_VERSION \${want})
  string(REPLACE "." ";" parts \${want})
  list(GET parts 0 PACKAGE_FIND_VERSION_MAJOR)
  list(GET parts 1 PACKAGE_FIND_VERSION_MINOR)
  set(PACKAGE_FIND_VERSION_PATCH 0)
  set(PACKAGE_FIND_VERSION_COUNT 2)
  set(CMAKE_SIZEOF_VOID_P 8)
  include("$libdir/cmake/tandem/tandemConfigVersion.cmake")
  message("\${want} \${PACKAGE_VERSION_COMPATIBLE}")
endforeach()
CMAKE
compat=$(cmake -P "$scratch/compat.cmake" 2>&1 | tr '\n' ' ')
if [ "$compat" != "0.${minor} TRUE 0.$((minor + 1)) FALSE " ]; then
  echo "check_install: tandemConfigVersion.cmake for $version says:" \
       "$compat (want 0.$minor compatible, 0.$((minor + 1)) not)" >&2
  exit 1
fi
soname=$(objdump -p "$libdir/libtandem.so" | awk '/SONAME/ {print $2}')
if [ "${version%%.*}" = 0 ] && [ "$soname" != "libtandem.so.0.$minor" ]; then
  echo "check_install: SONAME $soname, want libtandem.so.0.$minor" >&2
  exit 1
fi

# tandem.h includes nothing of ck's: none of its flags reach users.
cflags=$(pkg-config --cflags tandem)
case "$cflags" in
  *-D*) echo "check_install: tandem.pc passes defines: $cflags" >&2
        exit 1 ;;
esac

# pkg-config, shared: the README's example with the README's line, and a
# strict C11 build with the define uv.h needs.
cc -o "$scratch/quickstart" "$src/examples/quickstart.c" \
  $(pkg-config --cflags --libs tandem)
LD_LIBRARY_PATH="$libdir" "$scratch/quickstart" >/dev/null
cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Werror -o "$scratch/pc-c11" \
  "$src/tests/consumer/consumer.c" $(pkg-config --cflags --libs tandem)
LD_LIBRARY_PATH="$libdir" "$scratch/pc-c11"

# pkg-config, static: tandem-static names libtandem.a and libuv's archive
# (Debian's libuv_a.a, through libuv-static.pc): a program with no tandem
# or libuv to load, then one fully static (-static).  glibc's warnings
# about getaddrinfo and friends in static programs are expected.
cc -o "$scratch/pc-static-libs" "$src/tests/consumer/consumer.c" \
  $(pkg-config --static --cflags --libs tandem-static)
if ldd "$scratch/pc-static-libs" | grep -E 'libtandem|libuv'; then
  echo "check_install: tandem-static still loads a shared library" >&2
  exit 1
fi
"$scratch/pc-static-libs"
cc -static -o "$scratch/pc-static" "$src/tests/consumer/consumer.c" \
  $(pkg-config --static --cflags --libs tandem-static) 2>"$scratch/ld.log" ||
  { cat "$scratch/ld.log" >&2; exit 1; }
"$scratch/pc-static"
echo "check_install: find_package (shared, static), pkg-config (shared," \
     "c11, tandem-static, -static) consumers ran; $soname"
