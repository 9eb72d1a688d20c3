"""Grants held back after an unplanned promotion: NotAcquired says why, and
``watch`` accepts INFO's ``held-back`` state. A Sentinel ``master_for``
client: the lease's own connections keep Sentinel's discovery."""

import time

import pytest
import redis
from redis.sentinel import Sentinel, SentinelManagedConnection

import hblock
from hblock._connect import dedicated, is_sentinel
from conftest import Server, eventually

PHRASE = "grants are held back after a failover for "


@pytest.fixture
def promoted():
    """A replica promoted after its master was killed (its link was down)."""
    master = Server(["--repl-diskless-sync-delay", "0"])
    replica = Server(["--replicaof", "127.0.0.1", str(master.port)])
    try:
        r = replica.client()
        assert eventually(lambda: r.info("replication").get("master_link_status") == "up")
        master.stop()
        assert eventually(lambda: r.info("replication").get("master_link_status") == "down")
        r.execute_command("REPLICAOF", "NO", "ONE")
        r.config_set("hblock.failover-delay", 60000)
        yield replica
    finally:
        for s in (master, replica):
            s.stop()
            s.dir.cleanup()


def test_not_acquired_says_grants_are_held_back(promoted):
    client = promoted.client()
    with pytest.raises(hblock.NotAcquired) as caught:
        hblock.Lease(client, "new:key", blocking=False).acquire()
    err = caught.value
    assert err.reason == "held-back"
    assert 50_000 < err.held_back_ms <= 60_000
    assert PHRASE in str(err) and "(hblock.failover-delay)" in str(err)
    assert err.info is not None and err.info["state"] == "held-back"
    started = time.monotonic()
    with pytest.raises(hblock.NotAcquired) as caught:
        hblock.Lease(client, "new:key", blocking_timeout=0.2).acquire()
    assert time.monotonic() - started >= 0.2
    assert caught.value.reason == "held-back"
    # The operator ends the delay: granted at once.
    client.config_set("hblock.failover-delay", 0)
    with hblock.Lease(client, "new:key", blocking=False) as lease:
        assert lease.token > 1 << 32, "a new epoch of tokens"


def test_not_acquired_reasons_outside_a_failover(server):
    client = server.client()
    with hblock.Lease(client, "k", interval_ms=60_000):
        with pytest.raises(hblock.NotAcquired) as caught:
            hblock.Lease(client, "k", blocking=False).acquire()
        assert caught.value.reason == "held" and caught.value.held_back_ms is None
        assert "held by " in str(caught.value)


def test_watch_yields_a_held_back_lock(promoted):
    first = next(hblock.watch(promoted.client(), "new:key"))
    assert first is not None and first["state"] == "held-back" and first["token"] == 0


def test_dedicated_connections_of_a_sentinel_client_ask_sentinel(server):
    """No Sentinel process is needed to check the wiring: the settings of a
    master_for client's pool carry the Sentinel pool, and the copy keeps it
    and Sentinel's connection class, so it asks Sentinel when it connects."""
    sentinel = Sentinel([("127.0.0.1", 1)], socket_timeout=0.1)
    client = sentinel.master_for("hbm")
    assert is_sentinel(client) and not is_sentinel(server.client())
    own = dedicated(client, 0.5)
    pool = own.connection_pool
    assert pool.connection_class is SentinelManagedConnection
    assert pool.connection_kwargs["connection_pool"] is client.connection_pool.connection_kwargs["connection_pool"]
    # Nothing listens on port 1: asking Sentinel fails as a connection error
    # (retried by the lease like any other), not as something else.
    with pytest.raises(redis.ConnectionError):
        own.ping()
