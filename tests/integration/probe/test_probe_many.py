"""Many probes at once: bounded concurrency, input order, and a slow server costing only its own time."""

from __future__ import annotations

import time

import anyio

from reconciler.probe import ProbeResult, ProbeSettings, ProbeTarget, probe_many, probe_many_sync
from tests.fixtures.mcp_servers import SLOW_SECONDS, LocalServers
from tests.integration.probe.support import target

SETTINGS = ProbeSettings(allow_private_networks=True, connect_timeout=2, request_timeout=5, total_timeout=2.5)


def test_slow_servers_run_concurrently(mcp_servers: LocalServers) -> None:
    targets = [target(mcp_servers.slow) for _ in range(8)]
    started = time.monotonic()
    results = probe_many_sync(targets, settings=SETTINGS)
    elapsed = time.monotonic() - started
    assert all(result.ok for result in results), [result.message for result in results]
    # Eight one-second servers finish in about one server's time, not eight.
    assert elapsed < SLOW_SECONDS * 3, elapsed


def test_concurrency_is_bounded(mcp_servers: LocalServers) -> None:
    settings = ProbeSettings(allow_private_networks=True, max_concurrency=2, total_timeout=10)
    targets = [target(mcp_servers.slow) for _ in range(4)]
    started = time.monotonic()
    results = probe_many_sync(targets, settings=settings)
    elapsed = time.monotonic() - started
    assert all(result.ok for result in results)
    assert elapsed >= SLOW_SECONDS * 2 * 0.9, "two at a time: four slow probes take two rounds"


def test_results_keep_input_order_and_a_black_hole_stalls_nobody(mcp_servers: LocalServers) -> None:
    urls = [mcp_servers.black_hole, mcp_servers.tools, mcp_servers.failing, mcp_servers.paginated, mcp_servers.html]
    targets = [target(url) for url in urls]
    finished: list[tuple[str, float]] = []
    started = time.monotonic()

    def on_result(probe_target: ProbeTarget, result: ProbeResult) -> None:
        finished.append((probe_target.url, time.monotonic() - started))

    results = anyio.run(lambda: probe_many(targets, settings=SETTINGS, on_result=on_result))
    elapsed = time.monotonic() - started
    assert [result.error_class for result in results] == ["timeout", None, "transport", None, "protocol"]
    assert results[3].pages == 3
    # The others were reported long before the black hole's own deadline ran out.
    fast = [seconds for url, seconds in finished if url != mcp_servers.black_hole]
    assert max(fast) < 1.5, finished
    assert finished[-1][0] == mcp_servers.black_hole
    assert elapsed < SETTINGS.total_timeout + 1.5


def test_empty_input() -> None:
    assert probe_many_sync([], settings=SETTINGS) == []
