"""Probing MCP servers: auth discovery plus a full tool snapshot per server, many servers at once, every failure
turned into a classified `ProbeResult`.

The engine (apply, re-probe timers) and the CLI (`test`, `get`) call `probe_many` / `probe_many_sync`, or
`probe_server` for one target. Nothing here raises for a server-side problem; each probe is bounded by
`total_timeout` and probes share one `ProbeHttp` under a concurrency limit, so a slow server costs only its own
deadline. Nothing that goes wrong while probing one server touches another: a fault of our own (any exception
past classification, in a log line, in a callback) becomes that server's `internal` result. Results never
contain header values: messages are scrubbed of the target's secrets as a last line.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import httpx2
import mcp_types
from mcp import Client

from reconciler.probe.classification import (
    HINTS,
    ErrorClass,
    FailureContext,
    ProbeFailure,
    classify_failure,
    hint_for,
    one_line,
)
from reconciler.probe.discovery import NO_AUTH, AuthDiscovery, Challenge, discover_auth, fetch_challenge
from reconciler.probe.listing import CacheScope, fetch_all_tools, snapshot_hash
from reconciler.probe.settings import ProbeSettings, ProbeTarget
from reconciler.probe.ssrf import url_problem
from reconciler.probe.tracing import HttpTrace, display_url
from reconciler.probe.transports import ProbeHttp, allows_private, open_transport, request_timeout
from reconciler.records import ToolRecord

logger = logging.getLogger(__name__)

CLIENT_INFO = mcp_types.Implementation(name="mcp-reconciler-probe", version="0.1")
REDACTED = "<redacted>"


@dataclass(frozen=True)
class ProbeResult:
    """The outcome of one probe. `tools` is None when listing was skipped or failed."""

    ok: bool
    error_class: ErrorClass | None
    message: str
    hint: str | None
    latency_ms: int
    at: dt.datetime
    discovery: AuthDiscovery | None = None
    tools: tuple[ToolRecord, ...] | None = None
    snapshot_hash: str | None = None
    protocol_version: str | None = None
    server_info: dict[str, Any] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    pages: int = 0
    ttl_ms: int | None = None
    """The server's `ttlMs` for its tool list (2026-07-28): how long the list stays fresh. None: no hint."""
    cache_scope: CacheScope | None = None
    """The server's `cacheScope`: `private` means the list is what this probe's identity sees. None: no hint."""
    challenged_scopes: tuple[str, ...] = ()
    """With `insufficient_scope`: the scopes the server's challenge named (SEP-835), for a step-up."""


