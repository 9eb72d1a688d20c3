"""Errors are classified once (issue #25): a fatal one ends ``Lease``, ``run``
and ``watch`` at once with ``KEY: MASKED_URL: ERROR: HINT``; a transient one
is retried. Connections are named ``hblock:<owner>``."""

import re
import threading
import time

import pytest
import redis

import hblock
from hblock._errors import HINT_MODULE, HINT_NOAUTH, HINT_NOPERM, HINT_URL, HINT_WRONGPASS, HINT_WRONGTYPE
from conftest import Server, eventually, field, free_port

ENTRIES = ["lease", "run", "watch"]


def attempt(entry, client, key="k"):
    """What the entry point raised (or returned) within 10 s; fails the test
    if it still runs then (retrying forever)."""
    out = {}

    def go():
        try:
            if entry == "lease":
                with hblock.Lease(client, key, blocking_timeout=8):
                    out["value"] = "acquired"
            elif entry == "run":
                out["value"] = hblock.run(client, key, lambda lease: "ran", blocking_timeout=8)
            else:
                changes = hblock.watch(client, key)
                try:
                    out["value"] = next(changes)
                finally:
                    changes.close()
        except BaseException as err:  # what the test looks at
            out["error"] = err

    t = threading.Thread(target=go, daemon=True)
    started = time.monotonic()
    t.start()
    t.join(10)
    assert not t.is_alive(), f"{entry} still running after 10 s: retrying a fatal error?"
    out["took"] = time.monotonic() - started
    return out


def assert_fatal(out, key, url, hint, error_prefix):
    err = out.get("error")
    assert isinstance(err, hblock.FatalError), f"expected FatalError, got {out!r}"
    assert err.hint == hint and err.url == url and err.key == key
    assert err.error.startswith(error_prefix), err.error
    assert str(err) == f"{key}: {url}: {err.error}: {hint}"
    assert out["took"] < 5, "fatal: no retrying"


@pytest.fixture
def secured():
    s = Server(["--requirepass", "s3cret"], password="s3cret")
    try:
        yield s
    finally:
        s.cleanup()


@pytest.mark.parametrize("entry", ENTRIES)
def test_wrong_password_is_fatal_and_masked(secured, entry):
    client = redis.Redis.from_url(f"redis://:wrong@127.0.0.1:{secured.port}")
    out = attempt(entry, client)
    url = f"redis://:***@127.0.0.1:{secured.port}/0"
    assert_fatal(out, "k", url, HINT_WRONGPASS, "WRONGPASS")
    assert "wrong" not in str(out["error"]).replace(HINT_WRONGPASS, ""), "the password is never printed"


@pytest.mark.parametrize("entry", ENTRIES)
def test_missing_password_is_fatal(secured, entry):
    client = redis.Redis.from_url(f"redis://127.0.0.1:{secured.port}")
    out = attempt(entry, client)
    assert_fatal(out, "k", f"redis://127.0.0.1:{secured.port}/0", HINT_NOAUTH, "NOAUTH")


def test_missing_password_on_a_long_command_is_fatal(secured):
    """Redis answers an unauthenticated command of more than 10 arguments with
    `Protocol error: unauthenticated multibulk length`: the NOAUTH hint too."""
    from hblock._errors import fatal_hint
    raw = redis.Redis(port=secured.port)
    with pytest.raises(redis.RedisError) as caught:
        raw.execute_command("HBLOCK.ACQUIRE", "k", "me", "INTERVAL", 100, "MISSES", 3, "WAIT", 0, "BIND", 100)
    assert fatal_hint(caught.value) == HINT_NOAUTH, str(caught.value)


@pytest.mark.parametrize("entry", ENTRIES)
def test_module_missing_is_fatal(entry):
    s = Server([], module=False)
    try:
        out = attempt(entry, s.client())
        cmd = "HBLOCK.INFO" if entry == "watch" else "HBLOCK."
        assert_fatal(out, "k", f"redis://127.0.0.1:{s.port}/0", HINT_MODULE, "unknown command")
        assert cmd in out["error"].error
    finally:
        s.cleanup()


