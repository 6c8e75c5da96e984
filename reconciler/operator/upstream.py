"""Upstream lifecycle in the cluster: a kopf timer on MCPServers imported from a Registry API asks that registry.

`handlers.build_handlers` registers the timer (only on objects with the `mcp.reconciler.dev/upstream-registry`
annotation) and calls `UpstreamChecker.check` at `OperatorConfig.upstream_interval`. The checker shares one
`engine.upstream.UpstreamWatcher` across objects, so each registry is listed at most once per interval, with
`updated_since` after the first time, through the SSRF-guarded, bounded `probe.registry_client`. Each finding
goes to `record` (`ObjectReconciler.record_upstream`) as the object's `Upstream` condition: `UpstreamDeprecated`
or `UpstreamDeleted` with the publisher's status message, `UpstreamActive` when it is (again) active. The
recorder writes status only when the condition changed and posts the Event of the change (`events.upstream_events`).
An unreachable registry is logged and changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from reconciler.engine.statuses.conditions import ConditionDict
from reconciler.engine.upstream import UpstreamWatcher, upstream_condition, upstream_refs
from reconciler.probe import ProbeSettings
from reconciler.probe.registry_client import fetch_changes
from reconciler.registry.records import SourceRef

log = logging.getLogger("mcp_reconciler.operator")

RecordUpstream = Callable[[Mapping[str, Any], ConditionDict], Awaitable[None]]
"""(the object's body, its new `Upstream` condition) → written if it changed: `ObjectReconciler.record_upstream`."""


class UpstreamChecker:
    """One per operator: the shared watcher, and where the findings go."""

    def __init__(
        self, *, record: RecordUpstream, allow_private: bool, interval: float, token: str | None = None
    ) -> None:
        self.interval = interval
        settings = ProbeSettings(allow_private_networks=allow_private)

        async def fetch(registry: str, since: dt.datetime | None) -> list[Any]:
            return await fetch_changes(
                registry, since=since, settings=settings, allow_private=allow_private, token=token
            )

        self._record = record
        self._watcher = UpstreamWatcher(fetch, refresh_seconds=interval * 0.9)
        self._lock = asyncio.Lock()

    async def check(self, body: Mapping[str, Any]) -> None:
        metadata = body.get("metadata", {})
        source = SourceRef("MCPServer", metadata.get("namespace", ""), metadata.get("name", ""))
        refs = upstream_refs([(source, metadata.get("annotations") or {})])
        if not refs:
            return
        async with self._lock:  # timers of many objects: one listing per registry, not one each
            findings, errors = await self._watcher.check(refs)
        for error in errors:
            log.warning("upstream check of %s/%s: %s", source.namespace, source.name, error)
        for finding in findings:
            await self._record(body, upstream_condition(finding))
