"""`/metrics` and `/healthz`: a real aiohttp server on 127.0.0.1, the registry ping cached and bounded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.serving import RegistryHealth, build_app, start_server
from reconciler.registry import RegistryUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_health_is_cached_and_reports_failures() -> None:
    calls: list[int] = []
    broken = {"value": False}

    def ping() -> None:
        calls.append(1)
        if broken["value"]:
            raise RegistryUnavailable("registry postgresql://u:***@db/x is unavailable: refused")

    clock = Clock()
    health = RegistryHealth(ping, cache_seconds=5, clock=clock)

    async def scenario() -> list[Any]:
        results = [await health.check(), await health.check()]
        broken["value"] = True
        clock.now += 6
        results.append(await health.check())
        return results

    first, cached, failing = asyncio.run(scenario())
    assert first.healthy and cached is first and len(calls) == 2
    assert not failing.healthy and "unavailable" in failing.message


def test_metrics_and_health_endpoints() -> None:
    metrics = OperatorMetrics()
    metrics.reconciles.labels("MCPServer", "changed").inc()
    metrics.drift_repairs.labels("MCPServer").inc()
    metrics.observe_status(
        namespace="ns",
        name="crm",
        before=None,
        after={"tools": {"count": 7}, "lastTest": {"ok": True, "latencyMs": 42}},
    )

    async def scenario() -> tuple[str, int, dict[str, Any]]:
        app = build_app(metrics=metrics, health=RegistryHealth(lambda: None, cache_seconds=0))
        runner, port = await start_server(app, host="127.0.0.1", port=0)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    text = await response.text()
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    return text, response.status, json.loads(await response.text())
        finally:
            await runner.cleanup()

    text, status, health = asyncio.run(scenario())
    assert 'mcp_reconciler_reconciles_total{kind="MCPServer",outcome="changed"} 1.0' in text
    assert 'mcp_reconciler_drift_repairs_total{kind="MCPServer"} 1.0' in text
    assert 'mcp_reconciler_server_tools{name="crm",namespace="ns"} 7.0' in text
    assert "mcp_reconciler_probe_latency_seconds_count 1.0" in text
    peering = {"ready": True, "message": "standalone: no peering"}
    assert (status, health) == (200, {"healthy": True, "registry": "registry reachable", "peering": peering})


def test_health_reports_a_missing_peering_object_without_failing_the_probe() -> None:
    from reconciler.operator.peering import PeeringState

    waiting = PeeringState(False, "waiting: nothing is reconciled until the KopfPeering 'p' exists")

    async def scenario() -> tuple[int, dict[str, Any]]:
        health = RegistryHealth(lambda: None, cache_seconds=0)
        app = build_app(metrics=OperatorMetrics(), health=health, peering=lambda: waiting)
        runner, port = await start_server(app, host="127.0.0.1", port=0)
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/healthz") as response,
            ):
                return response.status, json.loads(await response.text())
        finally:
            await runner.cleanup()

    status, health = asyncio.run(scenario())
    assert status == 200 and health["peering"] == {"ready": False, "message": waiting.message}
