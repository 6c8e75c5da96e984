"""When each object's next periodic pass is due: one heap and one loop for every object the operator serves.

A kopf daemon per object costs about 40 KB (its task, stopper, logger and kopf's live copy of the body), which at
1,000 objects was the largest share of the operator's memory after imports. Here an object costs one dict slot
and one heap entry: the loop sleeps until the earliest due time, starts at most `concurrency` passes at once, and
reschedules each object with the delay its pass returns. What a pass does, and how long to wait after it, is the
caller's (`ObjectReconciler.resync_pass`); this module only keeps time.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("mcp_reconciler.operator")

ResyncPass = Callable[[str], Awaitable[float | None]]
"""One pass for a key; returns the seconds until the next, or None when the key should be dropped."""


class ResyncScheduler:
    """Due times per key (an object's uid), and the loop that runs the passes that are due."""

    def __init__(self, run_pass: ResyncPass, *, concurrency: int, retry_after_bug: float = 60.0) -> None:
        self._run_pass = run_pass
        self._concurrency = concurrency
        self._retry_after_bug = retry_after_bug
        self._due: dict[str, float | None] = {}
        """Key → loop time of its next pass; None while that pass runs. A forgotten key is absent."""
        self._heap: list[tuple[float, int, str]] = []
        """(due, tie-breaker, key); entries whose due time no longer matches `_due` are stale and skipped."""
        self._order = itertools.count()
        self._sooner: dict[str, float] = {}
        """Keys asked to hurry while their pass was running: the latest loop time their next pass may start."""
        self._running: dict[str, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def track(self, key: str, delay: float) -> bool:
        """Schedule `key`'s first pass `delay` seconds from now; False (and nothing changes) if already known."""
        if key in self._due:
            return False
        self._schedule(key, self._now() + delay)
        return True

    def hurry(self, key: str, delay: float) -> None:
        """Bring `key`'s next pass forward to at most `delay` seconds from now (a pass in flight: the next one)."""
        if key not in self._due:
            return
        at = self._now() + delay
        due = self._due[key]
        if due is None:
            self._sooner[key] = min(at, self._sooner.get(key, at))
        elif at < due:
            self._schedule(key, at)

    def postpone(self, key: str, delay: float) -> None:
        """A pass of `key` just ran outside the schedule (a watch event, a Secret's change): its next periodic pass
        comes no sooner than `delay` from now. A pass in flight keeps the delay it will return."""
        due = self._due.get(key)
        at = self._now() + delay
        if due is not None and due < at:
            self._schedule(key, at)

    def waiting(self, key: str) -> bool:
        """`key` is scheduled and its periodic pass is not running."""
        return self._due.get(key) is not None

    def forget(self, key: str) -> None:
        """No more passes for `key`; one in flight finishes (the caller guards against acting on a gone object)."""
        self._due.pop(key, None)
        self._sooner.pop(key, None)

    def start(self) -> None:
        """Run the loop in the background until `stop`."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._serve(), name="resync scheduler")

    async def stop(self) -> None:
        """Stop the loop and cancel the passes in flight (the next start redoes whatever they did not finish)."""
        tasks = [*self._running.values(), *([self._loop_task] if self._loop_task is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loop_task = None

    # -- internals ----------------------------------------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _schedule(self, key: str, at: float) -> None:
        self._due[key] = at
        heapq.heappush(self._heap, (at, next(self._order), key))
        if self._heap[0][2] == key:
            self._changed.set()  # the loop may be sleeping towards a later time

    def _next_due(self) -> float | None:
        """The earliest live due time (stale heap entries are dropped on the way)."""
        while self._heap:
            at, _, key = self._heap[0]
            if self._due.get(key) == at:
                return at
            heapq.heappop(self._heap)
        return None

    async def _serve(self) -> None:
        while True:
            self._changed.clear()
            at = self._next_due()
            now = self._now()
            if at is not None and at <= now and len(self._running) < self._concurrency:
                _, _, key = heapq.heappop(self._heap)
                self._due[key] = None
                self._running[key] = asyncio.create_task(self._one(key), name=f"resync {key}")
                continue
            # No due time, or no free slot: sleep until a new due time or a finished pass wakes the loop.
            timeout = None if at is None or len(self._running) >= self._concurrency else at - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)

    async def _one(self, key: str) -> None:
        delay: float | None
        try:
            delay = await self._run_pass(key)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not end the periodic passes of this object
            log.exception("periodic pass of %s failed", key)
            delay = self._retry_after_bug
        finally:
            del self._running[key]
            self._changed.set()  # a slot is free
        sooner = self._sooner.pop(key, None)
        if key not in self._due:
            return  # forgotten meanwhile
        if delay is None:
            del self._due[key]
            return
        at = self._now() + delay
        self._schedule(key, at if sooner is None else min(at, sooner))
