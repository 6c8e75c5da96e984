"""Benchmark for in-place rotation: many bearer-protected MCP servers sharing a few Secrets; rotate every Secret
and time until every affected server is verified against its live server with the new value and its row updated.

    python bench/rotation_bench.py [--servers 500] [--secrets 50] [--concurrency 32]

A child process hosts the servers (low-level mcp SDK servers under uvicorn, all on one `ServerLoop`); server i
accepts only the current value of Secret i % secrets, and counts the requests that carry the new value. This
process plays the engine: it fingerprints each Secret once, asks `plan_rotation` per server, probes every server
whose decision is VERIFY with `verify_credential` (at most `--concurrency` at once, one shared `ProbeHttp`),
then plans again and applies. It prints the time, the probe count per server (the target: exactly one probe per
server per rotation, so the time is bounded by probe concurrency) and asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import queue
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.credentials import (
    ResolvedHeaders,
    RotationAction,
    add_server_credential,
    fingerprint,
    plan_rotation,
    verdict,
)
from reconciler.probe import ProbeHttp, ProbeResult, ProbeSettings, ProbeTarget, verify_credential

STARTUP_TIMEOUT = 300.0
NAMESPACE = "bench"


# -- the child: the servers ---------------------------------------------------------------------------------


def serve() -> None:
    """Child mode: read {servers, tokens}, host the servers, print their URLs; then obey `rotate` / `counts`."""
    import hmac

    import mcp_types
    from mcp.server import Server
    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings

    from reconciler.demo.serving import ServerLoop

    setup = json.loads(sys.stdin.readline())
    count: int = setup["servers"]
    current: list[str] = list(setup["tokens"])
    rotated: list[str] = []
    seen_new = [0] * count
    tools = [mcp_types.Tool(name=f"tool_{n}", description="A tool.", input_schema={"type": "object"}) for n in range(5)]

    class Verifier:
        def __init__(self, index: int) -> None:
            self.index = index
            self.secret = index % len(current)

        async def verify_token(self, token: str) -> AccessToken | None:
            if not hmac.compare_digest(token.encode(), current[self.secret].encode()):
                return None
            if rotated:
                seen_new[self.index] += 1
            return AccessToken(token=token, client_id="bench", scopes=[])

    def build(index: int) -> Any:
        async def on_list_tools(ctx: Any, params: Any) -> mcp_types.ListToolsResult:
            return mcp_types.ListToolsResult(tools=tools)

        server = Server(f"rotation-{index}", version="1.0.0", on_list_tools=on_list_tools)
        return server.streamable_http_app(
            host="127.0.0.1",
            auth=AuthSettings(issuer_url="http://127.0.0.1/issuer", resource_server_url=None),
            token_verifier=Verifier(index),
        )

    with ServerLoop(startup_timeout=60) as loop:
        urls = [loop.serve_asgi(lambda url, index=index: build(index)) + "/mcp" for index in range(count)]
        print(json.dumps({"urls": urls}), flush=True)
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "rotate":
                # The upstream rotates first: from now on only the new values are accepted.
                current[:] = json.loads(argument)
                rotated.append("yes")
                print("rotated", flush=True)
            elif command == "counts":
                print(json.dumps(seen_new), flush=True)


# -- the parent: the engine's side ---------------------------------------------------------------------------


class Lines:
    """The child's stdout, line by line, with a bound on every wait."""

    def __init__(self, child: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        assert child.stdout is not None
        stdout = child.stdout
        threading.Thread(target=lambda: [self._queue.put(line) for line in stdout], daemon=True).start()

    def next(self, timeout: float) -> str:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            raise SystemExit("the server process did not answer in time") from None


class Secrets:
    """The folder's Secret manifests: `bench/secret-<j>#token`."""

    def __init__(self, values: list[str]) -> None:
        self.values = values
        self.reads = 0

    def read(self, namespace: str, name: str, key: str) -> str | None:
        self.reads += 1
        return self.values[int(name.removeprefix("secret-"))] if namespace == NAMESPACE and key == "token" else None


@dataclasses.dataclass
class Row:
    """A server row as far as rotation cares: its Secret reference and the fingerprints in status."""

    index: int
    url: str
    secret: int
    fingerprint: str
    verified: str
    probes: int = 0


def target_for(row: Row, secrets_: Secrets) -> ProbeTarget:
    resolved = ResolvedHeaders()
    add_server_credential(resolved, "bearer", {"secretRef": f"{NAMESPACE}/secret-{row.secret}#token"}, secrets_)
    return ProbeTarget(
        tenant=NAMESPACE, server=f"s{row.index}", url=row.url, headers=resolved.headers, allow_private=True
    )


async def verify_all(rows: list[Row], secrets_: Secrets, *, settings: ProbeSettings) -> list[ProbeResult]:
    limiter = anyio.Semaphore(settings.max_concurrency)
    results: list[ProbeResult] = []

    async def one(http: ProbeHttp, row: Row) -> None:
        async with limiter:
            row.probes += 1
            results.append(await verify_credential(target_for(row, secrets_), settings=settings, http=http))

    async with ProbeHttp() as http, anyio.create_task_group() as tasks:
        for row in rows:
            tasks.start_soon(one, http, row)
    return results


def rotate(rows: list[Row], secrets_: Secrets, *, key: bytes, settings: ProbeSettings) -> dict[str, Any]:
    """One engine pass over every server after the Secrets changed: plan, verify the VERIFY ones, plan, apply."""
    prints = {j: fingerprint(key, value) for j, value in enumerate(secrets_.values)}  # once per Secret
    moment = dt.datetime.now(dt.UTC)

    def decide(row: Row) -> RotationAction:
        return plan_rotation(
            previous_fingerprint=row.fingerprint,
            new_fingerprint=prints[row.secret],
            last_verified_fingerprint=row.verified,
            failures=0,
            now=moment,
        ).action

    to_verify = [row for row in rows if decide(row) is RotationAction.VERIFY]
    results = anyio.run(lambda: verify_all(to_verify, secrets_, settings=settings))
    outcomes = Counter(verdict(result) for result in results)
    by_server = {result_row.index: result for result_row, result in zip(to_verify, results, strict=False)}
    for row in to_verify:
        row.verified = prints[row.secret] if verdict(by_server[row.index]) == "verified" else row.verified
    applied = 0
    for row in rows:
        if decide(row) is RotationAction.APPLY:
            row.fingerprint = prints[row.secret]  # the in-place update
            applied += 1
    latencies = [result.latency_ms for result in results]
    return {"verified": len(to_verify), "applied": applied, "outcomes": dict(outcomes), "latencies": latencies}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--servers", type=int, default=500)
    parser.add_argument("--secrets", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    started = time.perf_counter()
    old = [f"old-{j}-{secrets.token_urlsafe(12)}" for j in range(args.secrets)]
    new = [f"new-{j}-{secrets.token_urlsafe(12)}" for j in range(args.secrets)]
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None
    lines = Lines(child)
    child.stdin.write(json.dumps({"servers": args.servers, "tokens": old}) + "\n")
    child.stdin.flush()
    urls: list[str] = json.loads(lines.next(STARTUP_TIMEOUT))["urls"]
    print(
        f"{len(urls)} bearer-protected servers sharing {args.secrets} Secrets, concurrency {args.concurrency}; "
        f"servers up in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    key = secrets.token_bytes(32)
    settings = ProbeSettings(allow_private_networks=True, max_concurrency=args.concurrency, total_timeout=60)
    store = Secrets(list(old))
    first = fingerprint(key, "")
    rows = [Row(i, url, i % args.secrets, first, first) for i, url in enumerate(urls)]
    try:
        # Before: every row holds the old value, verified (the first pass applies a first credential).
        for row in rows:
            row.fingerprint = row.verified = fingerprint(key, old[row.secret])
        warm = time.perf_counter()
        initial = anyio.run(lambda: verify_all(rows, store, settings=settings))
        print(
            f"initial probe of every server (not counted): {time.perf_counter() - warm:.2f} s, "
            f"{sum(result.ok for result in initial)}/{len(rows)} ok",
            flush=True,
        )
        for row in rows:
            row.probes = 0

        child.stdin.write("rotate " + json.dumps(new) + "\n")
        child.stdin.flush()
        assert lines.next(30).strip() == "rotated"
        rotation_started = time.perf_counter()
        store.values = list(new)  # the Secrets change in the folder / cluster
        store.reads = 0
        outcome = rotate(rows, store, key=key, settings=settings)
        elapsed = time.perf_counter() - rotation_started

        child.stdin.write("counts\n")
        child.stdin.flush()
        server_requests: list[int] = json.loads(lines.next(30))
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)

    probes = Counter(row.probes for row in rows)
    latencies = outcome["latencies"]
    mean = statistics.mean(latencies) / 1000 if latencies else 0.0
    waves = -(-len(rows) // args.concurrency)
    print()
    print(f"rotation of {args.secrets} Secrets → {len(rows)} servers verified and updated in {elapsed:.2f} s")
    print(f"  planned VERIFY            {outcome['verified']}   verdicts {outcome['outcomes']}")
    print(f"  rows updated in place     {outcome['applied']}")
    print(f"  probes per server         {dict(sorted(probes.items()))}   (probes: servers)")
    print(
        f"  requests with new value   min {min(server_requests)} / max {max(server_requests)} per server "
        "(one probe = negotiate + tools/list)"
    )
    print(f"  Secret reads              {store.reads} (headers resolved per probe target)")
    print(
        f"  probe latency             mean {mean * 1000:.0f} ms, p95 {statistics.quantiles(latencies, n=20)[-1]:.0f} ms"
        if len(latencies) >= 20
        else ""
    )
    print(
        f"  concurrency bound         {waves} waves x {mean:.3f} s = {waves * mean:.2f} s "
        f"(elapsed / bound = {elapsed / (waves * mean) if mean else 0:.2f})"
    )
    print(f"total bench time            {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
