"""``Lease``: acquire, beat from a thread, release.

The fault policy (the same as ``hblock run``'s): the lease is valid, from
this process's view, until the send time of the last acknowledged beat plus
``interval * misses``, on a monotonic clock. Until then connection errors are
retried on a new connection with backoff (never slower than interval / 2),
logged once when beats start failing and once when they succeed again.
NOTHELD, or that deadline passing, makes the lease lost.

Binding (``bind_ms``, 100 by default): the lease is acquired with ``BIND``
and bound to the connection it beats on, so when this process dies the
server releases it after ``bind_ms`` instead of after the missed beats.
Between beats the beat thread waits in ``HBLOCK.WATCH`` on that connection:
a dropped connection is noticed at once and re-bound from a new one (the
holder's ``ACQUIRE ... BIND``, same token) well within the grace.
"""

import logging
import math
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

import redis

from ._connect import (connection_name, dedicated, default_owner, fatal, instance_owner, is_sentinel, masked_url,
                       moved, read_timeout, setup_timeout, shut)
from ._errors import FatalError, LeaseLost, NotAcquired, NotHeld, error_text, is_not_held, is_transient
from ._faults import Outage
from ._fenced import FencedPipeline
from ._info import as_dict, held_back_ms, holder, not_granted, seen

log = logging.getLogger("hblock")

INTERVAL_MS = (1, 86_400_000)
MISSES = (1, 10_000)
LIMIT = (1, 1000)


class Backoff:
    """10 ms, doubling, at most half the interval."""

    def __init__(self, interval: float) -> None:
        self._max = max(interval / 2, 0.001)
        self._next = min(0.01, self._max)

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._max)
        return delay

    def reset(self) -> None:
        self._next = min(0.01, self._max)


