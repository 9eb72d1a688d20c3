"""A failing condition, logged once when it starts and once when it ends."""

import logging
import re
import time
from typing import Optional

from ._errors import error_text

log = logging.getLogger("hblock")

# Control characters (C0, DEL, C1) and line/paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with control characters escaped as ``repr`` does (``\\n``,
    ``\\x1b``), so an owner, key or error cannot split a log line or
    drive a terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


class _Printable(logging.Filter):
    """Escapes the text arguments of the package's log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(printable(str(a)) if isinstance(a, (str, BaseException)) else a
                                for a in record.args)
        return True


log.addFilter(_Printable())


class Outage:
    """Failures of one kind of call (waiting, beating, watching) of one key
    on one server: the first logs ``KEY: URL failing: ERROR; retrying`` at
    WARNING, the others only at DEBUG; the first success after them logs
    ``KEY: URL recovered after S s``."""

    def __init__(self, key: str, url: str) -> None:
        self.key = key
        self.url = url
        self.since: Optional[float] = None
        self.last: Optional[str] = None  # the last error's text while failing

    @property
    def failing(self) -> bool:
        return self.since is not None

    def failed(self, err: BaseException) -> None:
        self.last = error_text(err)
        if self.since is None:
            self.since = time.monotonic()
            log.warning("%s: %s failing: %s; retrying", self.key, self.url, error_text(err))
        else:
            log.debug("%s: %s still failing: %s; retrying", self.key, self.url, error_text(err))

    def ok(self) -> None:
        if self.since is not None:
            log.warning("%s: %s recovered after %.1f s", self.key, self.url, time.monotonic() - self.since)
            self.since = None

    def end(self) -> None:
        """Forget the condition without a "recovered" line (the lease was
        lost, or the caller stopped)."""
        self.since = None
