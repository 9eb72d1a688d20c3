"""The package's log lines (issue #25 items 3 and 8): the CLI's words, the key
once per line, an outage logged once when it starts and once when it ends."""

import logging
import threading
import time

import pytest
import redis

import hblock
from conftest import eventually, field


def messages(caplog, level=logging.INFO):
    return [r.getMessage() for r in caplog.records if r.name == "hblock" and r.levelno >= level]


def test_lease_log_lines(server, caplog):
    caplog.set_level(logging.INFO, logger="hblock")
    client = server.client()
    with hblock.Lease(client, "k", owner="web-1") as lease:
        token = lease.token
    assert messages(caplog) == [f"acquired k token={token} as {lease.owner}", f"released k token={token}"]
    caplog.clear()

    lease = hblock.Lease(client, "k", owner="web-1", interval_ms=100)
    lease.acquire()
    client.execute_command("HBLOCK.RELEASE", "k", lease.owner, lease.token)
    assert eventually(lambda: lease.lost, within=3)
    assert lease.release() is False
    lines = messages(caplog)
    lost = [m for m in lines if m.startswith("lost ")]
    assert len(lost) == 1 and lost[0].startswith("lost k: NOTHELD"), lines
    assert not any(m.startswith("released") for m in lines), lines
    for m in lines:
        assert m.count("k:") <= 1 and ": False" not in m and ": True" not in m, m


def test_run_log_lines_name_the_key_once(server, caplog):
    caplog.set_level(logging.INFO, logger="hblock")
    client = server.client()
    calls = []

    def work(lease):
        calls.append(lease.token)
        if len(calls) == 1:
            client.execute_command("HBLOCK.RELEASE", "job", lease.owner, lease.token)
            assert eventually(lambda: lease.lost, within=3)
            lease.check()
        return "done"

    assert hblock.run(client, "job", work, interval_ms=100) == "done"
    lines = messages(caplog)
    assert "waiting for job again" in lines, lines
    assert [m for m in lines if m.startswith("lost ")][0].startswith("lost job: NOTHELD")
    for m in lines:
        assert m.count("job") == 1, m


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(aof_server, caplog):
    """Redis down 10 s, then back on the same port: a holder and a standby
    each log one "failing" and one "recovered" line; the retries only at DEBUG."""
    caplog.set_level(logging.DEBUG, logger="hblock")
    client = aof_server.client()
    url = f"redis://127.0.0.1:{aof_server.port}/0"
    holder = hblock.Lease(client, "k", owner="holder", interval_ms=2000, misses=10)
    holder.acquire()
    got = {}

    def standby():
        with hblock.Lease(client, "k", owner="standby", interval_ms=2000) as lease:
            got["token"] = lease.token

    t = threading.Thread(target=standby, name="standby", daemon=True)
    t.start()
    assert eventually(lambda: field(client, "k", "waiters") == 1), "the standby waits"
    aof_server.stop()
    stopped = time.monotonic()
    time.sleep(10)  # the outage itself
    aof_server.start()
    beat_thread = "hblock beat k"
    assert eventually(lambda: sum(1 for r in caplog.records if "recovered after" in r.getMessage()) >= 2,
                      within=10), messages(caplog, logging.WARNING)
    assert not holder.lost, holder.lost_reason
    holder.release()
    t.join(10)
    assert got.get("token", 0) > holder.token
    for thread in (beat_thread, "standby"):
        lines = [r.getMessage() for r in caplog.records
                 if r.threadName == thread and r.levelno >= logging.WARNING]
        assert len(lines) <= 2, (thread, lines)
        assert lines[0].startswith(f"k: {url} failing: ") and lines[0].endswith("; retrying"), lines
        assert lines[1].startswith(f"k: {url} recovered after "), lines
        seconds = float(lines[1].split("after ")[1].split(" s")[0])
        assert 9 <= seconds <= time.monotonic() - stopped + 0.05, lines  # printed to 0.1 s
        retries = [r for r in caplog.records if r.threadName == thread and r.levelno == logging.DEBUG
                   and "still failing" in r.getMessage()]
        assert retries, f"{thread}: the retries show at DEBUG"
    print(f"outage of 10 s: {len(messages(caplog, logging.WARNING))} warning lines in all")


