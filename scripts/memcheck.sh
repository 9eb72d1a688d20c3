#!/usr/bin/env bash
# make memcheck: redis-server (master and replica) under valgrind with the
# module loaded, driven through every command, blocking (waiters and watchers,
# each way they end), timers, persistence and replication path. Fails on any invalid read/write, and on memory
# definitely lost in a stack that involves the module.
# Loopback only; every process it starts is stopped on exit.
set -euo pipefail

MODULE=${HBLOCK_MODULE:-$(pwd)/target/release/libhblock.so}
[ -f "$MODULE" ] || { echo "memcheck: $MODULE missing: make build first"; exit 2; }
command -v valgrind >/dev/null || { echo "memcheck: valgrind missing: apt-get install -y valgrind"; exit 2; }

DIR=$(mktemp -d /tmp/hblock-memcheck-XXXXXX)
SUPP="$(cd "$(dirname "$0")" && pwd)/valgrind.supp"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
M=$(free_port); R=$(free_port)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  pkill -9 -P $$ redis-cli 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "memcheck: logs kept in $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT

start() { # name port extra-args...
  local name=$1 port=$2; shift 2
  mkdir -p "$DIR/$name"
  valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --soname-synonyms=somalloc=*jemalloc* --num-callers=30 \
    --suppressions="$SUPP" --log-file="$DIR/$name.vg" \
    redis-server --port "$port" --bind 127.0.0.1 --dir "$DIR/$name" --save "" \
      --enable-debug-command yes --loadmodule "$MODULE" "$@" >"$DIR/$name.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "memcheck: $name did not start"; cat "$DIR/$name.out"; exit 1
}
cli() { redis-cli -p "$M" "$@" >/dev/null 2>&1 || true; }
bg_wait() { (redis-cli -p "$M" "$@" >/dev/null 2>&1 &) ; sleep 0.5; }

start master "$M" --appendonly yes --notify-keyspace-events Ed
start replica "$R" --replicaof 127.0.0.1 "$M"
sleep 2
echo "memcheck: driving every path (master :$M, replica :$R)"

# Commands, replies and errors.
cli HBLOCK.ACQUIRE a alice INTERVAL 100000
cli HBLOCK.ACQUIRE a bob
cli HBLOCK.ACQUIRE a alice MISSES 5
cli HBLOCK.BEAT a alice 1; cli HBLOCK.BEAT a bob 1; cli HBLOCK.BEAT a alice 0; cli HBLOCK.BEAT nokey x 1
cli HBLOCK.INFO a; cli HBLOCK.INFO nokey; cli HBLOCK.ACQUIRE a "" ; cli HBLOCK.ACQUIRE a o TTL 5
cli HBLOCK.ACQUIRE long "$(head -c 1000 /dev/zero | tr '\0' x)"
cli SET str v; cli HBLOCK.ACQUIRE str o; cli HBLOCK.APPLY a 1 m 9 1000 3 0 0 0 0
cli HBLOCK.RELEASE a alice 1; cli HBLOCK.RELEASE a alice 1
# Blocking: hand-off at release, WAIT timeout, CLIENT UNBLOCK, CLIENT KILL, disconnect.
cli HBLOCK.ACQUIRE b holder INTERVAL 100000
bg_wait HBLOCK.ACQUIRE b w1 WAIT 0
cli HBLOCK.RELEASE b holder 1
cli HBLOCK.ACQUIRE b late WAIT 100
bg_wait HBLOCK.ACQUIRE b w2 WAIT 0
id=$(redis-cli -p "$M" client list | awk '/cmd=hblock.acquire/ {sub("id=","",$1); print $1; exit}')
[ -n "$id" ] && cli CLIENT UNBLOCK "$id"
bg_wait HBLOCK.ACQUIRE b w3 WAIT 0
id=$(redis-cli -p "$M" client list | awk '/cmd=hblock.acquire/ {sub("id=","",$1); print $1; exit}')
[ -n "$id" ] && cli CLIENT KILL ID "$id"
bg_wait HBLOCK.ACQUIRE b w4 WAIT 0
pkill -f "redis-cli -p $M HBLOCK.ACQUIRE b w4" || true
# A waiter whose connection closes (redis-cli stopped by timeout).
(timeout 1 redis-cli -p "$M" HBLOCK.ACQUIRE b w8 WAIT 0 >/dev/null 2>&1 &) ; sleep 1.5
# WATCH: woken by a change, TIMEOUT (module timer), CLIENT UNBLOCK plain and
# ERROR, CLIENT KILL, a closed connection, and woken in the same packet as a
# CLIENT UNBLOCK of it (the command filter).
watcher_id() { redis-cli -p "$M" client list | awk '/cmd=hblock.watch/ {sub("id=","",$1); print $1; exit}'; }
tok=$(redis-cli -p "$M" HBLOCK.ACQUIRE wk holder INTERVAL 100000)
cli HBLOCK.WATCH wk SEEN "$tok" TIMEOUT 20
bg_wait HBLOCK.WATCH wk SEEN "$tok" TIMEOUT 60000
cli HBLOCK.RELEASE wk holder "$tok"
for how in "" ERROR KILL; do
  bg_wait HBLOCK.WATCH wk SEEN 0
  id=$(watcher_id)
  if [ -z "$id" ]; then :; elif [ "$how" = KILL ]; then cli CLIENT KILL ID "$id"; else cli CLIENT UNBLOCK "$id" $how; fi
