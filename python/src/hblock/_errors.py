"""The package's exceptions."""


class NotAcquired(Exception):
    """The lock was not granted (held by another owner, or the wait ran out)."""


class LeaseLost(Exception):
    """The lease is gone (NOTHELD), or may have ended (no beat acknowledged in time)."""