@pytest.mark.parametrize("entry", ENTRIES)
def test_acl_noperm_is_fatal(server, entry):
    server.client().execute_command("ACL", "SETUSER", "worker", "on", ">pw", "~other:*", "+@all")
    client = redis.Redis.from_url(f"redis://worker:pw@127.0.0.1:{server.port}")
    out = attempt(entry, client)
    assert_fatal(out, "k", f"redis://worker:***@127.0.0.1:{server.port}/0", HINT_NOPERM, "NOPERM")


@pytest.mark.parametrize("entry", ENTRIES)
def test_wrongtype_is_fatal(server, entry):
    server.client().set("k", "a string")
    out = attempt(entry, server.client())
    assert_fatal(out, "k", f"redis://127.0.0.1:{server.port}/0", HINT_WRONGTYPE, "WRONGTYPE")


@pytest.mark.parametrize("entry", ENTRIES)
def test_bad_database_in_the_url_is_fatal(server, entry):
    client = redis.Redis.from_url(f"redis://127.0.0.1:{server.port}/99")
    out = attempt(entry, client)
    assert_fatal(out, "k", f"redis://127.0.0.1:{server.port}/99", HINT_URL, "DB index is out of range")


@pytest.mark.parametrize("entry", ENTRIES)
def test_connection_refused_is_retried_until_the_server_comes(entry):
    """Nothing listens at first: retried (no FatalError), and served once the
    server starts on that port."""
    port = free_port()
    client = redis.Redis(port=port, socket_timeout=5)
    out = {}
    t = threading.Thread(target=lambda: out.update(attempt(entry, client)), daemon=True)
    t.start()
    time.sleep(1.0)  # the outage: the entry point retries meanwhile
    assert t.is_alive(), f"{entry} gave up on a refused connection: {out!r}"
    s = Server([], port=port)
    try:
        t.join(12)
        assert "error" not in out, out
        assert out["value"] == {"lease": "acquired", "run": "ran", "watch": None}[entry]
    finally:
        s.cleanup()


def test_names_of_the_connections(server):
    client = server.client()
    client.client_setname("mine")
    odd = "web 1\né"
    lease = hblock.Lease(client, "k", owner=odd)
    waiter = hblock.Lease(client, "k")
    got = {}
    with lease:
        t = threading.Thread(target=lambda: got.update(token=waiter.acquire()), daemon=True)
        t.start()
        assert eventually(lambda: field(client, "k", "waiters") == 1), "the waiter waits"
        names = [c["name"] for c in client.client_list()]
        suffix = lease.owner.split("/")[-1]
        # "web 1\né": space, newline and the two bytes of é each become "_".
        assert f"hblock:web_1___/{suffix}" in names, names
        assert f"hblock:{waiter.owner}" in names, "the waiting connection is named"
        assert "mine" in names, "the caller's own connection keeps its name"
        assert client.client_getname() == "mine"
    t.join(5)
    assert got["token"] > 0
    waiter.release()


def test_a_refused_setname_is_ignored(server):
    server.client().execute_command("ACL", "SETUSER", "noname", "on", ">pw", "~*", "+@all", "-client")
    client = redis.Redis.from_url(f"redis://noname:pw@127.0.0.1:{server.port}")
    with hblock.Lease(client, "k", interval_ms=100) as lease:
        assert lease.token >= 1
        assert eventually(lambda: field(client, "k", "beats") >= 2), "it beats"
        assert not lease.lost
    names = [c["name"] for c in server.client().client_list()]
    assert not any(re.match(r"hblock:", n) for n in names)


