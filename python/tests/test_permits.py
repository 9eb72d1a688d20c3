"""Permits: hblock.Lease(..., limit=n) and hblock.run(..., limit=n) on a real server."""

import threading
import time

import pytest

import hblock
from conftest import eventually
from test_lease import info


def test_limit_3_four_leases_three_hold_the_fourth_gets_a_released_permit(server):
    client = server.client()
    holders = [hblock.Lease(client, "sem", owner=f"w{i}", limit=3, interval_ms=200) for i in range(3)]
    tokens = [lease.acquire() for lease in holders]
    assert len(set(tokens)) == 3, tokens
    assert (info(client, "sem")["limit"], info(client, "sem")["holders"]) == (3, 3)
    got = {}

    def fourth():
        with hblock.Lease(client, "sem", owner="w3", limit=3, interval_ms=200) as lease:
            got["token"] = lease.token
            got["granted"] = time.monotonic()
            got["holders"] = info(client, "sem")["holders"]

    t = threading.Thread(target=fourth, daemon=True)
    t.start()
    assert eventually(lambda: info(client, "sem")["waiters"] == 1), "the fourth waits"
    # Several beats go by: the three keep their permits, the fourth keeps waiting.
    time.sleep(0.8)
    assert "token" not in got
    assert not any(lease.lost for lease in holders)
    released = time.monotonic()
    assert holders[1].release() is True
    t.join(5)
    assert got.get("token") not in (None, *tokens), got
    assert got["holders"] == 3
    assert got["granted"] - released < 2.0
    for lease in (holders[0], holders[2]):
        assert not lease.lost
        assert lease.release() is True


def test_a_limit_that_does_not_match_is_fatal_with_a_hint(server):
    client = server.client()
    with hblock.Lease(client, "sem", owner="a", limit=3):
        with pytest.raises(hblock.FatalError) as caught:
            hblock.Lease(client, "sem", owner="b", limit=2, blocking=False).acquire()
        assert "does not match the lock's limit 3" in caught.value.error
        assert "HBLOCK.LIMIT" in caught.value.hint
        assert info(client, "sem")["holders"] == 1
    for bad in (0, 1001):
        with pytest.raises(ValueError):
            hblock.Lease(client, "sem", limit=bad)


def test_run_with_limit_runs_at_most_n_at_once(server):
    client = server.client()
    running = []
    most = []
    guard = threading.Lock()

    def work(lease):
        with guard:
            running.append(lease.token)
            most.append(len(running))
        time.sleep(0.3)
        with guard:
            running.remove(lease.token)
        return lease.token

    results = []
    threads = [threading.Thread(target=lambda: results.append(hblock.run(client, "sem", work, limit=2,
                                                                         interval_ms=200)), daemon=True)
               for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(results) == 5 and len(set(results)) == 5, results
    assert max(most) == 2, most


def test_a_limit_3_holder_stays_quiet_between_beats(server):
    """WATCH's SEEN on LIMIT > 1 is the last token issued: the beat thread
    must not get an answer at once, forever (a busy loop)."""
    client = server.client()
    with hblock.Lease(client, "sem", owner="idle", limit=3, interval_ms=500) as lease:
        client.execute_command("CONFIG", "RESETSTAT")
        for _ in range(3):
            with hblock.Lease(client, "sem", owner="other", limit=3, interval_ms=500):
                time.sleep(0.1)
            time.sleep(0.2)
        time.sleep(2)
        stats = client.info("commandstats")
        calls = {name: stats.get(f"cmdstat_hblock.{name}", {}).get("calls", 0) for name in ("watch", "check")}
        assert calls["watch"] + calls["check"] < 60, calls
        assert not lease.lost


def test_watch_yields_each_grant_and_end_of_a_limit_2_lock(server):
    client = server.client()
    first = hblock.Lease(client, "sem", owner="a", limit=2)
    first.acquire()
    changes = hblock.watch(client, "sem")
    now = next(changes)
    assert (now["limit"], now["holders"]) == (2, 1)
    second = hblock.Lease(client, "sem", owner="b", limit=2)
    second.acquire()
    assert next(changes)["holders"] == 2
    second.release()
    assert next(changes)["holders"] == 1
    first.release()
    assert next(changes)["holders"] == 0
