"""hblock.Lease and hblock.run against a real server."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import redis

import hblock
from conftest import eventually


def info(client, key):
    reply = client.execute_command("HBLOCK.INFO", key)
    if reply is None:
        return None
    fields = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2]))
    return {k.decode(): (v.decode() if isinstance(v, bytes) else v) for k, v in fields.items()}


@contextlib.contextmanager
def holder_process(server, script, first_line):
    """A Python process running ``script`` against ``server``, once it printed
    a line starting with ``first_line``; killed on the way out if still running."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(server.port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(first_line)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_two_instances_hand_over_and_release_on_exit(server):
    client = server.client()
    first = hblock.Lease(client, "job", owner="web-1", interval_ms=100)
    token = first.acquire()
    got = {}

    def standby():
        with hblock.Lease(client, "job", owner="web-1", interval_ms=100) as lease:
            got["lease"] = (lease.token, lease.owner)

    t = threading.Thread(target=standby, daemon=True)
    t.start()
    assert eventually(lambda: info(client, "job")["waiters"] == 1), "the standby waits"
    assert first.owner.startswith("web-1/") and len(first.owner) > len("web-1/")
    assert info(client, "job")["owner"] == first.owner
    assert first.release() is True
    t.join(5)
    second_token, second_owner = got["lease"]
    assert second_token > token
    assert second_owner != first.owner, "one owner name, two instances"
    assert info(client, "job")["state"] == "free", "released on exit"
    assert first.lost and first.release() is False


def test_not_acquired_without_blocking_and_after_blocking_timeout(server):
    client = server.client()
    with hblock.Lease(client, "k", interval_ms=60_000):
        with pytest.raises(hblock.NotAcquired):
            hblock.Lease(client, "k", blocking=False).acquire()
        started = time.monotonic()
        with pytest.raises(hblock.NotAcquired):
            hblock.Lease(client, "k", blocking_timeout=0.2).acquire()
        assert time.monotonic() - started >= 0.2
        assert info(client, "k")["waiters"] == 0


def test_redis_stopped_makes_the_lease_lost_before_it_can_end(server):
    client = server.client()
    calls = []
    lease = hblock.Lease(client, "k", interval_ms=100, misses=3, on_lost=calls.append)
    lease.acquire()
    assert eventually(lambda: info(client, "k")["beats"] >= 2)
    server.stop()
    stopped = time.monotonic()
    # Lost no later than the last beat that got through + 300 ms: before the
    # lease could end on the server.
    valid_until = lease.valid_until
    assert valid_until is not None and valid_until < stopped + 0.3
    assert eventually(lambda: lease.lost, within=2)
    assert time.monotonic() >= valid_until and lease.valid_until == valid_until
    print(f"Redis stopped -> lease.lost {(valid_until - stopped) * 1000:.0f} ms later (lease 300 ms)")
    with pytest.raises(hblock.LeaseLost):
        lease.check()
    assert eventually(lambda: calls == [lease], within=2), "on_lost called once"
    lease.release()


def test_a_dropped_connection_does_not_lose_the_lease(server):
    client = server.client()
    with hblock.Lease(client, "k", interval_ms=100, misses=3) as lease:
        for _ in range(3):
            beats = info(client, "k")["beats"]
            client.client_kill_filter(_type="normal", skipme=True)
            assert eventually(lambda: info(client, "k")["beats"] > beats + 1), "beats resumed"
        assert not lease.lost
        lease.check()
        assert info(client, "k")["token"] == lease.token
        # Bound (BIND 100 by default) and re-bound after every drop.
        assert info(client, "k")["bound"] == 1
        assert client.info("hblock")["hblock_unbound"] == 0


BOUND_HOLDER = textwrap.dedent("""
    import sys, time, redis, hblock
    lease = hblock.Lease(redis.Redis(port=int(sys.argv[1])), "k")
    lease.acquire()
    print("acquired", lease.token, flush=True)
    time.sleep(60)
""")


