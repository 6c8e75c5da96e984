"""Upstream lifecycle in the cluster: a kopf timer on MCPServers imported from a Registry API asks that registry.

`handlers.build_handlers` registers the timer (only on objects with the `mcp.reconciler.dev/upstream-registry`
annotation) and calls `UpstreamChecker.check` at `OperatorConfig.upstream_interval`. The checker shares one
`engine.upstream.UpstreamWatcher` across objects, so each registry is listed at most once per interval, with
`updated_since` after the first time, through the SSRF-guarded, bounded `probe.registry_client`. When an
object's finding changes it posts an Event: `UpstreamDeprecated` or `UpstreamDeleted` (Warning) with the
publisher's status message, `UpstreamActive` (Normal) when it comes back. An unreachable registry is logged and
changes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from reconciler.engine.upstream import UpstreamReason, UpstreamWatcher, upstream_refs
from reconciler.operator.events import NORMAL, WARNING, EventSink, PlannedEvent, involved_object
from reconciler.probe import ProbeSettings
from reconciler.probe.registry_client import fetch_changes
from reconciler.registry.records import SourceRef

log = logging.getLogger("mcp_reconciler.operator")


class UpstreamChecker:
    """One per operator: the shared watcher, and the last finding reported for each object (by uid)."""

    def __init__(self, *, events: EventSink, allow_private: bool, interval: float, token: str | None = None) -> None:
        self.interval = interval
        settings = ProbeSettings(allow_private_networks=allow_private)

        async def fetch(registry: str, since: dt.datetime | None) -> list[Any]:
            return await fetch_changes(
                registry, since=since, settings=settings, allow_private=allow_private, token=token
            )

        self._events = events
        self._watcher = UpstreamWatcher(fetch, refresh_seconds=interval * 0.9)
        self._reported: dict[str, UpstreamReason] = {}
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
        uid = str(metadata.get("uid") or f"{source.namespace}/{source.name}")
        for finding in findings:
            previous = self._reported.get(uid)
            if finding.reason is previous or (previous is None and finding.reason is UpstreamReason.ACTIVE):
                self._reported[uid] = finding.reason
                continue
            self._reported[uid] = finding.reason
            kind = NORMAL if finding.reason is UpstreamReason.ACTIVE else WARNING
            involved = involved_object(
                kind="MCPServer", namespace=source.namespace, name=source.name, uid=metadata.get("uid")
            )
            self._events.post(involved, PlannedEvent(kind, str(finding.reason), finding.message))