done
(timeout 1 redis-cli -p "$M" HBLOCK.WATCH wk SEEN 0 >/dev/null 2>&1 &) ; sleep 1.5
bg_wait HBLOCK.WATCH wk SEEN 0
id=$(watcher_id)
resp() { printf '*%d\r\n' $#; for a in "$@"; do printf '$%d\r\n%s\r\n' ${#a} "$a"; done; }
if [ -n "$id" ]; then
  exec 3<>"/dev/tcp/127.0.0.1/$M"
  # One write (the x keeps $(...) from eating the last \r\n).
  packet=$(resp HBLOCK.ACQUIRE wk holder2 INTERVAL 100000; resp CLIENT UNBLOCK "$id"; printf x)
  printf '%s' "${packet%x}" >&3
  sleep 0.5; exec 3>&-
fi
# Timers: expiry with and without a waiter; DEL, overwrite and FLUSHALL with waiters.
cli HBLOCK.ACQUIRE c dead INTERVAL 50 MISSES 1
bg_wait HBLOCK.ACQUIRE c standby WAIT 0
cli HBLOCK.ACQUIRE d once INTERVAL 50 MISSES 1
sleep 0.5
bg_wait HBLOCK.ACQUIRE c w5 WAIT 0
cli DEL c; sleep 0.2
bg_wait HBLOCK.ACQUIRE c w6 WAIT 0
cli SET c text; sleep 0.2; cli DEL c
# Moving keys: RENAME, COPY, MOVE; MULTI and Lua.
cli HBLOCK.ACQUIRE e x INTERVAL 80 MISSES 1
cli RENAME e e2; cli COPY e2 e3; cli MOVE e3 1
cli EVAL "return redis.call('HBLOCK.ACQUIRE', KEYS[1], 'lua', 'WAIT', '0')" 1 e2
# Fenced writes and checks: passed-through replies, refusals, key positions, ACL.
cli HBLOCK.ACQUIRE g o INTERVAL 100000
cli HBLOCK.FENCED g o 1 SET gdata v; cli HBLOCK.FENCED g o 1 HSET gh f v; cli HBLOCK.FENCED g o 1 INCR gh
cli HBLOCK.FENCED g o 9 SET gdata w; cli HBLOCK.FENCED g o 1 BLPOP q 0; cli HBLOCK.FENCED g o 1 NOSUCH
cli HBLOCK.FENCED g o 1 MULTI; cli HBLOCK.FENCED g o 1 HBLOCK.BEAT g o 1; cli HBLOCK.FENCED g o 1 GET
cli COMMAND GETKEYS HBLOCK.FENCED g o 1 MSET k1 v k2 v; cli HBLOCK.CHECK g o 1; cli HBLOCK.CHECK g x 1
cli ACL SETUSER noset on nopass '~*' '+@all' -set
redis-cli -p "$M" --user noset --pass x --no-auth-warning HBLOCK.FENCED g o 1 SET gdata x >/dev/null 2>&1 || true
cli HBLOCK.FLOOR 5; cli DEL g; cli HBLOCK.ACQUIRE g o
# Persistence and replication paths.
cli COPY a a_copy; cli MEMORY USAGE a; cli DEBUG DIGEST-VALUE a; cli DEBUG DIGEST
cli SAVE; cli BGREWRITEAOF; sleep 2; cli DEBUG RELOAD; sleep 1
cli CONFIG SET aof-use-rdb-preamble no; cli BGREWRITEAOF; sleep 2; cli DEBUG LOADAOF
redis-cli -p "$R" REPLICAOF NO ONE >/dev/null; redis-cli -p "$R" REPLICAOF 127.0.0.1 "$M" >/dev/null; sleep 3
redis-cli -p "$R" HBLOCK.INFO a >/dev/null; redis-cli -p "$R" HBLOCK.ACQUIRE a z >/dev/null 2>&1 || true
# A master with a waiter and a watcher becomes a replica, then master again.
tok=$(redis-cli -p "$M" HBLOCK.ACQUIRE f holder INTERVAL 100000)
bg_wait HBLOCK.ACQUIRE f w7 WAIT 0
bg_wait HBLOCK.WATCH f SEEN "$tok"
cli REPLICAOF 127.0.0.1 "$R"; sleep 2; cli REPLICAOF NO ONE; sleep 1
cli FLUSHALL
sleep 1

echo "memcheck: paths exercised on the master: $(redis-cli -p "$M" info hblock | grep -E "^hblock_" | tr -d "\r" | tr "\n" " ")"
echo "memcheck: shutting down"
redis-cli -p "$R" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
redis-cli -p "$M" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
for p in "${PIDS[@]}"; do
  for _ in $(seq 1 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
PIDS=()

status=0
failed=0
for name in master replica; do
  log="$DIR/$name.vg"
  invalid=$(grep -cE "Invalid (read|write|free)|Mismatched free|uninitialised" "$log" || true)
  lost=$(grep -E "definitely lost:" "$log" | tail -1 | sed 's/.*definitely lost: //')
  # Loss records whose stack involves the module.
  module_lost=$(awk '/definitely lost in loss record/ {rec=1; buf=""} rec {buf=buf"\n"$0} /^==[0-9]+== $/ && rec {if (buf ~ /hblock/) n++; rec=0} END {print n+0}' "$log")
  echo "memcheck: $name: invalid accesses $invalid, definitely lost (whole server) $lost, loss records in module frames $module_lost"
  if [ "$invalid" != 0 ] || [ "$module_lost" != 0 ]; then
    status=1
    failed=$((failed + 1))
    grep -B3 -A25 -E "Invalid|uninitialised|definitely lost in loss record" "$log" | head -120 || true
  fi
done
echo "memcheck: $((2 - failed)) passed, $failed failed"
exit $status