def test_a_user_without_hblock_watch_does_not_reconnect_in_a_loop(server):
    """Review finding: an ACL user granted the lease commands but not
    HBLOCK.WATCH. The bound lease's beat thread waits in HBLOCK.WATCH between
    beats; a NOPERM there must not become a reconnect-and-beat loop (seen:
    ~1,000 new connections a second, no log line)."""
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "nowatch", "on", ">pw", "~*", "+@all", "-hblock.watch")
    admin.config_resetstat()
    url = server.url.replace("redis://", "redis://nowatch:pw@")
    try:
        with hblock.Lease(redis.Redis.from_url(url), "nw", interval_ms=1000):
            time.sleep(2)
    except hblock.FatalError:
        pass  # refusing at once is fine too
    connections = admin.info("stats")["total_connections_received"]
    assert connections < 50, connections


def test_blocking_timeout_holds_on_a_hung_server(server):
    """Review finding: the waiting connection is made with no socket timeout,
    so on a hung server (SIGSTOP: TCP connects, nothing answers) neither
    ``blocking_timeout`` nor ``blocking=False`` ever returns; the caller's own
    ``socket_timeout`` is dropped too."""
    import signal
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2)
    server.proc.send_signal(signal.SIGSTOP)
    try:
        out = {}

        def go():
            started = time.monotonic()
            try:
                hblock.Lease(client, "hung", blocking_timeout=1.0).acquire()
            except BaseException as err:  # what the test looks at
                out["error"] = err
            out["took"] = time.monotonic() - started

        t = threading.Thread(target=go, daemon=True)
        t.start()
        t.join(8)
        assert not t.is_alive(), "blocking_timeout=1.0 still waiting after 8 s on a hung server"
    finally:
        server.proc.send_signal(signal.SIGCONT)


def test_a_hung_server_is_a_bounded_transient_error(server, caplog):
    """A SIGSTOPped server (TCP connects, nothing answers): every step before
    the blocking ACQUIRE waits the caller's socket_timeout at most, so a try
    once raises redis-py's TimeoutError, a blocking_timeout ends in
    NotAcquired naming the failure, and a waiter with no limit retries (one
    ``failing`` line) and acquires once the server runs again."""
    import logging
    import signal
    caplog.set_level(logging.DEBUG, logger="hblock")
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=0.5)
    server.proc.send_signal(signal.SIGSTOP)
    got = {}
    try:
        with pytest.raises(redis.TimeoutError):
            hblock.Lease(client, "hung", blocking=False).acquire()
        with pytest.raises(hblock.NotAcquired) as caught:
            hblock.Lease(client, "hung", blocking_timeout=0.2).acquire()
        assert "hung: not granted within 0.2 s (redis://127.0.0.1:" in str(caught.value)
        assert "failing: Timeout" in str(caught.value)
        caplog.clear()

        def waiter():
            with hblock.Lease(client, "hung", interval_ms=200) as lease:
                got["token"] = lease.token

        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        # Retried on a new connection each setup timeout (0.5 s).
        assert eventually(lambda: sum("still failing" in r.getMessage() for r in caplog.records) >= 2, within=8)
    finally:
        server.proc.send_signal(signal.SIGCONT)
    t.join(10)
    assert got.get("token", 0) >= 1, "acquired once the server runs again"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum(" failing: " in m for m in warnings) == 1, warnings
    assert sum(" recovered after " in m for m in warnings) == 1, warnings


