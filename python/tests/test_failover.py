"""Grants held back after an unplanned promotion: NotAcquired says why, and
``watch`` accepts INFO's ``held-back`` state. A Sentinel ``master_for``
client: the lease's own connections keep Sentinel's discovery."""

import os
import signal
import subprocess
import tempfile
import threading
import time

import pytest
import redis
from redis.sentinel import Sentinel, SentinelManagedConnection

import hblock
from hblock._connect import dedicated, is_sentinel
from conftest import Server, eventually, field, free_port

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


class SentinelProc:
    """The server binary run with --sentinel, watching ``master`` as "hbm"."""

    def __init__(self, master: Server) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="hblock-py-sentinel-")
        self.port = free_port()
        conf = os.path.join(self.dir.name, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\ndaemonize no\ndir \"{self.dir.name}\"\n"
                    f"logfile \"sentinel.log\"\n"
                    f"sentinel monitor hbm 127.0.0.1 {master.port} 1\n"
                    "sentinel down-after-milliseconds hbm 1000\n"
                    "sentinel failover-timeout hbm 3000\n"
                    "sentinel parallel-syncs hbm 1\n")
        self.proc = subprocess.Popen([os.environ.get("SERVER_BIN", "redis-server"), conf, "--sentinel"],
                                     cwd=self.dir.name, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)
        assert eventually(self._up, within=10), "the Sentinel started"

    def _up(self) -> bool:
        """Up, and ours: not another server that took the port first."""
        try:
            return self.client.info("server").get("process_id") == self.proc.pid
        except redis.RedisError:
            return False

    def master_port(self) -> int:
        try:
            return int(self.client.sentinel_get_master_addr_by_name("hbm")[1])
        except (redis.RedisError, TypeError):
            return 0

    def knows_replica(self) -> bool:
        try:
            return any("s_down" not in r.get("flags", "") for r in self.client.sentinel_slaves("hbm"))
        except redis.RedisError:
            return False

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir.name, "sentinel.log")) as f:
                return f.read()
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.dir.cleanup()


@pytest.fixture
def sentinel_set():
    """A master and its replica (both with the module) and a Sentinel."""
    master = Server(["--repl-diskless-sync-delay", "0"])
    replica = Server(["--replicaof", "127.0.0.1", str(master.port)])
    sentinel = None
    try:
        r = replica.client()
        assert eventually(lambda: r.info("replication").get("master_link_status") == "up", within=10)
        sentinel = SentinelProc(master)
        assert eventually(sentinel.knows_replica, within=15), "the Sentinel found the replica"
        yield master, replica, sentinel
    finally:
        if master.proc is not None:
            os.kill(master.proc.pid, signal.SIGCONT)
        for s in (master, replica):
            s.cleanup()
        if sentinel is not None:
            sentinel.cleanup()


