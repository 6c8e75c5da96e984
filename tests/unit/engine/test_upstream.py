"""Upstream lifecycle findings (pure) and the watcher's memory between checks, with a fake fetch at our seam."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from reconciler.api.conditions import ConditionType
from reconciler.engine.statuses import conditions as cond
from reconciler.engine.upstream import (
    UPSTREAM_REGISTRY,
    UpstreamFinding,
    UpstreamReason,
    UpstreamRef,
    UpstreamWatcher,
    kept_upstream,
    plan_upstream_findings,
    upstream_condition,
    upstream_refs,
    with_upstream,
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


MARKS = {UPSTREAM_REGISTRY: REGISTRY, "mcp.reconciler.dev/upstream-name": "io.example/weather"}
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("reason", "status"),
    [(UpstreamReason.ACTIVE, "True"), (UpstreamReason.DEPRECATED, "False"), (UpstreamReason.DELETED, "False")],
)
def test_each_finding_is_one_upstream_condition_with_its_message(reason: UpstreamReason, status: str) -> None:
    finding = UpstreamFinding(REF, reason, "io.example/weather ...: the publisher's words")
    assert upstream_condition(finding) == {
        "type": "Upstream",
        "status": status,
        "reason": str(reason),
        "message": "io.example/weather ...: the publisher's words",
    }


def test_with_upstream_keeps_everything_else_and_the_same_finding_changes_nothing() -> None:
    previous = {
        "observedGeneration": 3,
        "registryId": "7",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Available",
                "message": "",
                "observedGeneration": 3,
                "lastTransitionTime": "2025-12-01T00:00:00Z",
            },
        ],
    }
    deleted = with_upstream(previous, cond.upstream_deleted("gone"), now=T0)
    assert deleted["registryId"] == "7" and deleted["observedGeneration"] == 3
    assert {c["type"]: (c["status"], c["lastTransitionTime"]) for c in deleted["conditions"]} == {
        "Ready": ("True", "2025-12-01T00:00:00Z"),
        "Upstream": ("False", "2026-01-01T00:00:00Z"),
    }
    assert with_upstream(deleted, cond.upstream_deleted("gone"), now=T0 + dt.timedelta(hours=1)) == deleted
    deprecated = with_upstream(deleted, cond.upstream_deprecated("old"), now=T0 + dt.timedelta(hours=1))
    assert cond.find(deprecated["conditions"], ConditionType.UPSTREAM)["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert "observedGeneration" not in with_upstream(None, cond.upstream_active("ok"), now=T0)


@pytest.mark.parametrize(
    ("annotations", "kept"),
    [(MARKS, True), ({UPSTREAM_REGISTRY: REGISTRY}, False), ({}, False), (None, False)],
)
def test_a_pass_keeps_the_upstream_condition_only_while_the_object_names_its_registry(
    annotations: dict[str, str] | None, kept: bool
) -> None:
    previous = with_upstream(None, cond.upstream_deprecated("old"), now=T0)
    assert kept_upstream(previous, annotations) == ([cond.upstream_deprecated("old")] if kept else [])
    assert kept_upstream(None, annotations) == []
