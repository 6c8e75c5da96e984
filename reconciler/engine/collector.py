"""Pause CPython's cyclic garbage collector for the length of one short-lived reconcile pass.

Used by `reconciling.reconcile`, the entry point of the CLI's `plan` and `apply` (and of the registry bench), not by
the operator's passes. A cold pass over 10,000 objects allocates hundreds of thousands of container objects and
frees almost none of them until it ends, so the collector's automatic runs (about 750 young, 70 middle and 3 full
ones per pass) scan a growing heap to find next to no garbage: about a third of the pass's CPU time. Paused, the objects
stay in the youngest generation, and one collection of that generation when the pass ends finds the pass's cycles
for a fraction of the cost of a full collection.

The pause is process-wide (so is the collector): it is counted, so nested and concurrent users share it and the
collector runs again only when the last one leaves; a collector that was already disabled when the first user came
is left disabled.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_holders = 0
_paused_here = False
"""True while the collector is disabled by this module (not by whoever disabled it before)."""


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No automatic cyclic collection inside; afterwards the collector is as it was, and the young garbage gone."""
    global _holders, _paused_here
    with _lock:
        if _holders == 0 and gc.isenabled():
            gc.disable()
            _paused_here = True
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _paused_here:
                _paused_here = False
                gc.collect(0)
                gc.enable()


@contextlib.contextmanager
def collection_resumed() -> Iterator[None]:
    """Inside a pause, let the collector run again for a stretch that makes garbage as it goes (probing waits on
    the network and leaves cycles behind per request); outside one, nothing changes."""
    global _paused_here
    with _lock:
        resumed = _paused_here and not gc.isenabled()
        if resumed:
            gc.enable()
    try:
        yield
    finally:
        if resumed:
            with _lock:
                if _holders > 0 and _paused_here:
                    gc.disable()
