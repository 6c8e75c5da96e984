"""The operator's small HTTP server: `/metrics` (Prometheus) and `/healthz` (is the registry reachable? does the
peering object this instance waits for exist?).

Started by `running.operate` next to kopf and stopped with it. The health check pings the registry in a
thread (SQLAlchemy is synchronous) and caches the answer for a few seconds, so a probe storm cannot load the
database; a failing ping answers 503 with the masked reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

from aiohttp import web

from reconciler.errors import ReconcilerError
from reconciler.operator.metrics import CONTENT_TYPE, OperatorMetrics
from reconciler.operator.peering import STANDALONE, PeeringState

PING_TIMEOUT_SECONDS = 10.0


@dataclass
class HealthReport:
    healthy: bool
    message: str
    checked_at: float


class RegistryHealth:
    """Answers "can we reach the registry?", at most once per `cache_seconds`."""

    def __init__(
        self,
        ping: Callable[[], None],
        *,
        cache_seconds: float,
        executor: Executor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ping = ping
        self._executor = executor
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._last: HealthReport | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> HealthReport:
        async with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last.checked_at < self._cache_seconds:
                return self._last
            try:
                ping = asyncio.get_running_loop().run_in_executor(self._executor, self._ping)
                await asyncio.wait_for(ping, timeout=PING_TIMEOUT_SECONDS)
                report = HealthReport(True, "registry reachable", now)
            except TimeoutError:
                report = HealthReport(False, "registry ping timed out", now)
            except ReconcilerError as error:
                report = HealthReport(False, str(error), now)
            self._last = report
            return report


def build_app(
    *, metrics: OperatorMetrics, health: RegistryHealth, peering: Callable[[], PeeringState] = lambda: STANDALONE
) -> web.Application:
    """`/healthz` answers 503 only for the registry; a missing peering object is reported (`peering.ready`
    false, with what is awaited and the ways out) but keeps 200, so a liveness probe does not restart a pod
    that only waits for its peering object."""

    async def serve_metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def serve_health(_request: web.Request) -> web.Response:
        report = await health.check()
        state = peering()
        return web.json_response(
            {
                "healthy": report.healthy,
                "registry": report.message,
                "peering": {"ready": state.ready, "message": state.message},
            },
            status=200 if report.healthy else 503,
        )

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/healthz", serve_health)
    return app


async def start_server(app: web.Application, *, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (call `cleanup()` to stop) and the bound port (for port 0)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host=host, port=port)
    await site.start()
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return runner, int(address[1])
    return runner, port
