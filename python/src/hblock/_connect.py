"""Connections of a lease's own, made like the caller's client.

The waiting ACQUIRE and the beats each get a connection of their own, with
the caller's address, credentials, TLS and protocol but their own timeouts
and no hidden retries: a retried ACQUIRE or BEAT would hide what happened.
"""

import secrets
import socket
import os
from typing import Any, Optional

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
    """A client on a one-connection pool of its own, like ``client``."""
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


def default_owner() -> str:
    """host:pid:random, unique per process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


def instance_owner(given: str) -> str:
    """A given owner made unique to this lease: ``web-1`` -> ``web-1/4f3a9c0d``."""
    return f"{given}/{secrets.token_hex(4)}"


def is_not_held(err: Exception) -> bool:
    return isinstance(err, redis.ResponseError) and str(err).startswith("NOTHELD")
