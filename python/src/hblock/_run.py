"""``run``: keep one function running as the single active instance."""

import logging
from typing import Any, Callable, TypeVar

import redis

from ._errors import LeaseLost
from ._lease import Lease

T = TypeVar("T")
log = logging.getLogger("hblock")


def run(client: "redis.Redis[Any]", key: str, fn: Callable[[Lease], T], **lease_options: Any) -> T:
    """Wait for the lease on ``key``, call ``fn(lease)`` while holding it, and
    return what it returns (releasing first).

    When ``fn`` raises ``LeaseLost`` (``lease.check()``), wait for the lease
    again and call ``fn`` again. A KeyboardInterrupt while waiting ends the
    wait (the waiting connection is closed, leaving the queue) and propagates.
    ``lease_options`` are ``Lease``'s keyword arguments.
    """
    while True:
        with Lease(client, key, **lease_options) as lease:
            try:
                return fn(lease)
            except LeaseLost as err:
                log.warning("%s: %s; waiting for the lease again", key, err)
