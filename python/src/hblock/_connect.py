"""Connections of a lease's own, made like the caller's client.

The waiting ACQUIRE and the beats each get a connection of their own, with
the caller's address, credentials, TLS and protocol but their own timeouts
and no hidden retries: a retried ACQUIRE or BEAT would hide what happened.

A client from ``redis.sentinel.Sentinel(...).master_for(name)`` works too:
its pool's connection settings carry the Sentinel pool, so these connections
ask Sentinel for the master whenever they connect. ``moved`` tells when a
connection goes to a node Sentinel no longer names as the master (after a
planned failover the old master stays up, answering, for a while).
"""

import secrets
import socket
import os
from typing import Any, Optional, Tuple

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# Errors after which a new connection may well succeed.
TRANSIENT = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.BusyLoadingError,
    redis.ReadOnlyError,
)


def dedicated(client: "redis.Redis[Any]", timeout: Optional[float]) -> "redis.Redis[Any]":
    """A client on a one-connection pool of its own, like ``client``.

    For a Sentinel client the settings include the Sentinel pool (its
    ``connection_pool`` entry) and the connection class is Sentinel's, so
    the new connection finds the master through Sentinel as well."""
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs.update(
        socket_timeout=timeout,
        socket_connect_timeout=timeout if timeout is not None else 5.0,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )
    own = redis.ConnectionPool(connection_class=pool.connection_class, max_connections=1, **kwargs)
    return redis.Redis(connection_pool=own)


def _sentinel_pool(client: "redis.Redis[Any]") -> Any:
    """The Sentinel pool (or its proxy) behind a ``master_for`` client, else None."""
    pool = client.connection_pool.connection_kwargs.get("connection_pool")
    if pool is None or not hasattr(pool, "sentinel_manager") or not getattr(pool, "is_master", False):
        return None
    return pool


def is_sentinel(client: "redis.Redis[Any]") -> bool:
    return _sentinel_pool(client) is not None


def connected_to(client: "redis.Redis[Any]") -> Optional[Tuple[str, int]]:
    """(host, port) of the connection of a ``dedicated`` client, None when not connected."""
    pool = client.connection_pool
    conns = list(getattr(pool, "_in_use_connections", ())) + list(getattr(pool, "_available_connections", ()))
    for conn in conns:
        if getattr(conn, "_sock", None) is not None and conn.host:
            return (conn.host, int(conn.port))
    return None


def moved(client: "redis.Redis[Any]", own: "redis.Redis[Any]") -> Optional[Tuple[str, int]]:
    """For a Sentinel ``client``: the address of ``own``'s connection when
    Sentinel now names another master; None otherwise (also when Sentinel
    cannot be asked: an outage of Sentinel is not a failover)."""
    pool = _sentinel_pool(client)
    if pool is None:
        return None
    where = connected_to(own)
    if where is None:
        return None
    try:
        host, port = pool.sentinel_manager.discover_master(pool.service_name)
    except redis.RedisError:
        return None
    if (str(host), int(port)) != where:
        return where
    return None


def kill_client(client: "redis.Redis[Any]", where: Tuple[str, int], client_id: int, timeout: float) -> None:
    """``CLIENT KILL ID client_id`` on the node at ``where``, with ``client``'s
    credentials and TLS; best effort (a user without the right is left to
    wait until the old master is demoted)."""
    pool = client.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in ("connection_pool", "host", "port")}
    kwargs.update(socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))
    cls = redis.SSLConnection if issubclass(pool.connection_class, redis.SSLConnection) else redis.Connection
    conn = cls(host=where[0], port=where[1], **kwargs)
    try:
        conn.send_command("CLIENT", "KILL", "ID", client_id)
        conn.read_response()
    except redis.RedisError:
        pass
    finally:
        conn.disconnect()


def default_owner() -> str:
    """host:pid:random, unique per process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


def instance_owner(given: str) -> str:
    """A given owner made unique to this lease: ``web-1`` -> ``web-1/4f3a9c0d``."""
    return f"{given}/{secrets.token_hex(4)}"


def is_not_held(err: Exception) -> bool:
    return isinstance(err, redis.ResponseError) and str(err).startswith("NOTHELD")
