"""Upstream lifecycle in the cluster: MCPServers imported from a Registry API are checked against that registry.

Each MCPServer with the `mcp.reconciler.dev/upstream-registry` annotation is checked when the watch first reports
it (or when the annotation appears) and then every `OperatorConfig.upstream_interval` seconds, from one loop of
our own (`resyncing.ResyncScheduler`) fed by the object index (`handlers.py` calls `track` as it indexes each
object). Not a kopf timer: kopf keeps a live copy of every body of a resource that has a timer, filtered out or
not (its daemons' memory), about 12 KB per object, which at 10,000 servers outweighed the rest of the operator.
The checker shares one `engine.upstream.UpstreamWatcher` across objects, so each registry is listed at most once
per interval, with `updated_since` after the first time, through the SSRF-guarded, bounded
`probe.registry_client`. Each finding goes to `record` (`ObjectReconciler.record_upstream`) as the object's
`Upstream` condition: `UpstreamDeprecated` or `UpstreamDeleted` with the publisher's status message,
`UpstreamActive` when it is (again) active. The recorder writes status only when the condition changed and posts
the Event of the change (`events.upstream_events`). An unreachable registry is logged and changes nothing. Like
the periodic passes, checks run only while the peering gate says this instance is the active one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from reconciler.engine.statuses.conditions import ConditionDict
from reconciler.engine.upstream import UPSTREAM_REGISTRY, UpstreamWatcher, upstream_condition, upstream_refs
from reconciler.operator.objects import IndexedObjects
from reconciler.operator.peering import AlwaysOpen, ResyncGate
from reconciler.operator.resyncing import ResyncScheduler
from reconciler.probe import ProbeSettings
from reconciler.probe.registry_client import fetch_changes
from reconciler.registry.records import SourceRef

log = logging.getLogger("mcp_reconciler.operator")

RecordUpstream = Callable[[Mapping[str, Any], ConditionDict], Awaitable[None]]
"""(the object's body, its new `Upstream` condition) → written if it changed: `ObjectReconciler.record_upstream`."""
UPSTREAM_KIND = "MCPServer"
"""The only kind imported from a Registry API."""
CONCURRENT_CHECKS = 8
"""Checks in flight at once: the listing is shared (one at a time under a lock); what runs side by side is
recording the findings, one status write each."""


class UpstreamChecker:
    """One per operator: the shared watcher, the schedule of the imported servers, and where the findings go."""

    def __init__(
        self,
        *,
        record: RecordUpstream,
        allow_private: bool,
        interval: float,
        token: str | None = None,
        gate: ResyncGate | None = None,
    ) -> None:
        self.interval = interval
        settings = ProbeSettings(allow_private_networks=allow_private)

        async def fetch(registry: str, since: dt.datetime | None) -> list[Any]:
            return await fetch_changes(
                registry, since=since, settings=settings, allow_private=allow_private, token=token
            )

        self._record = record
        self._gate: ResyncGate = gate or AlwaysOpen()
        self._watcher = UpstreamWatcher(fetch, refresh_seconds=interval * 0.9)
        self._lock = asyncio.Lock()
        self._schedule = ResyncScheduler(self._scheduled_check, concurrency=CONCURRENT_CHECKS)
        self._objects: IndexedObjects | None = None

    def track(self, body: Mapping[str, Any]) -> None:
        """An object the watch reports: an imported MCPServer not yet scheduled is checked at once, then every
        interval (a known one keeps its schedule; one whose annotation is gone drops out at its next check)."""
        metadata = body.get("metadata") or {}
        uid = metadata.get("uid")
        if not uid or not _imported(body) or metadata.get("deletionTimestamp"):
            return
        self._schedule.track(str(uid), 0.0)

    def tracks(self, uid: str) -> bool:
        """`uid` has checks scheduled."""
        return uid in self._schedule

    @property
    def started(self) -> bool:
        return self._objects is not None

    def start(self, objects: IndexedObjects) -> None:
        """Run the checks, reading each object's freshest body from `objects` (once; later calls change nothing)."""
        if self._objects is None:
            self._objects = objects
            self._schedule.start()

    async def close(self) -> None:
        await self._schedule.stop()

    async def check(self, body: Mapping[str, Any]) -> None:
        """Check one object against its registry now and record what changed."""
        metadata = body.get("metadata", {})
        source = SourceRef(UPSTREAM_KIND, metadata.get("namespace", ""), metadata.get("name", ""))
        refs = upstream_refs([(source, metadata.get("annotations") or {})])
        if not refs:
            return
        async with self._lock:  # checks of many objects: one listing per registry, not one each
            findings, errors = await self._watcher.check(refs)
        for error in errors:
            log.warning("upstream check of %s/%s: %s", source.namespace, source.name, error)
        for finding in findings:
            await self._record(body, upstream_condition(finding))

    async def _scheduled_check(self, uid: str) -> float | None:
        """One scheduled check; the delay until the next, None once the object is gone, being deleted or no longer
        imported."""
        body = self._objects.body(uid) if self._objects is not None else None
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp") or not _imported(body):
            return None
        if await self._gate.allows(str((body.get("metadata") or {}).get("namespace", ""))):
            await self.check(body)
        return self.interval


def _imported(body: Mapping[str, Any]) -> bool:
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return body.get("kind") == UPSTREAM_KIND and UPSTREAM_REGISTRY in annotations
