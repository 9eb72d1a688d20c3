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
        module = os.environ.get("HBLOCK_MODULE", str(ROOT / "target/release/libhblock.so"))
        self.proc = subprocess.Popen(
            [os.environ.get("SERVER_BIN", "redis-server"), "--port", str(self.port),
             "--bind", "127.0.0.1", "--dir", self.dir.name, "--save", "",
             *(["--loadmodule", module] if self.module else []), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, socket_timeout=1, password=self.password).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)

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
