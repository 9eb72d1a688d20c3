"""The package's exceptions."""

from typing import Any, Dict, Optional


class NotAcquired(Exception):
    """The lock was not granted (held by another owner, the wait ran out, or
    grants are held back after a failover).

    ``reason``: why, from the lock's HBLOCK.INFO when it was asked: ``"held"``
    (another owner holds it), ``"held-back"`` (grants are held back after a
    failover for ``held_back_ms`` more, ``hblock.failover-delay``), ``"free"``,
    ``"missing"`` (no such key), or None when INFO could not be read.
    ``info``: that INFO as a dict (None for a missing key or no answer)."""

    def __init__(self, message: str, reason: Optional[str] = None,
                 held_back_ms: Optional[int] = None, info: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.held_back_ms = held_back_ms
        self.info = info


class LeaseLost(Exception):
    """The lease is gone (NOTHELD), or may have ended (no beat acknowledged in time)."""
