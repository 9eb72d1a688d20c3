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
