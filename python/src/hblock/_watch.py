"""``watch``: every change of a lock's holder, without polling and without gaps."""

import time
from typing import Any, Dict, Iterator, Optional

import redis

from ._connect import TRANSIENT, dedicated
from ._lease import Backoff


def _as_dict(reply: Any) -> Optional[Dict[str, Any]]:
    if reply is None:
        return None
    pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2])
    out: Dict[str, Any] = {}
    for name, value in pairs:
        name = name.decode() if isinstance(name, bytes) else name
        if isinstance(value, bytes) and name == "state":
            value = value.decode()
        out[name] = value
    return out


def _holder(info: Optional[Dict[str, Any]]) -> int:
    return int(info["token"]) if info and info.get("state") == "held" else 0


def watch(client: "redis.Redis[Any]", key: str) -> Iterator[Optional[Dict[str, Any]]]:
    """Yields the lock's INFO (a dict; None when the key does not exist) now
    and at every change of holder, forever. Uses HBLOCK.WATCH with the token
    last seen on a connection of its own, so no change of holder is missed;
    connection errors are retried with backoff."""
    conn = dedicated(client, None)
    seen: Optional[int] = None
    backoff = Backoff(2.0)
    try:
        while True:
            try:
                if seen is None:
                    reply = conn.execute_command("HBLOCK.INFO", key)
                else:
                    reply = conn.execute_command("HBLOCK.WATCH", key, "SEEN", seen)
            except TRANSIENT:
                conn.connection_pool.disconnect()
                time.sleep(backoff.next_delay())
                continue
            backoff.reset()
            info = _as_dict(reply)
            if _holder(info) == seen:
                continue
            seen = _holder(info)
            yield info
    finally:
        conn.connection_pool.disconnect()