@pytest.mark.parametrize("entry", ["lease", "watch"])
def test_nothing_listening_logs_once(entry, caplog):
    """Connection refused for 3 s: one "failing" line, however many retries."""
    import redis
    from conftest import free_port
    caplog.set_level(logging.DEBUG, logger="hblock")
    client = redis.Redis(host="127.0.0.1", port=free_port())
    if entry == "lease":
        with pytest.raises(hblock.NotAcquired):
            hblock.Lease(client, "k", interval_ms=200, blocking_timeout=3).acquire()
    else:
        changes = hblock.watch(client, "k")
        t = threading.Thread(target=lambda: next(changes, None), daemon=True)
        t.start()
        t.join(3)
    warnings = messages(caplog, logging.WARNING)
    retries = [r for r in caplog.records if "still failing" in r.getMessage()]
    assert len(warnings) == 1 and " failing: " in warnings[0], warnings
    assert len(retries) >= 3, "retried meanwhile"


def test_run_logs_a_loss_fn_noticed_first(server, caplog):
    """Review finding: ``fn`` sees ``lease.lost`` (the deadline passed while
    the beat thread still waits on a hung server) and raises LeaseLost before
    the beat thread logs the loss: ``lost KEY: ...`` must still come, once,
    before ``waiting for KEY again``; the failed release has the documented
    ``KEY: MASKED_URL: release failed: ERROR`` form."""
    import re
    import signal
    caplog.set_level(logging.INFO, logger="hblock")
    client = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=0.5)
    calls = []

    def work(lease):
        calls.append(lease.token)
        if len(calls) == 1:
            server.proc.send_signal(signal.SIGSTOP)
            # The beat thread sits on the hung connection (1 s timeout)
            # past the deadline (1 s lease): this thread notices first.
            assert eventually(lambda: lease.lost, within=5)
            raise hblock.LeaseLost("seen by fn")
        return "done"

    def resume():
        eventually(lambda: any("release failed" in m for m in messages(caplog, logging.WARNING)), within=10)
        server.proc.send_signal(signal.SIGCONT)

    waker = threading.Thread(target=resume, daemon=True)
    waker.start()
    try:
        assert hblock.run(client, "pyk", work, interval_ms=500, misses=2) == "done"
    finally:
        server.proc.send_signal(signal.SIGCONT)
    waker.join(10)
    lines = messages(caplog)
    lost = [i for i, m in enumerate(lines) if m.startswith("lost pyk: ")]
    assert len(lost) == 1, lines
    assert lines[lost[0]].startswith("lost pyk: no beat acknowledged for 1 s"), lines
    assert lost[0] < lines.index("waiting for pyk again"), lines
    failed = [m for m in lines if "release failed" in m]
    assert len(failed) == 1 and re.match(r"pyk: redis://127\.0\.0\.1:\d+/0: release failed: Timeout", failed[0]), lines


def test_log_lines_escape_control_characters(server, caplog):
    """Review finding: an owner (or key) with a newline split a log line; an
    escape sequence reached the terminal. They are escaped as repr does."""
    caplog.set_level(logging.DEBUG, logger="hblock")
    client = server.client()
    with hblock.Lease(client, "k\r\n", owner="evil\nowner=x\x1b[31m\u2028") as lease:
        token = lease.token
    lines = messages(caplog, logging.DEBUG)
    suffix = lease.owner[-9:]
    assert lines == [f"acquired k\\r\\n token={token} as evil\\nowner=x\\x1b[31m\\u2028{suffix}",
                     f"released k\\r\\n token={token}"], lines
    for m in lines:
        assert "\n" not in m and "\r" not in m and "\x1b" not in m and "\u2028" not in m
