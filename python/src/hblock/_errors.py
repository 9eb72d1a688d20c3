"""The package's exceptions, and which server errors are fatal.

Errors are classified once, with the words the CLI uses:

- fatal (``FatalError``): retrying cannot help (authentication, the module
  missing, an ACL refusal, a key of another type, a ``limit`` that does not
  match the lock's, a bad URL or Sentinel configuration); raised at once,
  naming the masked URL and what to do.
- transient: connection refused/reset/closed, timeouts, LOADING, TRYAGAIN,
  MASTERDOWN, CLUSTERDOWN, READONLY (after a failover), BUSY, no Sentinel
  answering; retried under the fault policy.
"""

from typing import Any, Dict, Optional

import redis

HINT_NOAUTH = ("the server needs a password: put it in the URL (redis://:PASSWORD@host:port) "
               "or in HBLOCK_REDIS_URL")
HINT_WRONGPASS = "wrong user name or password in the URL"
HINT_MODULE = "is the hblock module loaded? (loadmodule /path/to/libhblock.so)"
HINT_NOPERM = "the ACL user may not run this command or use this key: grant it the hblock commands and the key"
HINT_WRONGTYPE = "the key holds another type, not an hblock lock"
HINT_URL = "check the URL"
HINT_LIMIT = ("every holder and waiter of a lock gives the same limit: use the lock's (hblock info KEY shows it), "
              "or change it with HBLOCK.LIMIT KEY N")


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


class NotHeld(LeaseLost):
    """The server answered NOTHELD: this lease is not the live one (a fenced
    write refused, or a beat). The lease is marked lost."""


class CheckFailed(LeaseLost):
    """``run``'s health check failed ``check_failures`` times in a row: the
    work was stopped as on a lost lease and the lock released (the CLI's
    ``hblock run --check`` exits 5 for the same)."""


class FatalError(Exception):
    """An error that retrying cannot cure (see the module docs); the message
    is ``KEY: MASKED_URL: ERROR: HINT``. ``key``, ``url`` (masked), ``error``
    (the server's or redis-py's text) and ``hint`` are attributes; the
    redis-py exception is ``__cause__``."""

    def __init__(self, key: str, url: str, error: str, hint: str) -> None:
        super().__init__(f"{key}: {url}: {error}: {hint}")
        self.key = key
        self.url = url
        self.error = error
        self.hint = hint


def error_text(err: BaseException) -> str:
    """The error as the server sent it: redis-py strips some codes
    (``WRONGPASS``, ``NOAUTH``, ``NOPERM``, ``LOADING``, ...) from the message."""
    text = str(err).strip()
    code = getattr(err, "status_code", None)
    if code and not text.startswith(code) and code != "ERR":
        return f"{code} {text}"
    return text


def fatal_hint(err: BaseException) -> Optional[str]:
    """The hint when ``err`` is fatal, else None (transient or not ours to judge)."""
    text = str(err)
    lower = text.lower()
    code = getattr(err, "status_code", None) or text.split(" ", 1)[0]
    if isinstance(err, redis.AuthenticationError) or code in ("NOAUTH", "WRONGPASS"):
        if code == "NOAUTH" or "authentication required" in lower:
            return HINT_NOAUTH
        return HINT_WRONGPASS
    if "protocol error: unauthenticated" in lower or "authentication required" in lower:
        return HINT_NOAUTH
    if isinstance(err, redis.exceptions.AuthenticationWrongNumberOfArgsError) or (
            "auth" in lower and ("without any password configured" in lower or "no password is set" in lower)):
        return HINT_WRONGPASS
    if isinstance(err, redis.exceptions.NoPermissionError) or code == "NOPERM":
        return HINT_NOPERM
    if isinstance(err, redis.ResponseError):
        if "unknown command" in lower and "'hblock." in lower:
            return HINT_MODULE
        if code == "WRONGTYPE":
            return HINT_WRONGTYPE
        if "does not match the lock's limit" in lower:
            return HINT_LIMIT
        if code in ("MOVED", "ASK", "CROSSSLOT") or "db index is out of range" in lower \
                or "invalid db index" in lower:
            return HINT_URL
    return None


def is_not_held(err: BaseException) -> bool:
    return isinstance(err, redis.ResponseError) and str(err).startswith("NOTHELD")


def is_transient(err: BaseException) -> bool:
    """Connection-level errors and the codes a server answers while it
    cannot serve for a while; never a fatal one."""
    if fatal_hint(err) is not None:
        return False
    if isinstance(err, (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError)):
        return True
    if isinstance(err, redis.ResponseError):
        code = getattr(err, "status_code", None) or str(err).split(" ", 1)[0]
        return code in ("LOADING", "TRYAGAIN", "MASTERDOWN", "CLUSTERDOWN", "READONLY", "BUSY")
    return False