@dataclass
class _Probe:
    """The state of one probe while it runs, so a failure part-way still reports what was learned."""

    target: ProbeTarget
    settings: ProbeSettings
    http: ProbeHttp
    stage: str = "connecting"
    discovery: AuthDiscovery | None = None
    tools: list[ToolRecord] | None = None
    pages: int = 0
    ttl_ms: int | None = None
    cache_scope: CacheScope | None = None
    protocol_version: str | None = None
    server_info: dict[str, Any] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    discovery_trace: HttpTrace = field(default_factory=HttpTrace)
    listing_trace: HttpTrace = field(default_factory=HttpTrace)

    async def run(self) -> None:
        problem = url_problem(self.target.url)
        if problem is not None:
            raise ProbeFailure("blocked", f"refused to connect: {problem}")
        # Without credentials the listing request is itself the unauthenticated request discovery needs, so its
        # first answer doubles as the challenge and saves a round trip (not for websocket: no HTTP trace there).
        piggyback = (
            self.target.discover_auth
            and self.target.list_tools
            and not self.target.headers
            and self.target.transport != "websocket"
        )
        if self.target.discover_auth and not piggyback:
            self.stage = "discovering auth"
            async with self._discovery_client() as client:
                challenge = await fetch_challenge(client, url=self.target.url, transport=self.target.transport)
                self.discovery = await self._discover(challenge, client)
        if not self.target.list_tools:
            return
        try:
            await self._snapshot()
        except Exception:
            if piggyback:
                await self._discover_from_listing()
            raise
        if piggyback:
            await self._discover_from_listing()

    async def _discover_from_listing(self) -> None:
        first = self.listing_trace.first_answer_from(self.target.url)
        if first is None:
            return  # no answer at all: nothing to learn about auth
        challenge = Challenge(status=first.status, www_authenticate=first.www_authenticate)
        if not challenge.requires_auth:
            self.discovery = NO_AUTH
            return
        listing_stage, self.stage = self.stage, "discovering auth"
        async with self._discovery_client() as client:
            self.discovery = await self._discover(challenge, client)
        # A listing failure re-raised after this is still reported as where the listing stopped.
        self.stage = listing_stage

    async def _discover(self, challenge: Challenge, client: httpx2.AsyncClient) -> AuthDiscovery:
        return await discover_auth(
            challenge, server_url=self.target.url, client=client, max_bytes=self.settings.max_response_bytes
        )

    def _discovery_client(self) -> httpx2.AsyncClient:
        return self.http.client(
            allow_private=allows_private(self.target, self.settings),
            trace=self.discovery_trace,
            timeout=request_timeout(self.settings),
            max_response_bytes=self.settings.max_response_bytes,
        )

    async def _snapshot(self) -> None:
        self.stage = "connecting"
        transport = open_transport(self.target, http=self.http, settings=self.settings, trace=self.listing_trace)
        async with Client(
            transport,
            mode="auto",
            read_timeout_seconds=self.settings.request_timeout,
            client_info=CLIENT_INFO,
            cache=None,
        ) as client:
            self.protocol_version = client.protocol_version
            info = client.server_info
            self.server_info = {"name": info.name, "version": info.version} if info is not None else {}
            advertised = client.server_capabilities.model_dump(exclude_none=True)
            self.capabilities = tuple(sorted(advertised))

            def on_page(number: int) -> None:
                self.stage = f"listing tools (page {number})"

            listing = await fetch_all_tools(
                lambda cursor: client.list_tools(cursor=cursor),
                max_pages=self.settings.max_pages,
                max_tools=self.settings.max_tools,
                on_page=on_page,
            )
            self.pages, self.ttl_ms, self.cache_scope = listing.pages, listing.ttl_ms, listing.cache_scope
            self.tools = listing.tools
            self.stage = "closing the session"


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


async def probe_server(target: ProbeTarget, *, settings: ProbeSettings, http: ProbeHttp | None = None) -> ProbeResult:
    """Discover auth and snapshot tools for one server; every server-side problem becomes a classified result."""
    if http is None:
        async with ProbeHttp() as own_http:
            return await probe_server(target, settings=settings, http=own_http)
    http.require_entered()  # a caller's mistake, not a server problem: raise rather than report
    at = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    try:
        return await _probe_server(target, settings=settings, http=http, at=at, started=started)
    except Exception as exc:  # cancellation is a BaseException and passes
        return internal_result(target, exc, at=at, started=started)


def internal_result(target: ProbeTarget, exc: BaseException, *, at: dt.datetime, started: float) -> ProbeResult:
    """A fault of our own while probing `target`, as that server's result: class `internal`, with the message.

    The log line carries the traceback's frames but not the exception text, which is scrubbed of the target's
    secrets only in the result: secrets never reach a log.
    """
    message = one_line(_scrub(f"{type(exc).__name__}: {exc}", target.secret_values()))
    logger.error(
        "probe %s/%s failed inside the reconciler (%s); other servers are not affected\n%s",
        target.tenant,
        target.server,
        type(exc).__name__,
        "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
    )
    return ProbeResult(
        ok=False,
        error_class="internal",
        message=f"internal error while probing: {message}",
        hint=HINTS["internal"],
        latency_ms=round((time.monotonic() - started) * 1000),
        at=at,
    )


