"""Leader election on hblock: exactly one instance works, and a standby takes
over the moment the active one dies.

The usual recipe with plain commands: SETNX a key, INCR it as a heartbeat,
standbys poll and take over with GETSET after several unchanged polls. Here
the server does it, and the `hblock` package (pip install ./python) does the
client's part: wait in the server's queue, beat from a thread under the fault
policy, stop when the lease is lost, release at exit.

    python leader.py --redis redis://127.0.0.1:6379 --key jobs:leader --owner web-1
"""

import argparse
import logging
import os
import signal
import sys
import threading

import redis

import hblock


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default=os.environ.get("HBLOCK_REDIS_URL", "redis://127.0.0.1:6379"))
    parser.add_argument("--key", default="jobs:leader")
    parser.add_argument("--owner", default=None, help="owner name (a unique part is appended)")
    parser.add_argument("--interval", type=int, default=1000, help="heartbeat interval, ms")
    parser.add_argument("--misses", type=int, default=3, help="missed beats allowed")
    args = parser.parse_args()
    # The package logs acquired / released / lost / failing / recovered.
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")

    stop = threading.Event()
    working = threading.Event()

    def on_signal(signum, _frame):
        if not working.is_set():
            # Still waiting: leave now (closing the connection leaves the queue).
            raise SystemExit(128 + signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    def work(lease: hblock.Lease) -> int:
        working.set()
        try:
            while not stop.wait(0.1):
                lease.check()  # LeaseLost: hblock.run waits for the lease again
                # One unit of the real work goes here; its writes are fenced:
                # refused (hblock.NotHeld, a LeaseLost) once another instance holds the lock.
                lease.fenced("SET", f"{args.key}:last", f"{lease.owner} token={lease.token}")
                print(f"working token={lease.token}", flush=True)
            return 0
        finally:
            working.clear()

    client = redis.Redis.from_url(args.redis)
    print(f"waiting for {args.key}", flush=True)
    return hblock.run(client, args.key, work, owner=args.owner,
                      interval_ms=args.interval, misses=args.misses)


if __name__ == "__main__":
    sys.exit(main())
