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

import contextlib
import secrets
import socket
import os
from typing import Any, Callable, Iterator, Optional, Tuple

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError

from ._errors import FatalError, HINT_URL, error_text, fatal_hint

# The longest owner part of a connection name (bytes), and how much of its
# end a longer one keeps (the unique ``/xxxxxxxx`` suffix, the random part
# of a default owner).
NAME_MAX = 128
NAME_TAIL = 9  # the owner's unique `/xxxxxxxx` suffix, as the CLI keeps it
# The longest owner the module accepts (bytes), the suffix included.
OWNER_MAX = 1024


def connection_name(owner: str) -> str:
    """``hblock:<owner>`` with every byte Redis refuses in a name (outside
    '!'..'~': spaces, newlines, non-ASCII) replaced by ``_``; an owner part
    over NAME_MAX bytes is cut in the middle (``head..tail``), keeping its
    last NAME_TAIL bytes, so the unique suffix stays."""
    raw = owner.encode("utf-8", errors="replace")
    if len(raw) > NAME_MAX:
        raw = raw[:NAME_MAX - NAME_TAIL - 2] + b".." + raw[-NAME_TAIL:]
    return "hblock:" + "".join(chr(b) if 0x21 <= b <= 0x7E else "_" for b in raw)


def _named(name: str, then: Optional[Callable[[Any], None]]) -> Callable[[Any], None]:
    """A ``redis_connect_func``: the usual handshake (AUTH, SELECT, ...),
    then ``CLIENT SETNAME name``; a refused SETNAME (an ACL) is ignored."""

    def connect(conn: Any) -> None:
        if then is not None:
            then(conn)
        else:
            conn.on_connect()
        try:
            conn.send_command("CLIENT", "SETNAME", name)
            conn.read_response()
        except redis.ResponseError:
            pass

    return connect


def dedicated(client: "redis.Redis[Any]", timeout: Optional[float],
              name: Optional[str] = None) -> "redis.Redis[Any]":
    """A client on a one-connection pool of its own, like ``client``; its
    connection is named ``name`` (``CLIENT SETNAME``) whenever it connects.

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
    if name is not None:
        kwargs["redis_connect_func"] = _named(name, kwargs.get("redis_connect_func"))
    own = redis.ConnectionPool(connection_class=pool.connection_class, max_connections=1, **kwargs)
    return redis.Redis(connection_pool=own)


def setup_timeout(client: "redis.Redis[Any]", interval: float) -> float:
    """The limit of every step before a blocking wait (connect, handshake,
    PING, INFO): the caller's ``socket_timeout`` when it set one, else the
    interval within 0.5 to 5 s. A hung server (SIGSTOP, a stuck host: TCP
    connects, nothing answers) then fails like any transient error."""
    given = client.connection_pool.connection_kwargs.get("socket_timeout")
    if given:
        return float(given)
    return min(max(interval, 0.5), 5.0)


def _connections(client: "redis.Redis[Any]") -> list:
    pool = client.connection_pool
    return list(getattr(pool, "_in_use_connections", ())) + list(getattr(pool, "_available_connections", ()))


def _set_socket_timeout(conn: Any, timeout: Optional[float]) -> None:
    """The read timeout of ``conn``'s socket, and the value redis-py's
    parsers restore after a probe of their own (``can_read``)."""
    sock = getattr(conn, "_sock", None)
    if sock is None:
        return
    sock.settimeout(timeout)
    parser = getattr(conn, "_parser", None)
    buffer = getattr(parser, "_buffer", None)
    if buffer is not None and hasattr(buffer, "socket_timeout"):
        buffer.socket_timeout = timeout
    if hasattr(parser, "_socket_timeout"):
        parser._socket_timeout = timeout


def is_connected(client: "redis.Redis[Any]") -> bool:
    """Whether a ``dedicated`` client's connection is open."""
    return any(getattr(conn, "_sock", None) is not None for conn in _connections(client))