def test_a_refused_hblock_watch_falls_back_to_sleeping_between_beats(server, caplog):
    """HBLOCK.WATCH refused (NOPERM): the beat thread keeps its connection,
    says so once at DEBUG, and sleeps between beats for the rest of the
    lease; a dropped connection is then noticed at the next beat (so within
    the grace only when bind_ms is above the interval)."""
    import logging
    caplog.set_level(logging.DEBUG, logger="hblock")
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "nowatch", "on", ">pw", "~*", "+@all", "-hblock.watch")
    client = redis.Redis.from_url(server.url.replace("redis://", "redis://nowatch:pw@"))
    with hblock.Lease(client, "nw", owner="nw", interval_ms=100, misses=5, bind_ms=400) as lease:
        first = lease.valid_until
        # Beats go on: the lease is renewed several intervals over.
        assert eventually(lambda: lease.valid_until > first + 0.5, within=5)
        admin.config_resetstat()
        later = lease.valid_until
        assert eventually(lambda: lease.valid_until > later + 0.3, within=5)
        assert admin.info("stats")["total_connections_received"] == 0, "the beat connection is kept"
        # A dropped connection: the next beat reconnects and re-binds.
        killed = admin.client_kill_filter(_type="normal", skipme=True, user="nowatch")
        assert killed >= 1
        assert eventually(lambda: admin.info("stats")["total_connections_received"] >= 1, within=5)
        dropped = lease.valid_until
        assert eventually(lambda: lease.valid_until > dropped + 0.3, within=5)
        assert not lease.lost and field(admin, "nw", "token") == lease.token
    refused = [r for r in caplog.records if "HBLOCK.WATCH refused" in r.getMessage()]
    assert len(refused) <= 2, [r.getMessage() for r in refused]  # once per beat connection at most
    assert all(r.levelno == logging.DEBUG for r in refused)
    assert "NOPERM" in refused[0].getMessage()


def test_long_owners(server):
    """The module takes owners up to 1024 bytes, the /xxxxxxxx suffix
    included: a longer one is a ValueError when the Lease is made, not a raw
    ResponseError later. A connection name cut to 128 bytes keeps the
    owner's unique suffix (the middle is cut)."""
    client = server.client()
    with pytest.raises(ValueError, match="owner must be at most 1015 bytes"):
        hblock.Lease(client, "k", owner="é" * 508)  # 1016 bytes
    with pytest.raises(ValueError):
        hblock.run(client, "k", lambda lease: None, owner="x" * 1016)
    with hblock.Lease(client, "k", owner="o" * 1015) as lease:
        assert len(lease.owner.encode()) == 1024
        assert field(client, "k", "owner") == lease.owner.encode()
        names = [c["name"] for c in client.client_list() if c["name"].startswith("hblock:")]
        suffix = lease.owner[-9:]
        assert names and all(len(n) == len("hblock:") + 128 for n in names), names
        assert all(n.endswith("o.." + suffix) for n in names), names


def test_the_acl_docs_python_md_names_is_enough(server, caplog):
    """docs/python.md's ACL example: a holder, a standby told why it was not
    granted, and watch work with it, without a refusal logged."""
    import logging
    caplog.set_level(logging.DEBUG, logger="hblock")
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "worker", "on", ">pw", "~jobs:*", "+hblock.acquire", "+hblock.beat",
                          "+hblock.release", "+hblock.info", "+hblock.watch", "+ping", "+client|setname")
    client = redis.Redis.from_url(server.url.replace("redis://", "redis://worker:pw@"))
    changes = hblock.watch(client, "jobs:leader")
    try:
        assert next(changes) is None
        with hblock.Lease(client, "jobs:leader", owner="w", interval_ms=1000) as lease:
            assert next(changes)["token"] == lease.token
            with pytest.raises(hblock.NotAcquired) as caught:
                hblock.Lease(client, "jobs:leader", blocking_timeout=0.3).acquire()
            assert caught.value.reason == "held"
            first = lease.valid_until
            assert eventually(lambda: lease.valid_until > first + 0.3, within=5)
            assert not lease.lost
            names = [c["name"] for c in admin.client_list()]
            assert any(n.startswith("hblock:watch:") for n in names), names
            assert any(n.startswith("hblock:w/") for n in names), names
        assert next(changes)["state"] == "free"
    finally:
        changes.close()
    assert not [r.getMessage() for r in caplog.records if "refused" in r.getMessage() or "NOPERM" in r.getMessage()]