def test_a_standby_leaves_a_hung_master_after_a_promotion(sentinel_set):
    """Issue #24: the master hangs (SIGSTOP) while a standby waits in
    ``ACQUIRE ... WAIT 0`` on it. Sentinel promotes the replica; the standby's
    wait on the hung master ends (its socket is shut down: the master cannot
    answer a CLIENT KILL) and it gets the lock on the new master. A second
    standby (``hblock.run``) started after the hang, before the promotion,
    gets it there too."""
    master, replica, sentinel = sentinel_set
    client = Sentinel([("127.0.0.1", sentinel.port)], socket_timeout=1.0,
                      sentinel_kwargs={"socket_timeout": 0.5}).master_for("hbm", socket_timeout=2.0)
    m, r = master.client(), replica.client()
    holder = hblock.Lease(client, "k", owner="holder", interval_ms=200, misses=3)
    holder.acquire()
    got = {}

    def standby():
        with hblock.Lease(client, "k", owner="standby", interval_ms=200, misses=3) as lease:
            got["token"] = lease.token
            got["at"] = time.monotonic()
            got["on"] = field(r, "k", "owner")

    t = threading.Thread(target=standby, name="standby", daemon=True)
    t.start()
    assert eventually(lambda: field(m, "k", "waiters") == 1), "the standby waits on the master"
    assert eventually(lambda: field(r, "k", "token") == holder.token), "the replica has the lock"
    os.kill(master.proc.pid, signal.SIGSTOP)
    hung = time.monotonic()
    late = {}

    def late_standby(lease):
        late["token"] = lease.token
        late["at"] = time.monotonic()
        late["on"] = field(r, "k", "owner")

    # Review finding: one that starts waiting while the master hangs and
    # Sentinel still names it (its connect works, the handshake gets no
    # answer) must not wait as long as the hang lasts.
    t2 = threading.Thread(target=hblock.run, args=(client, "k", late_standby),
                          kwargs={"owner": "late", "interval_ms": 200, "misses": 3}, name="late", daemon=True)
    t2.start()
    assert eventually(lambda: sentinel.master_port() == replica.port, within=20), sentinel.log()
    promoted = time.monotonic()
    t.join(15)
    assert "token" in got, f"the standby still waits on the hung master\n{sentinel.log()}"
    print(f"master hung -> promoted {promoted - hung:.1f} s later -> standby granted on the new master "
          f"{got['at'] - promoted:.1f} s after that (lease 0.6 s)")
    assert got["token"] > holder.token
    assert got["on"] is not None and got["on"].startswith(b"standby/"), "granted on the new master"
    assert holder.lost, "the holder's beats on the hung master failed"
    # Bound: Sentinel's follow-up (every 0.2 s), the old lease (0.6 s) and
    # its failover delay (0.6 s), with slack for a busy machine.
    assert got["at"] - promoted < 10
    # The late one queued on the new master too (before or after the
    # standby, which released at once).
    t2.join(15)
    assert "token" in late, f"the standby started during the hang still waits\n{sentinel.log()}"
    print(f"late standby (started {promoted - hung:.1f} s before the promotion) granted "
          f"{late['at'] - promoted:.1f} s after it")
    assert late["token"] > holder.token and late["token"] != got["token"]
    assert late["on"] is not None and late["on"].startswith(b"late/"), "granted on the new master"
    assert late["at"] - promoted < 10
    holder.release()


def test_a_run_holder_on_a_hung_master_acquires_on_the_new_master(sentinel_set):
    """Review finding (repro 1): ``hblock.run`` holds the lock when its
    master hangs (SIGSTOP). It loses the lease, waits again (while Sentinel
    still names the hung master: its handshake gets no answer) and must get
    the lock on the promoted replica, not only after the old master runs
    again."""
    master, replica, sentinel = sentinel_set
    client = Sentinel([("127.0.0.1", sentinel.port)], socket_timeout=1.0,
                      sentinel_kwargs={"socket_timeout": 0.5}).master_for("hbm", socket_timeout=2.0)
    r = replica.client()
    rounds = []
    hung = threading.Event()

    def work(lease):
        rounds.append((lease.token, time.monotonic(), field(r, "k", "owner")))
        if len(rounds) == 1:
            assert eventually(lambda: field(r, "k", "token") == lease.token, within=5), "replicated"
            hung.set()
            while not lease.lost:
                time.sleep(0.01)
            lease.check()  # raises: run waits again
        return "done"

    out = {}
    t = threading.Thread(target=lambda: out.update(result=hblock.run(client, "k", work, owner="solo",
                                                                     interval_ms=300)),
                         name="solo", daemon=True)
    t.start()
    assert hung.wait(10), "the first round got the lock"
    os.kill(master.proc.pid, signal.SIGSTOP)
    assert eventually(lambda: sentinel.master_port() == replica.port, within=20), sentinel.log()
    promoted = time.monotonic()
    t.join(15)
    assert out.get("result") == "done", f"run still waits (the old master is still stopped)\n{sentinel.log()}"
    token, at, on = rounds[1]
    print(f"run holder: granted on the new master {at - promoted:.1f} s after the promotion")
    assert token > rounds[0][0] and on is not None and on.startswith(b"solo/")
    assert at - promoted < 10


def test_an_unknown_sentinel_master_name_is_fatal(sentinel_set):
    """A Sentinel answers but monitors no master of that name: a typo in the
    configuration, not an outage (no Sentinel answering would be retried)."""
    _, _, sentinel = sentinel_set
    client = Sentinel([("127.0.0.1", sentinel.port)], socket_timeout=1.0).master_for("nosuch", password="pw")
    with pytest.raises(hblock.FatalError) as caught:
        hblock.Lease(client, "k", blocking_timeout=5).acquire()
    err = caught.value
    assert err.hint == "check the URL"
    assert err.url == f"redis+sentinel://:***@127.0.0.1:{sentinel.port}/nosuch"
    assert str(err).startswith(f"k: {err.url}: No master found for 'nosuch'")
    with pytest.raises(hblock.FatalError):
        next(hblock.watch(client, "k"))