@contextlib.contextmanager
def read_timeout(client: "redis.Redis[Any]", timeout: Optional[float]) -> Iterator[None]:
    """Within the block, reads on a ``dedicated`` client's (connected)
    connection wait up to ``timeout`` s (None: no limit) instead of its
    socket_timeout; a connection made within it keeps its socket_timeout."""
    for conn in _connections(client):
        _set_socket_timeout(conn, timeout)
    try:
        yield
    finally:
        for conn in _connections(client):
            _set_socket_timeout(conn, conn.socket_timeout)


def masked_url(client: "redis.Redis[Any]") -> str:
    """The client's address as a URL with the password replaced by ``***``:
    ``redis://:***@10.0.0.5:6379/0``, ``unix:///run/redis.sock?db=0``,
    ``redis+sentinel://:***@h1:26379,h2:26379/mymaster``."""
    kw = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {}) or {}
    user = kw.get("username")
    auth = ""
    if user or kw.get("password") or kw.get("credential_provider"):
        auth = f"{user or ''}:***@" if (kw.get("password") or kw.get("credential_provider")) else f"{user}@"
    db = int(kw.get("db") or 0)
    sentinel = _sentinel_pool(client)
    if sentinel is not None:
        hosts = []
        for s in getattr(sentinel.sentinel_manager, "sentinels", []):
            skw = s.connection_pool.connection_kwargs
            hosts.append(f"{skw.get('host')}:{skw.get('port')}")
        tail = f"/{db}" if db else ""
        scheme = "rediss+sentinel" if _is_ssl(client) else "redis+sentinel"
        return f"{scheme}://{auth}{','.join(hosts)}/{sentinel.service_name}{tail}"
    if kw.get("path"):
        return f"unix://{auth}{kw['path']}?db={db}"
    scheme = "rediss" if _is_ssl(client) else "redis"
    return f"{scheme}://{auth}{kw.get('host', 'localhost')}:{kw.get('port', 6379)}/{db}"


def _is_ssl(client: "redis.Redis[Any]") -> bool:
    cls = getattr(client.connection_pool, "connection_class", None)
    return isinstance(cls, type) and issubclass(cls, redis.SSLConnection) or \
        bool(client.connection_pool.connection_kwargs.get("ssl"))


def fatal(client: "redis.Redis[Any]", key: str, err: BaseException) -> Optional[FatalError]:
    """A FatalError for ``err`` (named by ``key``) when it is fatal, else None.
    Through Sentinel, "no master found" is fatal when a Sentinel answers and
    none knows the master name (a typo in the URL); otherwise transient."""
    hint = fatal_hint(err)
    if hint is None and isinstance(err, MasterNotFoundError) and unknown_master(client):
        hint = HINT_URL
    if hint is None:
        return None
    return FatalError(key, masked_url(client), error_text(err), hint)


def unknown_master(client: "redis.Redis[Any]") -> bool:
    """For a Sentinel client: a Sentinel answers and none monitors its name."""
    pool = _sentinel_pool(client)
    if pool is None:
        return False
    answered = False
    for s in list(getattr(pool.sentinel_manager, "sentinels", [])):
        try:
            masters = s.sentinel_masters()
        except redis.RedisError:
            continue
        answered = True
        if pool.service_name in masters:
            return False
    return answered


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


def shut(client: "redis.Redis[Any]") -> None:
    """Shuts down the socket of a ``dedicated`` client's connection from
    another thread: a read blocked on it ends at once (the connection reads
    as closed) even when the server is hung, and the server, when it runs,
    sees the close and drops the client (and its place in a queue)."""
    pool = client.connection_pool
    conns = list(getattr(pool, "_in_use_connections", ())) + list(getattr(pool, "_available_connections", ()))
    for conn in conns:
        sock = getattr(conn, "_sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def default_owner() -> str:
    """host:pid:random, unique per process."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


def instance_owner(given: str) -> str:
    """A given owner made unique to this lease: ``web-1`` -> ``web-1/4f3a9c0d``.
    ValueError when that is longer than the module accepts (OWNER_MAX bytes)."""
    owner = f"{given}/{secrets.token_hex(4)}"
    if len(owner.encode("utf-8", errors="surrogatepass")) > OWNER_MAX:
        raise ValueError(f"owner must be at most {OWNER_MAX - 9} bytes "
                         f"({OWNER_MAX} with the /xxxxxxxx suffix the lease adds)")
    return owner
