"""Leader election on hblock: exactly one instance works, and a standby takes
over the moment the active one dies.

The usual recipe with plain commands: SETNX a key, INCR it as a heartbeat,
standbys poll and take over with GETSET after several unchanged polls. Here
the server does it:

  - wait for the lease with one blocking HBLOCK.ACQUIRE ... WAIT 0 (a standby
    keeps its place in the queue and is granted the lock at once when the
    holder releases it or its lease runs out);
  - beat every interval from a thread; when a beat says NOTHELD, stop working
    at once (the lease is gone, someone else may hold it);
  - pass the fencing token to whatever you write, and release at exit.

    python leader.py --redis redis://127.0.0.1:6379 --key jobs:leader
"""

import argparse
import os
import signal
import socket
import sys
import threading
import uuid

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default=os.environ.get("HBLOCK_REDIS_URL", "redis://127.0.0.1:6379"))
    parser.add_argument("--key", default="jobs:leader")
    parser.add_argument("--owner", default=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    parser.add_argument("--interval", type=int, default=1000, help="heartbeat interval, ms")
    parser.add_argument("--misses", type=int, default=3, help="missed beats allowed")
    args = parser.parse_args()

    stop = threading.Event()
    acquired = threading.Event()

    def on_signal(signum, _frame):
        if not acquired.is_set():
            # Still waiting: leave now (closing the connection leaves the queue).
            raise SystemExit(128 + signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    # protocol=2: plain replies; no retries: a lost ACQUIRE reply must not be hidden.
    waiting = redis.Redis.from_url(args.redis, protocol=2, retry=Retry(NoBackoff(), 0))
    print(f"waiting for {args.key} as {args.owner}", flush=True)
    token = None
    while token is None:
        # WAIT 0 blocks until granted; a signal ends the process (and the wait).
        token = waiting.execute_command(
            "HBLOCK.ACQUIRE", args.key, args.owner,
            "INTERVAL", args.interval, "MISSES", args.misses, "WAIT", 0)
    acquired.set()
    print(f"acquired {args.key} token={token}", flush=True)

    lost = threading.Event()

    def heartbeat() -> None:
        beats = redis.Redis.from_url(args.redis, protocol=2, socket_timeout=args.interval / 1000)
        while not stop.wait(args.interval / 1000):
            try:
                beats.execute_command("HBLOCK.BEAT", args.key, args.owner, token)
            except redis.ResponseError as err:
                if str(err).startswith("NOTHELD"):
                    print(f"lost {args.key}: {err}", flush=True)
                    lost.set()
                    stop.set()
                    return
                print(f"beat failed: {err}", flush=True)
            except redis.RedisError as err:
                print(f"beat failed: {err}", flush=True)

    threading.Thread(target=heartbeat, daemon=True).start()

    while not stop.wait(0.1):
        # One unit of the real work goes here, carrying the fencing token.
        print(f"working token={token}", flush=True)

    if lost.is_set():
        return 4
    released = waiting.execute_command("HBLOCK.RELEASE", args.key, args.owner, token)
    print(f"released {args.key} token={token}: {released}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
