"""``run``: keep one function running as the single active instance."""

import logging
import threading
from typing import Any, Callable, Optional, TypeVar

import redis

from ._errors import CheckFailed, LeaseLost
from ._lease import Lease

T = TypeVar("T")
log = logging.getLogger("hblock")


def run(client: "redis.Redis[Any]", key: str, fn: Callable[[Lease], T], *,
        check: Optional[Callable[[], Any]] = None, check_every: Optional[float] = None,
        check_timeout: Optional[float] = None, check_failures: Optional[int] = None,
        **lease_options: Any) -> T:
    """Wait for the lease on ``key``, call ``fn(lease)`` while holding it, and
    return what it returns (releasing first).

    When ``fn`` raises ``LeaseLost`` (``lease.check()``), wait for the lease
    again and call ``fn`` again. A KeyboardInterrupt while waiting ends the
    wait (the waiting connection is closed, leaving the queue) and propagates.
    A ``FatalError`` (wrong password, module missing, ...) propagates at once.

    ``check``: a health check, called every ``check_every`` seconds (default:
    the interval) while ``fn`` runs; a call that returns a false value,
    raises, or takes longer than ``check_timeout`` seconds (default: the
    interval) fails. After ``check_failures`` failures in a row (default:
    ``misses``) the lease is marked lost (``lease.lost``; ``lease.check()``
    raises ``CheckFailed``), released at once so a standby takes over, and
    ``run`` raises ``CheckFailed`` when ``fn`` returns, instead of waiting
    again. ``lease_options`` are ``Lease``'s keyword arguments.
    """
    while True:
        with Lease(client, key, **lease_options) as lease:
            checker = None
            if check is not None:
                checker = _HealthCheck(lease, check, check_every, check_timeout, check_failures)
            try:
                result = fn(lease)
            except LeaseLost:
                if checker is not None and checker.failed is not None:
                    raise checker.failed from None
                lease._notice_lost()  # fn saw it first: the lost line before this one
                log.warning("waiting for %s again", key)
                continue
            finally:
                if checker is not None:
                    checker.stop()
            if checker is not None and checker.failed is not None:
                raise checker.failed
            return result


class _HealthCheck:
    """Calls ``check`` from a thread of its own; see ``run``."""

    def __init__(self, lease: Lease, check: Callable[[], Any], every: Optional[float],
                 timeout: Optional[float], failures: Optional[int]) -> None:
        interval = lease.interval_ms / 1000
        self.every = interval if every is None else every
        self.timeout = interval if timeout is None else timeout
        self.failures = lease.misses if failures is None else failures
        if self.every <= 0 or self.timeout <= 0 or self.failures < 1:
            raise ValueError("check_every and check_timeout must be above 0, check_failures 1 or more")
        self.failed: Optional[CheckFailed] = None
        self._lease = lease
        self._check = check
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"hblock check {lease.key}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _once(self) -> Optional[str]:
        """None when the check passed, else why it failed."""
        outcome: dict = {}

        def call() -> None:
            try:
                outcome["value"] = self._check()
            except Exception as err:  # a failed check, whatever it raised
                outcome["error"] = err

        worker = threading.Thread(target=call, name=f"hblock check call {self._lease.key}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            return f"timed out after {self.timeout:g} s"
        if "error" in outcome:
            return f"raised {outcome['error']!r}"
        if not outcome.get("value"):
            return f"returned {outcome.get('value')!r}"
        return None

    def _loop(self) -> None:
        row = 0
        while not self._stop.wait(self.every):
            why = self._once()
            if why is None:
                row = 0
                continue
            row += 1
            log.debug("%s: health check failed (%d in a row): %s", self._lease.key, row, why)
            if row >= self.failures and not self._stop.is_set():
                reason = f"health check failed {row} times in a row (last: {why})"
                self.failed = CheckFailed(f"{self._lease.key}: {reason}")
                self._lease._mark_lost(reason, CheckFailed)
                self._lease.release()
                return
