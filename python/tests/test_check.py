"""``hblock.run``'s health check (issue #25 item 9, the Python side of
``hblock run --check``): N failures in a row stop the work as on a lost
lease, release the lock at once, and ``run`` raises ``CheckFailed``."""

import threading
import time

import pytest

import hblock
from conftest import eventually, field

EVERY = 0.1
FAILURES = 3


@pytest.mark.parametrize("failure", ["false", "raises", "hangs"])
def test_a_failing_check_stops_the_work_and_releases(server, failure):
    client = server.client()
    healthy = threading.Event()
    healthy.set()
    hang = threading.Event()
    seen = {}

    def check():
        if healthy.is_set():
            return True
        if failure == "raises":
            raise RuntimeError("unhealthy")
        if failure == "hangs":
            hang.wait(30)
        return False

    def work(lease):
        assert eventually(lambda: field(client, "k", "beats") >= 1, within=3)
        time.sleep(3 * EVERY)  # healthy checks pass meanwhile
        assert not lease.lost, "healthy checks keep the lease"
        seen["broke"] = time.monotonic()
        healthy.clear()
        assert eventually(lambda: lease.lost, within=5)
        seen["lost"] = time.monotonic()
        # Released while this work still runs: a standby gets the lock now
        # (the lease is marked lost first, so that the work stops before
        # anyone else can hold the lock; the release follows at once).
        other = hblock.Lease(client, "k", blocking_timeout=2.0)
        seen["other"] = other.acquire()
        other.release()
        with pytest.raises(hblock.CheckFailed):
            lease.check()
        return "the work ended"

    with pytest.raises(hblock.CheckFailed) as caught:
        hblock.run(client, "k", work, interval_ms=1000, misses=3,
                   check=check, check_every=EVERY, check_timeout=EVERY, check_failures=FAILURES)
    hang.set()
    assert isinstance(caught.value, hblock.LeaseLost)
    assert "health check failed 3 times in a row" in str(caught.value)
    took = seen["lost"] - seen["broke"]
    print(f"check failing ({failure}) -> lease lost {took * 1000:.0f} ms later "
          f"({FAILURES} x {EVERY * 1000:.0f} ms)")
    # N checks, each up to `every` apart plus its timeout; slack for a busy machine.
    assert took <= FAILURES * (EVERY + EVERY) + 1.0
    assert took >= (FAILURES - 1) * EVERY, "not before N failures"
    assert seen["other"] >= 2


def test_check_options_are_checked(server):
    with pytest.raises(ValueError):
        hblock.run(server.client(), "k", lambda lease: None, check=lambda: True, check_failures=0)