class Lease:
    """A heartbeat lease on ``key``; a context manager.

    ``owner`` gets a unique instance part (``web-1`` -> ``web-1/4f3a9c0d``),
    so two processes never share a lease; None: ``host:pid:random``.
    ``blocking``: wait in the server's queue (``blocking_timeout`` seconds at
    most; None: no limit; 0 or less: try once). ``on_lost(lease)`` is called
    once, from the beat thread, when the lease is lost. ``bind_ms``: the
    grace after this process's connection closes (None: not bound; capped
    at ``interval_ms * misses``); do not share a bound lease across processes.
    ``limit``: how many owners may hold the lock at once (1 to 1000), each
    with its own lease and token: a semaphore of ``limit`` permits. Every
    holder and waiter of a lock gives the same ``limit``; another raises
    ``FatalError`` while the lock has holders or waiters.
    """

    def __init__(
        self,
        client: "redis.Redis[Any]",
        key: str,
        *,
        owner: Optional[str] = None,
        interval_ms: int = 1000,
        misses: int = 3,
        blocking: bool = True,
        blocking_timeout: Optional[float] = None,
        on_lost: Optional[Callable[["Lease"], None]] = None,
        bind_ms: Optional[int] = 100,
        limit: int = 1,
    ) -> None:
        if not LIMIT[0] <= limit <= LIMIT[1]:
            raise ValueError(f"limit must be from {LIMIT[0]} to {LIMIT[1]}")
        if not INTERVAL_MS[0] <= interval_ms <= INTERVAL_MS[1]:
            raise ValueError(f"interval_ms must be from {INTERVAL_MS[0]} to {INTERVAL_MS[1]}")
        if not MISSES[0] <= misses <= MISSES[1]:
            raise ValueError(f"misses must be from {MISSES[0]} to {MISSES[1]}")
        self.key = key
        self.owner = default_owner() if owner is None else instance_owner(owner)
        self.interval_ms = interval_ms
        self.misses = misses
        self.limit = limit
        # HBLOCK.WATCH's SEEN between beats: the token on a one-holder lock;
        # on limit > 1 the lock's last token issued, as last seen.
        self._seen: Optional[int] = None
        if bind_ms is not None and bind_ms < 0:
            raise ValueError("bind_ms must be 0 or more (None: not bound)")
        self.bind_ms = None if bind_ms is None else min(bind_ms, interval_ms * misses)
        self.token: Optional[int] = None
        self._client = client
        # Every step before the blocking ACQUIRE (connect, handshake, PING,
        # INFO) waits this long at most: a hung server is a transient error.
        self._setup = setup_timeout(client, interval_ms / 1000)
        self.url = masked_url(client)
        self._name = connection_name(self.owner)
        self._outage = Outage(key, self.url)
        self._lost_as: type = LeaseLost
        self._blocking = blocking
        self._blocking_timeout = blocking_timeout
        self._on_lost = on_lost
        self._deadline: Optional[float] = None
        self._reason: Optional[str] = None
        self._released = False
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._no_watch = False  # HBLOCK.WATCH was refused: sleep between beats
        self._failing: Optional[str] = None  # the beats' last error while they fail

    @property
    def _interval(self) -> float:
        return self.interval_ms / 1000

    @property
    def _lease(self) -> float:
        return self._interval * self.misses

    # -- acquiring ---------------------------------------------------------

    def acquire(self) -> int:
        """Acquire (waiting as configured) and start beating; the fencing token.

        Raises ``NotAcquired`` when the lock is not granted."""
        if self.token is not None:
            raise RuntimeError("this Lease was already acquired; make a new one")
        waiter = self._connection(self._setup)
        end = None if self._blocking_timeout is None else time.monotonic() + self._blocking_timeout
        try:
            while True:
                token, counted_from = self._grant(waiter, end)
                beater = self._connection(self._beat_timeout)
                if self.bind_ms is None:
                    break
                # Move the binding from the waiting connection to the beating one.
                self.token = token
                sent = time.monotonic()
                try:
                    self._beat_and_rebind(beater)
                except redis.RedisError as err:
                    self.token = None
                    beater.connection_pool.disconnect()
                    try:
                        waiter.execute_command("HBLOCK.RELEASE", self.key, self.owner, token)
                    except redis.RedisError:
                        pass
                    if is_not_held(err) and self._wait_ms(None) is not None:
                        # Lost before its first beat here (a failover): wait again.
                        log.warning("waiting for %s: %s; waiting again", self.key, err)
                        continue
                    if is_transient(err) and self._wait_ms(None) is not None:
                        self._outage.failed(err)
                        continue
                    raise self._fatal(err) or err
                counted_from = sent
                break
            self.token = token
        finally:
            waiter.connection_pool.disconnect()
        self._deadline = counted_from + self._lease
        self._thread = threading.Thread(target=self._beat_loop, args=(beater,),
                                        name=f"hblock beat {self.key}", daemon=True)
        self._thread.start()
        log.info("acquired %s token=%d as %s", self.key, token, self.owner)
        return token

    def _connection(self, timeout: Optional[float]) -> "redis.Redis[Any]":
        """A connection of this lease's own, named ``hblock:<owner>``."""
        return dedicated(self._client, timeout, self._name)

    def _fatal(self, err: BaseException) -> Optional[FatalError]:
        """FatalError for ``err`` when it is fatal, else None."""
        found = fatal(self._client, self.key, err)
        if found is not None:
            found.__cause__ = err
        return found

    def _wait_ms(self, end: Optional[float]) -> Optional[int]:
        """WAIT's argument for the next attempt; None: do not wait."""
        if not self._blocking or (self._blocking_timeout is not None and self._blocking_timeout <= 0):
            return None
        if end is None:
            return 0
        left = end - time.monotonic()
        if left <= 0:
            raise NotAcquired(f"{self.key}: not granted within {self._blocking_timeout} s")
        return max(1, math.ceil(left * 1000))

    def _not_acquired(self, waiter: "redis.Redis[Any]", message: str) -> NotAcquired:
        """NotAcquired with the reason INFO gives (held, held back after a
        failover, free, missing); without one when INFO cannot be read."""
        try:
            info = as_dict(waiter.execute_command("HBLOCK.INFO", self.key))
        except redis.RedisError:
            return NotAcquired(message)
        if info is None:
            reason = "missing"
        elif held_back_ms(info) is not None:
            reason = "held-back"
        else:
            reason = "held" if info.get("state") == "held" else "free"
        return NotAcquired(f"{message}: {not_granted(info)}", reason=reason,
                           held_back_ms=held_back_ms(info), info=info)

    @property
    def _beat_timeout(self) -> float:
        # A beat slower than an interval fails; a bound lease also waits up
        # to an interval in WATCH between beats.
        limit = max(self._interval, 0.05)
        return limit * 2 if self.bind_ms is not None else limit

    def _grant(self, waiter: "redis.Redis[Any]", end: Optional[float]) -> Tuple[int, float]:
        """(token, the time the lease is counted from), on ``waiter``; waiting
        until ``end`` (a ``time.monotonic()``; None: no limit)."""
        backoff = Backoff(self._interval)
        held_back_logged = False
        while True:
            try:
                wait_ms = self._wait_ms(end)
            except NotAcquired as err:
                if self._outage.failing:
                    # The last try failed (down, hung): INFO would too.
                    raise NotAcquired(f"{err} ({self.url} failing: {self._outage.last})") from None
                raise self._not_acquired(waiter, str(err)) from None
            if self._outage.failing and not held_back_logged and wait_ms is not None:
                # Waiting again after an outage (a failover): say once if the
                # master it queues on now holds grants back.
                held_back_logged = self._log_held_back(waiter)
            try:
                return self._try_grant(waiter, wait_ms)
            except redis.RedisError as err:
                found = self._fatal(err)
                if found is not None:
                    raise found from err
                if wait_ms is None or not (is_transient(err) or is_not_held(err)):
                    raise
                self._outage.failed(err)  # logged once per outage
                waiter.connection_pool.disconnect()
                time.sleep(backoff.next_delay())

    def _log_held_back(self, waiter: "redis.Redis[Any]") -> bool:
        """Logs the lock's failover delay when INFO shows one; True if it did."""
        try:
            info = as_dict(waiter.execute_command("HBLOCK.INFO", self.key))
        except redis.RedisError:
            return False
        if held_back_ms(info) is None:
            return False
        log.warning("waiting for %s: %s", self.key, not_granted(info))
        return True

    def _try_grant(self, waiter: "redis.Redis[Any]", wait_ms: Optional[int]) -> Tuple[int, float]:
        args: List[Any] = ["HBLOCK.ACQUIRE", self.key, self.owner,
                           "INTERVAL", self.interval_ms, "MISSES", self.misses]
        if wait_ms is not None:
            args += ["WAIT", wait_ms]
        if self.bind_ms is not None:
            args += ["BIND", self.bind_ms]
        args += self._limit_args(self.limit)
        # Through Sentinel, follow the master from the start: a master that
        # hangs during the handshake is left as soon as Sentinel names another.
        follow = self._follow_master(waiter) if wait_ms is not None else None
        try:
            if wait_ms is not None:
                # Connect (and name the connection) first, within the setup
                # timeout: a connection that works ends an outage before a
                # wait of unknown length.
                try:
                    waiter.execute_command("PING")
                except redis.ResponseError:
                    pass  # an ACL without PING: the connection works
                self._outage.ok()
            sent = time.monotonic()
            if wait_ms:
                # WAIT ms, then slack for the reply; WAIT 0 (no limit) waits
                # on: it keeps its place in the queue.
                with read_timeout(waiter, wait_ms / 1000 + self._setup):
                    token = waiter.execute_command(*args)
            elif wait_ms == 0:
                with read_timeout(waiter, None):
                    token = waiter.execute_command(*args)
            else:
                token = waiter.execute_command(*args)
        finally:
            if follow is not None:
                follow()
        if token is None:
            raise self._not_acquired(waiter, f"{self.key}: not granted")
        if wait_ms is not None and moved(self._client, waiter) is not None:
            # Granted by a master Sentinel no longer names (it stays up a
            # while after a planned failover): that grant does not count.
            try:
                waiter.execute_command("HBLOCK.RELEASE", self.key, self.owner, token)
            except redis.RedisError:
                pass
            raise redis.ResponseError("NOTHELD granted by a master Sentinel no longer names")
        if wait_ms is None:
            return int(token), sent
        # A blocking grant happened at an unknown time: count from a beat.
        sent = time.monotonic()
        waiter.execute_command("HBLOCK.BEAT", self.key, self.owner, token)
        return int(token), sent

    def _follow_master(self, waiter: "redis.Redis[Any]") -> Optional[Callable[[], None]]:
        """Through Sentinel: while ``waiter`` waits in ACQUIRE, ask Sentinel
        every interval (0.1 to 1 s) whether the master moved; when it has,
        shut the waiting socket down (``shut``), which ends the wait at once
        even when the old master is hung (SIGSTOP, a stuck host) and so
        cannot answer, and the wait starts again on the new master. While
        Sentinel names the same master the wait is left alone: it keeps its
        place in the queue. Call the returned function to stop following."""
        if not is_sentinel(self._client):
            return None
        guard = threading.Lock()
        done = threading.Event()
        every = min(max(self._interval, 0.1), 1.0)

        def follow() -> None:
            while not done.wait(every):
                try:
                    where = moved(self._client, waiter)
                    if where is None:
                        continue
                    with guard:
                        if done.is_set():
                            return
                        log.warning("waiting for %s: Sentinel names a new master; waiting there", self.key)
                        shut(waiter)
                    return
                except Exception:  # never die silently: keep looking
                    log.exception("%s: following Sentinel's master failed", self.key)

        def stop() -> None:
            with guard:
                done.set()

        threading.Thread(target=follow, name=f"hblock follow {self.key}", daemon=True).start()
        return stop

    # -- beating -----------------------------------------------------------

    def _beat_loop(self, beater: "redis.Redis[Any]") -> None:
        backoff = Backoff(self._interval)
        failing: Optional[str] = None
        fresh = False  # a new connection: re-bind after its first beat
        next_beat = time.monotonic() + self._interval
        try:
            while True:
                deadline = self._deadline or 0.0
                if time.monotonic() >= deadline:
                    self._mark_lost(self._late_reason())
                    return
                if self._stop.is_set():
                    return
                wait = min(next_beat, deadline) - time.monotonic()
                if wait > 0:
                    if self.bind_ms is None or fresh or failing is not None or self._no_watch:
                        if self._stop.wait(wait):
                            return
                        if time.monotonic() < next_beat:
                            continue  # woke to check the deadline
                    else:
                        changed = self._watch(beater, wait)
                        if changed is None:
                            fresh = True  # the connection failed: beat and re-bind at once
                            beater.connection_pool.disconnect()
                        elif not changed and time.monotonic() < next_beat:
                            continue
                if self._stop.is_set():
                    return
                if not fresh and moved(self._client, beater) is not None:
                    # Beats on a node Sentinel no longer names as the master
                    # do not count: beat (and re-bind) on the named one.
                    beater.connection_pool.disconnect()
                    fresh = True
                sent = time.monotonic()
                try:
                    if fresh and self.bind_ms is not None:
                        self._beat_and_rebind(beater)
                    else:
                        beater.execute_command("HBLOCK.BEAT", self.key, self.owner, self.token)
                except redis.RedisError as err:
                    if is_not_held(err):
                        if not self._stop.is_set():
                            self._mark_lost(str(err), NotHeld)
                        return
                    found = None if self._stop.is_set() else self._fatal(err)
                    if found is not None:
                        # Retrying cannot help (a password or ACL changed):
                        # stop now rather than at the deadline.
                        log.error("%s", found)
                        self._mark_lost(f"{found.error}: {found.hint}")
                        return
                    self._outage.failed(err)  # logged once per outage
                    failing = self._failing = str(err)
                    fresh = True
                    beater.connection_pool.disconnect()
                    next_beat = time.monotonic() + backoff.next_delay()
                    continue
                fresh = False
                self._deadline = sent + self._lease
                next_beat = sent + self._interval
                backoff.reset()
                failing = self._failing = None
                self._outage.ok()
        finally:
            self._outage.end()
            beater.connection_pool.disconnect()

    def _watch(self, beater: "redis.Redis[Any]", wait: float) -> Optional[bool]:
        """Waits up to ``wait`` s in HBLOCK.WATCH on the bound connection.
        True: the holder changed (beat now to find out why); False: the
        time ran out; None: the connection failed."""
        try:
            reply = beater.execute_command(
                "HBLOCK.WATCH", self.key, "SEEN", self.token if self._seen is None else self._seen,
                "TIMEOUT", max(1, math.ceil(wait * 1000))
            )
        except redis.ResponseError as err:
            if is_transient(err):  # LOADING, BUSY, ...: as a failed connection
                return None
            # Refused (NOPERM: an ACL without HBLOCK.WATCH; an older
            # module): the connection works. Sleep between beats for the
            # rest of the lease; a dropped connection is then noticed at
            # the next beat.
            self._no_watch = True
            log.debug("%s: HBLOCK.WATCH refused (%s); sleeping between beats instead", self.key, error_text(err))
            return False
        except redis.RedisError:
            return None
        info = as_dict(reply)
        if self.limit == 1 and int((info or {}).get("limit", 1)) == 1:
            self._seen = self.token
            return holder(info) != self.token
        # Limit > 1: WATCH answers at every grant and lease end of any holder
        # (or the TIMEOUT); pass back what it saw, and ask whether this lease
        # is still live (a NOTHELD is found out by the beat).
        now = seen(info)
        if now == self._seen:
            return False
        self._seen = now
        try:
            beater.execute_command("HBLOCK.CHECK", self.key, self.owner, self.token)
        except redis.ResponseError as err:
            if is_not_held(err):
                return True
            if is_transient(err):
                return None
            return False
        except redis.RedisError:
            return None
        return False

    @staticmethod
    def _limit_args(limit: int) -> List[Any]:
        """ACQUIRE's LIMIT, left out for 1 (the server's default)."""
        return [] if limit == 1 else ["LIMIT", limit]

    def _beat_and_rebind(self, conn: "redis.Redis[Any]") -> None:
        """BEAT, then bind the lease to ``conn``: the holder's ACQUIRE with
        BIND renews it under the same token. Raises NOTHELD otherwise."""
        conn.execute_command("HBLOCK.BEAT", self.key, self.owner, self.token)
        rebind = ["HBLOCK.ACQUIRE", self.key, self.owner, "BIND", self.bind_ms]
        try:
            token = conn.execute_command(*rebind, *self._limit_args(self.limit))
        except redis.ResponseError as err:
            if "does not match the lock's limit" not in str(err):
                raise
            # HBLOCK.LIMIT changed the limit since the grant: re-bind under
            # the lock's (the lease is the same).
            info = as_dict(conn.execute_command("HBLOCK.INFO", self.key)) or {}
            token = conn.execute_command(*rebind, *self._limit_args(int(info.get("limit", 1))))
        if token is not None and int(token) == self.token:
            return
        if token is not None:  # a new lease of ours: the old one had just ended
            conn.execute_command("HBLOCK.RELEASE", self.key, self.owner, token)
        raise redis.ResponseError("NOTHELD the lease ended while re-binding")

    def _late_reason(self) -> str:
        return f"no beat acknowledged for {self._lease:g} s ({self._failing or 'no reply'})"

    def _notice_lost(self) -> None:
        """Marks (and logs) a lease whose deadline passed before the beat
        thread said so: the ``lost`` line comes once, from whoever notices
        first (the beat thread, ``check()``, ``release()``, ``run``)."""
        if self._reason is None and self._deadline is not None and time.monotonic() >= self._deadline:
            self._mark_lost(self._late_reason())

    def _mark_lost(self, reason: str, kind: type = LeaseLost) -> None:
        with self._guard:
            if self._reason is not None:
                return
            self._reason = reason
            self._lost_as = kind
        log.warning("lost %s: %s", self.key, reason)
        if self._on_lost is not None:
            try:
                self._on_lost(self)
            except Exception:  # the callback's own error must not go unseen
                log.exception("on_lost of %s raised", self.key)

    # -- state -------------------------------------------------------------

    @property
    def lost(self) -> bool:
        """True once NOTHELD was answered, the lease was released, or the
        client-side deadline passed without an acknowledged beat."""
        if self._reason is not None:
            return True
        return self._deadline is not None and time.monotonic() >= self._deadline

    @property
    def valid_until(self) -> Optional[float]:
        """The ``time.monotonic()`` until which the lease is valid from this
        process's view (send time of the last acknowledged beat + interval *
        misses); work must be done by then. None before acquiring."""
        return self._deadline

    @property
    def lost_reason(self) -> Optional[str]:
        if self._reason is not None:
            return self._reason
        if self.lost:
            return self._late_reason()
        return None

    def check(self) -> None:
        """Raises ``LeaseLost`` unless the lease is held and valid now
        (``NotHeld`` after a NOTHELD, ``CheckFailed`` after ``run``'s health
        check failed)."""
        if self.token is None:
            raise LeaseLost(f"{self.key}: not acquired")
        self._notice_lost()
        if self.lost:
            kind = self._lost_as if self._reason not in (None, "released") else LeaseLost
            raise kind(f"{self.key}: {self.lost_reason}")

    # -- fenced writes -----------------------------------------------------

    def fenced(self, *command: Any) -> Any:
        """Runs ``command`` on the caller's client as ``HBLOCK.FENCED key
        owner token *command``: applied only while this lease is the live one
        by the server's clock. Returns the command's raw reply (its own
        errors, e.g. WRONGTYPE, are raised as redis-py raises them); a
        refusal (NOTHELD) marks the lease lost and raises ``NotHeld``."""
        if self.token is None:
            raise LeaseLost(f"{self.key}: not acquired")
        try:
            return self._client.execute_command("HBLOCK.FENCED", self.key, self.owner, self.token, *command)
        except redis.ResponseError as err:
            if is_not_held(err):
                raise self.refused(str(err)) from err
            raise

    def pipeline(self, transaction: bool = True) -> "FencedPipeline":
        """A redis-py pipeline on the caller's client whose every queued
        command is sent as ``HBLOCK.FENCED key owner token <command>``
        (``transaction=True``: in MULTI/EXEC, so all or none are applied).
        Replies go through redis-py's usual parsing of each wrapped command;
        a NOTHELD among the replies marks the lease lost and raises
        ``NotHeld`` from ``execute()``."""
        if self.token is None:
            raise LeaseLost(f"{self.key}: not acquired")
        return FencedPipeline(self, self._client, transaction)

    def refused(self, text: str) -> NotHeld:
        """The NotHeld for a fenced write refused with ``text``; marks the lease lost."""
        self._mark_lost(text, NotHeld)
        return NotHeld(f"{self.key}: {text}")

    # -- releasing ---------------------------------------------------------

    def release(self) -> bool:
        """Stop beating and release; True when this ended the lease."""
        with self._guard:
            if self.token is None or self._released:
                return False
            self._released = True
        # Stop first, release next (a beat thread waiting in WATCH wakes at
        # once), then wait for the thread.
        self._stop.set()
        self._notice_lost()
        with self._guard:
            was_lost = self._reason is not None or self.lost
            if self._reason is None:
                self._reason = "released"
        conn = self._connection(max(self._interval, 1.0))
        try:
            released = conn.execute_command("HBLOCK.RELEASE", self.key, self.owner, self.token) == 1
        except redis.RedisError as err:
            log.warning("%s: %s: release failed: %s", self.key, self.url, error_text(err))
            return False
        finally:
            conn.connection_pool.disconnect()
            if self._thread is not None:
                self._thread.join()
        if released:
            log.info("released %s token=%d", self.key, self.token)
        elif not was_lost:
            log.warning("lost %s: token=%d was no longer held", self.key, self.token)
        return released

    def __enter__(self) -> "Lease":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"Lease(key={self.key!r}, owner={self.owner!r}, token={self.token}, lost={self.lost})"
