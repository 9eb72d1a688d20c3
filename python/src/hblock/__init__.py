"""Heartbeat leases on the hblock Redis module.

``Lease`` acquires a lock (waiting in the server's FIFO queue), beats it from a
background thread and releases it; ``run`` keeps a function running as the
single active instance. See docs/python.md in the repository.
"""

from ._errors import LeaseLost, NotAcquired
from ._lease import Lease
from ._run import run
from ._watch import watch

__all__ = ["Lease", "LeaseLost", "NotAcquired", "run", "watch"]
