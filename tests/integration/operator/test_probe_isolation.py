"""Probes never hold the operator's registry threads: servers that accept a connection and never answer (black
holes) do not delay the passes of healthy servers, in other namespaces or in the same batch as the black hole.

The API server is faked at our own seam (`ClusterPort`); the engine, a SQLite registry, the registry thread pool
the operator uses, the healthy MCP server and the black holes are real.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from reconciler.api.conditions import Reason
from reconciler.operator.config import OperatorConfig
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.reconciling import ObjectReconciler
from reconciler.probe.settings import ProbeSettings
from reconciler.registry import Registry, open_registry
from tests.fixtures.mcp_servers import LocalServers
from tests.fixtures.operator_seams import FakeCluster, RecordingSink

V = "mcp.reconciler.dev/v1alpha1"
HEALTHY_BOUND = 60.0
"""A bound on the wait, not the measure: what matters is that the healthy passes end while the black holes' probes
still wait (a black hole is given up after the probe's read timeout, 11 s, or its total timeout). While probes ran
on the registry threads, the healthy passes ended only after the black holes had; now they take about a second."""
CONNECT_BOUND = 10.0


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    opened = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    yield opened
    opened.close()


def server(name: str, namespace: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": V,
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "generation": 1},
        "spec": {"url": url, "network": {"allowPrivate": True}},
    }


def ready(status: Mapping[str, Any]) -> tuple[str, str]:
    found = {item["type"]: (item["status"], item["reason"]) for item in status.get("conditions", [])}
    return found.get("Ready", ("", ""))


class BlackHole:
    """Accepts TCP connections on 127.0.0.1 and never answers; counts what it accepted."""

    def __init__(self) -> None:
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            self._writers.append(writer)
            while await reader.read(65536):
                pass

        self._server = await asyncio.start_server(swallow, host="127.0.0.1", port=0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/mcp"

    async def connections(self, count: int) -> None:
        """Wait (bounded) until `count` connections were accepted: the probes are waiting on the black hole."""
        async with asyncio.timeout(CONNECT_BOUND):
            while self.accepted < count:
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()


@pytest.mark.timeout(120)
def test_black_holes_hold_no_registry_thread_and_delay_no_healthy_server(
    registry: Registry, mcp_servers: LocalServers
) -> None:
    cluster = FakeCluster()
    config = OperatorConfig(probe=True, allow_private_networks=True, registry_threads=2)
    assert ProbeSettings().request_timeout >= 10, "black holes must outlast the healthy passes"

    async def scenario() -> None:
        hole = BlackHole()
        url = await hole.start()
        threads = ThreadPoolExecutor(max_workers=config.registry_threads, thread_name_prefix="registry")
        reconciler = ObjectReconciler(
            registry=registry,
            cluster=cluster,
            events=RecordingSink(),
            metrics=OperatorMetrics(),
            config=config,
            registry_threads=threads,
            rng=random.Random(0),
        )
        # As many black holes as registry threads, each in a namespace (and so an engine run) of its own.
        holes = [server("hole", namespace, url) for namespace in ("team-a", "team-b")]
        healthy = [server("tools", "team-a", mcp_servers.tools), server("tools", "team-c", mcp_servers.tools)]
        stuck = [asyncio.create_task(reconciler.reconcile(body, peers=[body])) for body in holes]
        try:
            await hole.connections(len(holes))
            passes = [reconciler.reconcile(body, peers=[body, *holes]) for body in healthy]
            async with asyncio.timeout(HEALTHY_BOUND):
                await asyncio.gather(*passes)
            assert not any(task.done() for task in stuck), "the healthy passes waited for the black holes"
        finally:
            await reconciler.close()
            await asyncio.gather(*stuck, return_exceptions=True)
            await hole.stop()
            threads.shutdown(wait=True)
        for body in healthy:
            key = ("MCPServer", body["metadata"]["namespace"], "tools")
            assert ready(cluster.statuses[key]) == ("True", str(Reason.AVAILABLE)), cluster.statuses[key]

    asyncio.run(scenario())
