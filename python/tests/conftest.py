"""A real redis-server with the module, on a free loopback port, in a temp dir.

SERVER_BIN picks the server (default: redis-server), HBLOCK_MODULE the module
(default: target/release/libhblock.so of this checkout).
"""

import os
import pathlib
import socket
import subprocess
import tempfile
import time
from typing import Iterator, List

import pytest
import redis

ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, extra: List[str], module: bool = True, port: "int | None" = None,
                 password: "str | None" = None) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="hblock-py-")
        self.fixed_port = port is not None
        self.started_once = False
        self.port = port or free_port()
        self.extra = extra
        self.module = module
        self.password = password
        self.proc: "subprocess.Popen[bytes] | None" = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Starts the server; a port that is not ours (another server took it
        between free_port() and our bind: ours exits) is swapped for another
        free one on a first start, when no port was asked for."""
        for _ in range(5):
            if self._launch():
                return
            if self.fixed_port or self.started_once:
                break
            self.port = free_port()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def _launch(self) -> bool:
        """Spawns the server; True once it answers on our port as our process
        (INFO's process_id), False if it exited (port taken) or never did."""
        module = os.environ.get("HBLOCK_MODULE", str(ROOT / "target/release/libhblock.so"))
        self.proc = subprocess.Popen(
            [os.environ.get("SERVER_BIN", "redis-server"), "--port", str(self.port),
             "--bind", "127.0.0.1", "--dir", self.dir.name, "--save", "",
             *(["--loadmodule", module] if self.module else []), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        probe = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1,
                            password=self.password)
        try:
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if probe.info("server").get("process_id") == self.proc.pid:
                        self.started_once = True
                        return True
                except redis.RedisError:
                    pass
                time.sleep(0.02)
        finally:
            probe.close()
        self.stop()
        return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def client(self) -> "redis.Redis[bytes]":
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, password=self.password)

    def cleanup(self) -> None:
        self.stop()
        self.dir.cleanup()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server([])
    try:
        yield s
    finally:
        s.stop()
        s.dir.cleanup()


@pytest.fixture
def aof_server() -> Iterator[Server]:
    s = Server(["--appendonly", "yes", "--appendfsync", "always"])
    try:
        yield s
    finally:
        s.stop()
        s.dir.cleanup()


def eventually(check, within: float = 5.0):  # type: ignore[no-untyped-def]
    """check()'s first truthy value within `within` seconds, else None."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            return None
        time.sleep(0.005)


def field(client, key: str, name: str):  # type: ignore[no-untyped-def]
    """One field of the lock's HBLOCK.INFO (RESP2 list or RESP3 map)."""
    reply = client.execute_command("HBLOCK.INFO", key)
    if reply is None:
        return None
    fields = reply if isinstance(reply, dict) else dict(zip(reply[::2], reply[1::2]))
    return fields.get(name.encode(), fields.get(name))
