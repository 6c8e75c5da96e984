"""Shared helpers for the probe integration tests: settings and targets for servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from reconciler.probe import ProbeHttp, ProbeResult, ProbeSettings, ProbeTarget, Resolver, probe_server

# Every test server listens on 127.0.0.1, so tests allow private networks unless they test that very switch.
LOCAL = ProbeSettings(allow_private_networks=True, connect_timeout=2, request_timeout=5, total_timeout=10)


def target(
    url: str, *, transport: Any = "streamable-http", headers: Mapping[str, str] | None = None, **options: Any
) -> ProbeTarget:
    options.setdefault("allow_private", True)
    return ProbeTarget(tenant="acme", server="test", url=url, transport=transport, headers=headers or {}, **options)


def probe(
    probe_target: ProbeTarget, *, settings: ProbeSettings = LOCAL, resolver: Resolver | None = None
) -> ProbeResult:
    """Run one probe to completion from a synchronous test."""

    async def run() -> ProbeResult:
        async with ProbeHttp(resolver=resolver) as http:
            return await probe_server(probe_target, settings=settings, http=http)

    return anyio.run(run)


def fake_resolver(names: Mapping[str, list[str]], calls: list[tuple[str, int]] | None = None) -> Resolver:
    """Our own seam: names that resolve to whatever a test needs; unknown names fail like DNS does."""

    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append((host, port))
        if host not in names:
            raise OSError(f"unknown host {host}")
        return list(names[host])

    return resolve
