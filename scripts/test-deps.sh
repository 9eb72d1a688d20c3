#!/usr/bin/env bash
# Tests scripts/deps.sh's libclang detection against fake root directories:
# libclang-cpp alone is not libclang; libclang-<N>.so.1 or libclang.so is.
# And its Node.js check against fake node binaries: 20 or newer, with npm.
set -u
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# expect DESCRIPTION WANT_EXIT FILE...: a fake root holding FILEs.
expect() {
  local what=$1 want=$2 root got
  shift 2
  root="$tmp/$passed-$failed"
  mkdir -p "$root"
  for f in "$@"; do mkdir -p "$root/$(dirname "$f")"; : >"$root/$f"; done
  LIBCLANG_PATH= "$here/deps.sh" --check --root "$root" libclang >/dev/null
  got=$?
  if [ "$got" = "$want" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $what: exit $got, expected $want"
  fi
}

expect "empty root" 1
expect "libclang-cpp only (the fresh image)" 1 usr/lib/llvm-14/lib/libclang-cpp.so.14
expect "libclang-cpp in the multiarch dir" 1 usr/lib/x86_64-linux-gnu/libclang-cpp.so.14
expect "libclang-14.so.1 (libclang1-14)" 0 usr/lib/x86_64-linux-gnu/libclang-14.so.1
expect "libclang.so (libclang-dev)" 0 usr/lib/llvm-14/lib/libclang.so
expect "libclang.so.1 in llvm's dir" 0 usr/lib/llvm-16/lib/libclang.so.1
expect "static archives only" 1 usr/lib/llvm-14/lib/libclangBasic.a

# Unknown names and options are usage errors, not "missing".
"$here/deps.sh" --check nosuchthing >/dev/null 2>&1
[ $? = 2 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: unknown name"; }

# prometheus (and its promtool) is a known name: present or missing, never a usage error.
"$here/deps.sh" --check prometheus >/dev/null 2>&1
case $? in 0|1) passed=$((passed + 1)) ;; *) failed=$((failed + 1)); echo "FAIL: prometheus unknown" ;; esac

# node: a node older than 20 (or without npm) is missing, 20 or newer is present.
# fake_node VERSION [npm]: a PATH with a node printing vVERSION (and an npm).
fake_node() {
  local bin="$tmp/node-$1-${2:-nonpm}"
  mkdir -p "$bin"
  printf '#!/bin/sh\necho v%s\n' "$1" >"$bin/node"
  chmod +x "$bin/node"
  if [ -n "${2:-}" ]; then printf '#!/bin/sh\n' >"$bin/npm"; chmod +x "$bin/npm"; fi
  echo "$bin"
}
expect_node() {
  local what=$1 want=$2 path=$3 got
  PATH="$path:/usr/bin:/bin" "$here/deps.sh" --check node >/dev/null 2>&1
  got=$?
  if [ "$got" = "$want" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what: exit $got, expected $want"; fi
}
expect_node "node 18 with npm" 1 "$(fake_node 18.19.0 npm)"
expect_node "node 20 with npm" 0 "$(fake_node 20.20.2 npm)"
expect_node "node 22 with npm" 0 "$(fake_node 22.1.0 npm)"

echo "deps: $passed passed, $failed failed"
[ "$failed" = 0 ]
