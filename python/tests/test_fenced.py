"""Fenced writes (issue #25 item 7): ``lease.fenced`` and ``lease.pipeline``;
a refusal raises ``hblock.NotHeld`` and marks the lease lost."""

import pytest
import redis

import hblock


def taken_over(client, lease):
    """Ends ``lease`` on the server and lets another owner take the lock; the
    lease's beat thread (unbound, a 60 s interval) does not notice by itself."""
    assert client.execute_command("HBLOCK.RELEASE", lease.key, lease.owner, lease.token) == 1
    other = hblock.Lease(client, lease.key, owner="other", interval_ms=60_000)
    assert other.acquire() > lease.token
    return other


def test_fenced_write_while_held_and_refused_after_a_takeover(server):
    client = server.client()
    lease = hblock.Lease(client, "{app}:lock", owner="web-1", interval_ms=60_000, bind_ms=None)
    with lease:
        assert lease.fenced("SET", "{app}:data", "first") == b"OK"
        assert lease.fenced("INCRBY", "{app}:n", 5) == 5
        assert client.get("{app}:data") == b"first"
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            lease.fenced("LPUSH", "{app}:data", "x")  # the command's own error, unchanged
        assert not lease.lost
        other = taken_over(client, lease)
        assert not lease.lost, "not noticed yet"
        with pytest.raises(hblock.NotHeld) as caught:
            lease.fenced("SET", "{app}:data", "stale")
        assert isinstance(caught.value, hblock.LeaseLost)
        assert str(caught.value).startswith("{app}:lock: NOTHELD")
        assert lease.lost and lease.lost_reason.startswith("NOTHELD")
        assert client.get("{app}:data") == b"first", "the stale write was not applied"
        with pytest.raises(hblock.NotHeld):
            lease.check()
        other.release()


@pytest.mark.parametrize("transaction", [True, False])
def test_fenced_pipeline(server, transaction):
    client = server.client()
    lease = hblock.Lease(client, "{app}:lock", owner="web-1", interval_ms=60_000, bind_ms=None)
    with lease:
        pipe = lease.pipeline(transaction=transaction)
        pipe.set("{app}:data", "first").incrby("{app}:n", 2).get("{app}:data")
        # Replies parsed as the wrapped commands' (SET gives True).
        assert pipe.execute() == [True, 2, b"first"]
        pipe = lease.pipeline(transaction=transaction)
        pipe.set("{app}:n", "x").incr("{app}:n")
        with pytest.raises(redis.ResponseError, match="not an integer") as caught:
            pipe.execute()
        # redis-py's annotation is kept (the command as sent: wrapped).
        assert str(caught.value).startswith("Command # 2 (HBLOCK.FENCED {app}:lock "), str(caught.value)
        assert " INCRBY {app}:n 1) of pipeline caused error: " in str(caught.value), str(caught.value)
        assert not lease.lost
        other = taken_over(client, lease)
        pipe = lease.pipeline(transaction=transaction)
        pipe.set("{app}:data", "stale").incrby("{app}:m", 1)
        with pytest.raises(hblock.NotHeld) as caught:
            pipe.execute()
        assert "NOTHELD" in str(caught.value) and "pipeline" not in str(caught.value)
        assert lease.lost
        assert client.get("{app}:data") == b"first" and client.get("{app}:m") is None, "nothing applied"
        other.release()


def test_fenced_before_acquire_raises_leaselost(server):
    lease = hblock.Lease(server.client(), "k")
    with pytest.raises(hblock.LeaseLost):
        lease.fenced("SET", "x", "1")
    with pytest.raises(hblock.LeaseLost):
        lease.pipeline()
