#!/usr/bin/env bash
# Finds the system packages the build and the tests need, each by what really
# uses it, and installs the missing ones with apt-get when run as root.
#
#   scripts/deps.sh [--check] [--root DIR] [NAME ...]
#
# NAME: cargo cc libclang redis-server python3-venv valgrind tclsh prometheus
# node (default: all). node is Node.js >= 20 with npm (the node/ package):
# apt's nodejs when missing; an apt that offers only an older one is an
# error saying so. prometheus brings promtool too; it is installed without its
# recommends and without starting its service (the tests start their own on
# a free loopback port; nothing is left listening on :9090).
# --check   only report: print "missing: ..." and exit 1 when something is missing.
# --root    look below DIR instead of / for libraries (used by the tests).
#
# Exit: 0 all present (or installed), 1 something missing, 2 usage.
set -u

root=""
check_only=0
wanted=()
while [ $# -gt 0 ]; do
  case "$1" in
    --check) check_only=1 ;;
    --root) root=${2:?--root needs a directory}; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "deps.sh: unknown option $1" >&2; exit 2 ;;
    *) wanted+=("$1") ;;
  esac
  shift
done
[ ${#wanted[@]} -gt 0 ] || wanted=(cargo cc libclang redis-server python3-venv valgrind tclsh prometheus node)

# The oldest Node.js major version node/ supports.
NODE_MIN=20

# node_major: the major version of the node on PATH (empty when none).
node_major() {
  local v
  v=$(node --version 2>/dev/null) || return 0
  v=${v#v}
  echo "${v%%.*}"
}

has_node() {
  local major
  major=$(node_major)
  [ -n "$major" ] && [ "$major" -ge "$NODE_MIN" ] 2>/dev/null && command -v npm >/dev/null 2>&1
}

# bindgen (through clang-sys) loads libclang.so or libclang-<N>.so*; the
# libclang-cpp library some images ship is a different library and does not do.
has_libclang() {
  local dir f
  if [ -z "$root" ] && [ -n "${LIBCLANG_PATH:-}" ]; then
    for f in "$LIBCLANG_PATH"/libclang.so* "$LIBCLANG_PATH"/libclang-[0-9]*.so*; do
      [ -e "$f" ] && return 0
    done
  fi
  for dir in "$root"/usr/lib/llvm-*/lib "$root"/usr/lib/*-linux-gnu "$root"/usr/lib \
             "$root"/usr/local/lib "$root"/usr/lib64; do
    for f in "$dir"/libclang.so "$dir"/libclang.so.[0-9]* "$dir"/libclang-[0-9]*.so*; do
      [ -e "$f" ] && return 0
    done
  done
  return 1
}

# present NAME: 0 when the dependency is usable.
present() {
  case "$1" in
    cargo) command -v cargo >/dev/null 2>&1 ;;
    cc) command -v cc >/dev/null 2>&1 ;;
    libclang) has_libclang ;;
    redis-server) command -v redis-server >/dev/null 2>&1 ;;
    python3-venv) python3 -c 'import venv, ensurepip' >/dev/null 2>&1 ;;
    valgrind) command -v valgrind >/dev/null 2>&1 ;;
    tclsh) command -v tclsh >/dev/null 2>&1 ;;
    prometheus) command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 ;;
    node) has_node ;;
    *) echo "deps.sh: unknown dependency $1" >&2; exit 2 ;;
  esac
}

# The Debian package that provides NAME.
package_of() {
  case "$1" in
    cc) echo gcc ;;
    libclang) echo libclang-dev ;;
    tclsh) echo tcl ;;
    node) echo nodejs ;;
    *) echo "$1" ;;
  esac
}

missing=()
for name in "${wanted[@]}"; do
  present "$name" || missing+=("$name")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "missing: ${missing[*]}"
[ "$check_only" = 1 ] && exit 1

packages=()
for name in "${missing[@]}"; do
  if [ "$name" = cargo ]; then
    echo "Rust is not installed (no cargo on PATH). Install it with rustup"
    echo "(https://rustup.rs), or: sudo apt-get install -y cargo; then run make again."
    exit 1
  fi
  if [ "$name" = node ] && [ -n "$(node_major)" ] && ! [ "$(node_major)" -ge "$NODE_MIN" ] 2>/dev/null; then
    echo "Node.js $(node --version) is older than $NODE_MIN: node/ needs Node.js >= $NODE_MIN"
    echo "(apt's nodejs, or https://nodejs.org / nodesource); then run make again."
    exit 1
  fi
  packages+=("$(package_of "$name")")
done

if [ "$(id -u)" != 0 ]; then
  echo "Run: sudo apt-get update && sudo apt-get install -y ${packages[*]}"
  exit 1
fi
echo "installing: ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
# prometheus alone: without its recommends (node-exporter, another daemon)
# and with service starts denied while it installs (policy-rc.d, honoured by
# invoke-rc.d and deb-systemd-invoke), unless the system has a policy already.
others=()
with_prometheus=0
for p in "${packages[@]}"; do
  if [ "$p" = prometheus ]; then with_prometheus=1; else others+=("$p"); fi
done
apt-get update -qq || { echo "apt-get update failed"; exit 1; }
if [ ${#others[@]} -gt 0 ]; then
  apt-get install -y -qq "${others[@]}" >/dev/null || {
    echo "apt-get install ${others[*]} failed"; exit 1; }
fi
if [ "$with_prometheus" = 1 ]; then
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  installed=$?
  [ "$own_policy" = 1 ] && rm -f "$policy"
  [ "$installed" = 0 ] || { echo "apt-get install prometheus failed"; exit 1; }
fi
# Debian's own nodejs comes without npm (nodesource's brings it).
if [[ " ${missing[*]} " == *" node "* ]] && [ -n "$(node_major)" ] && ! command -v npm >/dev/null 2>&1; then
  apt-get install -y -qq npm >/dev/null || { echo "apt-get install npm failed"; exit 1; }
fi
if [[ " ${missing[*]} " == *" node "* ]] && ! has_node; then
  echo "apt-get installed Node.js $(node --version 2>/dev/null || echo '(none)'), but node/ needs"
  echo "Node.js >= $NODE_MIN with npm: install a newer one (https://nodejs.org, nodesource) and run make again."
  exit 1
fi
for name in "${missing[@]}"; do
  present "$name" || { echo "still missing after install: $name"; exit 1; }
done
