"""A failing condition, logged once when it starts and once when it ends."""

import logging
import time
from typing import Optional

from ._errors import error_text

log = logging.getLogger("hblock")


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
