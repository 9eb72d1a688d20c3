"""Heartbeat leases on the hblock Redis module.

``Lease`` acquires a lock (waiting in the server's FIFO queue), beats it from a
background thread and releases it; ``run`` keeps a function running as the
single active instance. See docs/python.md in the repository.
"""

from ._errors import CheckFailed, FatalError, LeaseLost, NotAcquired, NotHeld
from ._fenced import FencedPipeline
from ._lease import Lease
from ._run import run
from ._watch import watch

__all__ = ["CheckFailed", "FatalError", "FencedPipeline", "Lease", "LeaseLost", "NotAcquired", "NotHeld", "run",
           "watch"]
