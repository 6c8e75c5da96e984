"""Which objects the upstream checker schedules (`operator/upstream.py`): imported MCPServers only, checked as soon
as they are indexed and then every interval, and dropped once the annotation is gone. The registry is a closed port
on 127.0.0.1, so every check ends in the logged error, which is how the checks are counted here."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from reconciler.engine.statuses.conditions import ConditionDict
from reconciler.operator.upstream import UpstreamChecker
from tests.unit.operator.bodies import obj, run, server


class Index:
    """The object index as the checker reads it: bodies by uid, replaced as the watch would."""

    def __init__(self) -> None:
        self.bodies: dict[str, Mapping[str, Any]] = {}

    def body(self, key: str) -> Mapping[str, Any] | None:
        return self.bodies.get(key)

    def peers(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return list(self.bodies.values())


def closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("not within 10 s")


def imported(name: str, registry: str) -> dict[str, Any]:
    body = server(name)
    body["metadata"]["annotations"] = {
        "mcp.reconciler.dev/upstream-registry": registry,
        "mcp.reconciler.dev/upstream-name": f"acme/{name}",
    }
    return body


def test_imported_servers_are_checked_at_once_then_every_interval_until_no_longer_imported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = closed_port()
    found: list[ConditionDict] = []

    async def record(body: Mapping[str, Any], condition: ConditionDict) -> None:
        found.append(condition)

    def checks(name: str) -> int:
        return sum(1 for line in caplog.messages if line.startswith(f"upstream check of ns/{name}:"))

    async def scenario() -> None:
        checker = UpstreamChecker(record=record, allow_private=True, interval=0.2)
        index = Index()
        bodies = [imported("docs", registry), server("plain"), obj("MCPConnection", "docs-c", {"serverRef": "docs"})]
        for body in bodies:
            index.bodies[body["metadata"]["uid"]] = body
            checker.start(index)
            checker.track(body)
        assert [checker.tracks(body["metadata"]["uid"]) for body in bodies] == [True, False, False]
        await until(lambda: checks("docs") >= 1)  # at once: the interval is not waited first
        await until(lambda: checks("docs") >= 3)  # then again, every interval
        assert checks("plain") == 0
        plain = index.bodies["uid-plain"] = imported("plain", registry)  # the annotation appears
        checker.track(plain)
        await until(lambda: checks("plain") >= 1)
        index.bodies["uid-docs"] = server("docs")  # the annotation is gone
        await until(lambda: not checker.tracks("uid-docs"))
        seen = checks("docs")
        await asyncio.sleep(0.6)
        assert checks("docs") == seen, "no more checks"
        await checker.close()

    with caplog.at_level(logging.WARNING, logger="mcp_reconciler.operator"):
        run(scenario())
    assert found == [], "an unreachable registry changes nothing"
