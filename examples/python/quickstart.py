# examples/python/quickstart.py: work only while this process holds the lease.
import os, time
import redis, hblock  # pip install ./python

client = redis.Redis.from_url(os.environ.get("HBLOCK_REDIS_URL", "redis://127.0.0.1:6379"))

try:
    # Waits in the server's queue, beats from a thread, releases on the way out.
    with hblock.Lease(client, "jobs:leader", owner="worker", interval_ms=1000, misses=3) as lease:
        print(f"{lease.owner} leads with fencing token {lease.token}", flush=True)
        # Lost (NOTHELD), or Redis unreachable until the lease may have ended:
        # stop. A unit of work must end before lease.valid_until.
        while not lease.lost and time.monotonic() + 0.1 < lease.valid_until:
            try:
                # Applied only while this lease is the live one (HBLOCK.FENCED):
                # a paused process that wakes after a takeover gets hblock.NotHeld.
                lease.fenced("SET", "jobs:leader:last", f"{lease.owner} token={lease.token}")
                print(f"working, writes carry token {lease.token}", flush=True)
            except hblock.NotHeld:
                break  # lease.lost is now true
            except redis.ConnectionError:
                pass  # not written; the lease says when to stop
            time.sleep(0.1)
        print(f"stopped: {lease.lost_reason or 'the lease may end'}", flush=True)
except KeyboardInterrupt:
    print("released", flush=True)  # the with block released the lease
