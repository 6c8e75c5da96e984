"""Upstream lifecycle findings (pure) and the watcher's memory between checks, with a fake fetch at our seam."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from reconciler.engine.upstream import (
    UpstreamReason,
    UpstreamRef,
    UpstreamWatcher,
    plan_upstream_findings,
    upstream_refs,
)
from reconciler.errors import RetryableError
from reconciler.registry.records import SourceRef

REGISTRY = "https://registry.example.com"
REF = UpstreamRef(SourceRef("MCPServer", "acme", "weather"), REGISTRY, "io.example/weather", "1.0.0")


def entry(status: str, *, version: str = "1.0.0", message: str | None = None) -> dict[str, Any]:
    official: dict[str, Any] = {"status": status}
    if message:
        official["statusMessage"] = message
    return {
        "server": {"name": "io.example/weather", "version": version},
        "_meta": {"io.modelcontextprotocol.registry/official": official},
    }


def test_findings_carry_the_publishers_status_message() -> None:
    [deprecated] = plan_upstream_findings([REF], [entry("deprecated", message="use io.example/weather2")])
    [deleted] = plan_upstream_findings([REF], [entry("deleted")])
    [newer] = plan_upstream_findings([REF], [entry("active", version="1.1.0")])
    [quiet] = plan_upstream_findings([REF], [])

    assert deprecated.reason is UpstreamReason.DEPRECATED
    assert deprecated.message == f"io.example/weather is deprecated at {REGISTRY}: use io.example/weather2"
    assert deleted.reason is UpstreamReason.DELETED
    assert newer.reason is UpstreamReason.ACTIVE
    assert newer.message.endswith("(version 1.1.0; imported 1.0.0)")
    assert quiet.reason is UpstreamReason.ACTIVE


def test_only_annotated_servers_are_followed() -> None:
    marks = {"mcp.reconciler.dev/upstream-registry": REGISTRY, "mcp.reconciler.dev/upstream-name": "io.example/w"}

    refs = upstream_refs([(SourceRef("MCPServer", "a", "w"), marks), (SourceRef("MCPServer", "a", "x"), {})])

    assert refs == [UpstreamRef(SourceRef("MCPServer", "a", "w"), REGISTRY, "io.example/w", None)]


def test_the_watcher_asks_for_changes_since_its_last_check_and_keeps_what_it_learnt() -> None:
    answers: list[Any] = [[entry("deprecated", message="moving")], [], RetryableError("registry down")]
    asked: list[dt.datetime | None] = []

    async def fetch(registry: str, since: dt.datetime | None) -> list[Any]:
        asked.append(since)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    day = [dt.datetime(2026, 1, n, tzinfo=dt.UTC) for n in (1, 2, 3)]
    watcher = UpstreamWatcher(fetch)
    late = UpstreamRef(SourceRef("MCPServer", "other", "weather"), REGISTRY, "io.example/weather")

    first, _ = asyncio.run(watcher.check([REF], now=lambda: day[0]))
    second, _ = asyncio.run(watcher.check([REF, late], now=lambda: day[1]))
    third, errors = asyncio.run(watcher.check([REF], now=lambda: day[2]))

    assert asked == [None, day[0], day[1]]
    assert [f.reason for f in (*first, *second, *third)] == [UpstreamReason.DEPRECATED] * 4
    assert errors == ["registry down"]


def test_the_watcher_asks_a_registry_at_most_once_per_refresh() -> None:
    asked: list[dt.datetime | None] = []

    async def fetch(registry: str, since: dt.datetime | None) -> list[Any]:
        asked.append(since)
        return [entry("deleted")]

    watcher = UpstreamWatcher(fetch, refresh_seconds=3600)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for minutes in (0, 10, 59, 61):
        [finding], _ = asyncio.run(watcher.check([REF], now=lambda m=minutes: start + dt.timedelta(minutes=m)))
        assert finding.reason is UpstreamReason.DELETED

    assert asked == [None, start]