def test_kill_9_of_a_bound_holder_hands_over_within_the_grace(server):
    client = server.client()
    with holder_process(server, BOUND_HOLDER, "acquired") as proc:
        assert info(client, "k")["bound"] == 1
        got = {}

        def standby():
            with hblock.Lease(client, "k", bind_ms=None) as lease:
                got["at"] = time.monotonic()
                got["bound"] = info(client, "k")["bound"]

        t = threading.Thread(target=standby, daemon=True)
        t.start()
        assert eventually(lambda: info(client, "k")["waiters"] == 1), "the standby waits"
        killed = time.monotonic()
        proc.kill()
        proc.wait(5)
        t.join(5)
        took = got["at"] - killed
        print(f"kill -9 of a bound holder -> standby granted {took * 1000:.0f} ms later (grace 100 ms)")
        # The default 3 s lease, last beaten at most 1 s before the kill, ends
        # no earlier than 2 s after it: sooner, the closed connection ended it.
        assert took < 1.9
        assert got["bound"] == 0, "bind_ms=None: a plain lease"
        assert client.info("hblock")["hblock_unbound"] == 1


def test_a_restart_inside_the_lease_keeps_it(aof_server):
    client = aof_server.client()
    # A 6 s lease: the restart (a process start and an AOF load, slow on a
    # busy host) stays inside it.
    with hblock.Lease(client, "k", interval_ms=200, misses=30) as lease:
        aof_server.stop()
        aof_server.start()
        assert eventually(lambda: info(client, "k")["beats"] >= 1)
        beats = info(client, "k")["beats"]
        assert eventually(lambda: info(client, "k")["beats"] > beats)
        assert not lease.lost and info(client, "k")["owner"] == lease.owner


PAUSED_HOLDER = textwrap.dedent("""
    import sys, time, redis, hblock
    lease = hblock.Lease(redis.Redis(port=int(sys.argv[1])), "k", interval_ms=100, misses=2)
    lease.acquire()
    print("acquired", lease.token, flush=True)
    time.sleep(0.05)
    while not lease.lost:
        time.sleep(0.01)
    print("lost", lease.lost_reason, flush=True)
""")


def test_notheld_after_a_pause(server):
    client = server.client()
    with holder_process(server, PAUSED_HOLDER, "acquired 1") as proc:
        assert proc.stdout is not None
        os.kill(proc.pid, signal.SIGSTOP)
        with hblock.Lease(client, "k", interval_ms=60_000) as other:
            assert other.token == 2
            os.kill(proc.pid, signal.SIGCONT)
            line = proc.stdout.readline()
            assert line.startswith("lost NOTHELD") or line.startswith("lost no beat"), line
        assert proc.wait(5) == 0


def test_run_returns_what_fn_returns_and_retries_after_leaselost(server):
    client = server.client()
    calls = []

    def work(lease):
        calls.append(lease.token)
        if len(calls) == 1:
            # Lost on purpose: another owner takes over once the lease is released.
            client.execute_command("HBLOCK.RELEASE", "k", lease.owner, lease.token)
            assert eventually(lambda: lease.lost, within=2)
            lease.check()
        return "done"

    assert hblock.run(client, "k", work, interval_ms=100) == "done"
    assert len(calls) == 2 and calls[1] > calls[0]
    assert info(client, "k")["state"] == "free"


def test_bad_terms_are_refused():
    with pytest.raises(ValueError):
        hblock.Lease(redis.Redis(), "k", interval_ms=0)
    with pytest.raises(ValueError):
        hblock.Lease(redis.Redis(), "k", misses=10_001)
    with pytest.raises(ValueError):
        hblock.Lease(redis.Redis(), "k", bind_ms=-1)


def test_watch_yields_every_change_of_holder(server):
    client = server.client()
    changes = hblock.watch(client, "w")
    assert next(changes) is None, "no such lock yet"
    with hblock.Lease(client, "w", owner="a", interval_ms=60_000) as lease:
        got = next(changes)
        assert got["state"] == "held" and got["token"] == lease.token
    assert next(changes)["state"] == "free"
    changes.close()