async def _probe_server(
    target: ProbeTarget, *, settings: ProbeSettings, http: ProbeHttp, at: dt.datetime, started: float
) -> ProbeResult:
    probe = _Probe(target=target, settings=settings, http=http)
    logger.debug("probing %s/%s at %s (%s)", target.tenant, target.server, display_url(target.url), target.transport)
    error_class: ErrorClass | None = None
    message = ""
    hint: str | None = None
    challenged: tuple[str, ...] = ()
    try:
        with anyio.fail_after(settings.total_timeout):
            await probe.run()
    except Exception as exc:  # every failure becomes a result; cancellation is a BaseException and passes
        trace = probe.listing_trace if probe.stage != "discovering auth" else probe.discovery_trace
        classified = classify_failure(
            exc,
            trace=trace,
            context=FailureContext(
                url=display_url(target.url),
                stage=probe.stage,
                sent_credentials=bool(target.headers),
                connect_timeout=settings.connect_timeout,
                request_timeout=settings.request_timeout,
                total_timeout=settings.total_timeout,
            ),
        )
        error_class, challenged = classified.error_class, classified.challenged_scopes
        message = one_line(_scrub(classified.message, target.secret_values()))
        hint = hint_for(error_class, transport=target.transport, trace=trace)
    latency_ms = round((time.monotonic() - started) * 1000)
    ok = error_class is None
    if ok:
        count = len(probe.tools) if probe.tools is not None else 0
        if target.list_tools:
            message = f"{count} tools in {probe.pages} page(s)"
        else:
            message = (
                "auth discovery done" if target.discover_auth else "nothing to probe: discovery and listing are off"
            )
    # Failures at INFO (someone should look), successes at DEBUG (a fleet re-probes every hour).
    logger.log(
        logging.DEBUG if ok else logging.INFO,
        "probe %s/%s: %s (%d ms)",
        target.tenant,
        target.server,
        "ok" if ok else f"{error_class}: {message}",
        latency_ms,
    )
    tools = tuple(probe.tools) if ok and probe.tools is not None else None
    return ProbeResult(
        ok=ok,
        error_class=error_class,
        message=message,
        hint=hint,
        latency_ms=latency_ms,
        at=at,
        discovery=probe.discovery,
        tools=tools,
        snapshot_hash=snapshot_hash(tools) if tools is not None else None,
        protocol_version=probe.protocol_version,
        server_info=probe.server_info,
        capabilities=probe.capabilities,
        pages=probe.pages,
        ttl_ms=probe.ttl_ms if tools is not None else None,
        cache_scope=probe.cache_scope if tools is not None else None,
        challenged_scopes=challenged,
    )


async def probe_many(
    targets: Sequence[ProbeTarget],
    *,
    settings: ProbeSettings,
    on_result: Callable[[ProbeTarget, ProbeResult], None] | None = None,
    http: ProbeHttp | None = None,
) -> list[ProbeResult]:
    """Probe every target, at most `max_concurrency` at once, sharing one `ProbeHttp` (SSL context, resolver,
    guard); results in input order. `on_result` is called as each probe finishes (e.g. to print progress)."""
    if http is None:
        async with ProbeHttp() as own_http:
            return await probe_many(targets, settings=settings, on_result=on_result, http=own_http)
    results: list[ProbeResult | None] = [None] * len(targets)
    limiter = anyio.Semaphore(settings.max_concurrency)

    async def run_one(index: int, target: ProbeTarget) -> None:
        at, started = dt.datetime.now(dt.UTC), time.monotonic()
        try:
            async with limiter:
                result = await probe_server(target, settings=settings, http=http)
        except Exception as exc:  # one probe's fault stays its own: the task group must not cancel the others
            result = internal_result(target, exc, at=at, started=started)
        results[index] = result
        if on_result is not None:
            try:
                on_result(target, result)
            except Exception as exc:
                logger.error(
                    "the progress callback failed for %s/%s: %s", target.tenant, target.server, type(exc).__name__
                )

    async with anyio.create_task_group() as tasks:
        for index, target in enumerate(targets):
            tasks.start_soon(run_one, index, target)
    return [result for result in results if result is not None]


def probe_many_sync(
    targets: Sequence[ProbeTarget],
    *,
    settings: ProbeSettings,
    on_result: Callable[[ProbeTarget, ProbeResult], None] | None = None,
) -> list[ProbeResult]:
    """`probe_many` for synchronous callers (the CLI)."""
    return anyio.run(partial(probe_many, targets, settings=settings, on_result=on_result))
