#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Unix manners of every program: `PROG --help` prints its usage on stdout,
# nothing on stderr, and exits 0; `PROG --no-such-option` prints its usage
# on stderr, nothing on stdout, and exits 2.  Neither may start any work,
# so each must answer within a few seconds.
#   usage: check_usage.sh PROGRAM...
set -u
fails=0
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

fail() {
  echo "check_usage: $prog $1" >&2
  sed 's/^/  stdout: /' "$out" >&2
  sed 's/^/  stderr: /' "$err" >&2
  fails=$((fails + 1))
}

for prog in "$@"; do
  timeout 20 "$prog" --help >"$out" 2>"$err"
  rc=$?
  if [ $rc -ne 0 ]; then
    fail "--help: exit $rc, not 0"
  elif ! grep -qi usage "$out"; then
    fail "--help: no usage on stdout"
  elif [ -s "$err" ]; then
    fail "--help: wrote on stderr"
  fi

  timeout 20 "$prog" --no-such-option >"$out" 2>"$err"
  rc=$?
  if [ $rc -ne 2 ]; then
    fail "--no-such-option: exit $rc, not 2"
  elif ! grep -qi usage "$err"; then
    fail "--no-such-option: no usage on stderr"
  elif [ -s "$out" ]; then
    fail "--no-such-option: wrote on stdout"
  fi
done
if [ $fails -ne 0 ]; then
  echo "check_usage: $fails failures" >&2
  exit 1
fi
echo "check_usage: $# programs: --help exits 0 on stdout, a bad option 2"
