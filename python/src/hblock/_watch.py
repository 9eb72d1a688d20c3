"""``watch``: every change of a lock's holder, without polling and without gaps."""

import time
from typing import Any, Dict, Iterator, Optional

import redis

from ._connect import (connection_name, dedicated, default_owner, fatal, is_connected, is_sentinel, masked_url, moved,
                       read_timeout, setup_timeout)
from ._errors import is_transient
from ._faults import Outage
from ._info import as_dict as _as_dict, seen as _seen
from ._lease import Backoff


def watch(client: "redis.Redis[Any]", key: str) -> Iterator[Optional[Dict[str, Any]]]:
    """Yields the lock's INFO (a dict; None when the key does not exist) now
    and at every change of holder, forever (on a lock of limit > 1: at every
    grant and lease end; ``limit`` and ``holders`` say how many may and do
    hold). Uses HBLOCK.WATCH with the token
    last seen on a connection of its own (named ``hblock:watch:host:pid:random``),
    so no change of holder is missed. Transient errors (connection, LOADING,
    READONLY, ...) are retried with backoff, logged once when they start and
    once when they end; a fatal one raises ``FatalError``."""
    # Connecting, INFO and PING wait the caller's socket_timeout (else 5 s)
    # at most: a hung server is retried like any transient error.
    setup = setup_timeout(client, 5.0)
    conn = dedicated(client, setup, connection_name(f"watch:{default_owner()}"))
    seen: Optional[int] = None
    backoff = Backoff(2.0)
    outage = Outage(key, masked_url(client))
    # Through Sentinel: wait in 1 s slices and, between them, move to the
    # master Sentinel names (the old one stays up a while after a planned
    # failover). WATCH with the token last seen misses nothing across slices.
    sentinel = is_sentinel(client)
    try:
        while True:
            try:
                if sentinel and moved(client, conn) is not None:
                    conn.connection_pool.disconnect()
                if outage.failing or not is_connected(conn):
                    # Connect within the setup timeout before a long WATCH
                    # (a connection that works ends an outage).
                    try:
                        conn.execute_command("PING")
                    except redis.ResponseError:
                        pass
                    outage.ok()
                if seen is None:
                    reply = conn.execute_command("HBLOCK.INFO", key)
                elif sentinel:
                    with read_timeout(conn, 1.0 + setup):
                        reply = conn.execute_command("HBLOCK.WATCH", key, "SEEN", seen, "TIMEOUT", 1000)
                else:
                    with read_timeout(conn, None):
                        reply = conn.execute_command("HBLOCK.WATCH", key, "SEEN", seen)
            except redis.RedisError as err:
                found = fatal(client, key, err)
                if found is not None:
                    raise found from err
                if not is_transient(err):
                    raise
                outage.failed(err)
                conn.connection_pool.disconnect()
                time.sleep(backoff.next_delay())
                continue
            outage.ok()
            backoff.reset()
            info = _as_dict(reply)
            if _seen(info) == seen:
                continue
            seen = _seen(info)
            yield info
    finally:
        conn.connection_pool.disconnect()
