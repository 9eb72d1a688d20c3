# examples/python/quickstart.py: work only while this process holds the lease.
import os, socket, threading, time, uuid
import redis

URL = os.environ.get("HBLOCK_REDIS_URL", "redis://127.0.0.1:6379")
KEY, INTERVAL, MISSES = "jobs:leader", 1.0, 3  # the lease: 3 missed 1 s beats
OWNER = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"

# One connection waits in the queue (no timeout); one beats (short timeouts).
waiter = redis.Redis.from_url(URL)
beater = redis.Redis.from_url(URL, socket_timeout=INTERVAL, socket_connect_timeout=INTERVAL)
token = waiter.execute_command("HBLOCK.ACQUIRE", KEY, OWNER, "INTERVAL",
                               int(INTERVAL * 1000), "MISSES", MISSES, "WAIT", 0)
valid_until = 0.0  # by this process's clock; 0 = lost


def beat():
    global valid_until
    sent = time.monotonic()
    beater.execute_command("HBLOCK.BEAT", KEY, OWNER, token)
    # The server got the beat after `sent`: the lease lasts at least this long.
    valid_until = sent + INTERVAL * MISSES


def heartbeat():
    global valid_until
    while valid_until and not stop.wait(INTERVAL):
        try:
            beat()
        except redis.ResponseError as err:  # NOTHELD: the lease is gone
            print("lost the lease:", err, flush=True)
            valid_until = 0.0
        except redis.RedisError as err:  # Redis unreachable: retry next interval
            print("beat failed:", err, flush=True)


stop = threading.Event()
beat()  # count the lease from a beat we timed (a blocking grant's time is unknown)
threading.Thread(target=heartbeat, daemon=True).start()
print(f"{OWNER} leads with fencing token {token}", flush=True)
try:
    while time.monotonic() + 0.1 < valid_until:  # a unit of work must end in time
        print(f"working, writes carry token {token}", flush=True)
        time.sleep(0.1)
    print("stopped: the lease is lost or may have ended", flush=True)
except KeyboardInterrupt:
    stop.set()
    waiter.execute_command("HBLOCK.RELEASE", KEY, OWNER, token)
    print("released", flush=True)
