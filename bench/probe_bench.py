"""Benchmark for the probe: `probe_many` over many local MCP servers against a bare JSON-RPC baseline.

    python bench/probe_bench.py [--servers 200] [--tools 50] [--concurrency 32] [--black-hole-timeout 5]

A child process hosts the servers (low-level mcp SDK servers under uvicorn, all on one event loop; a quarter of
them paginate). This process then times, in the same run: the baseline (one shared httpx2 client sending
`server/discover` and every `tools/list` page as bare JSON-RPC, same concurrency), `probe_many` (discovery,
negotiation, every page, classification, SSRF guard), and `probe_many` again with one black-hole server added.
A third figure, the same listing through the bare mcp SDK `Client` (nothing of ours), separates the SDK's cost
from the probe's own: the floor `probe_many` cannot go below while it speaks MCP through the SDK. Each figure is
printed as wall time and as this process's CPU time (`time.process_time`, user + sys of every thread; the
servers run in the child and are not counted), with ratios: on a busy 2-core machine wall time mostly measures
the neighbours, the client's CPU time what each client costs. It prints numbers and asserts nothing. Targets:
probe <= 1.1x baseline (issue 14); with the black hole <= baseline + its timeout. Use a smaller `--servers` for
a quick run.
"""

from __future__ import annotations

import argparse
import json
import queue
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.probe import ProbeSettings, ProbeTarget, probe_many

MODERN = "2026-07-28"
META = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "bench-baseline", "version": "0"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
PAGE_SIZE = 20
STARTUP_TIMEOUT = 120.0


def serve(count: int, tools: int) -> None:
    """Child mode: host the servers, print their URLs as one JSON line, run until stdin closes."""
    import mcp_types
    from mcp.server import Server

    from reconciler.demo.serving import ServerLoop

    tool_list = [
        mcp_types.Tool(
            name=f"tool_{index:03d}",
            description=f"Benchmark tool number {index}.",
            input_schema={"type": "object", "properties": {"value": {"type": "integer"}}},
        )
        for index in range(tools)
    ]

    def build(paginated: bool, index: int) -> Server[Any]:
        page_size = PAGE_SIZE if paginated else len(tool_list) or 1

        async def on_list_tools(ctx: Any, params: mcp_types.PaginatedRequestParams | None) -> mcp_types.ListToolsResult:
            start = int(params.cursor or 0) if params is not None else 0
            end = start + page_size
            return mcp_types.ListToolsResult(
                tools=tool_list[start:end], next_cursor=str(end) if end < len(tool_list) else None
            )

        return Server(f"bench-{index}", version="1.0.0", on_list_tools=on_list_tools)

    with ServerLoop(startup_timeout=30) as loop:

        def app_for(index: int) -> Any:
            return lambda url: build(index % 4 == 0, index).streamable_http_app(host="127.0.0.1")

        urls = [loop.serve_asgi(app_for(index)) + "/mcp" for index in range(count)]
        black_hole = loop.serve_black_hole() + "/mcp"
        print(json.dumps({"urls": urls, "black_hole": black_hole}), flush=True)
        sys.stdin.read()


async def baseline(urls: Sequence[str], *, concurrency: int) -> tuple[int, int]:
    """The least a prober must do: discover + every tools/list page, bare JSON-RPC on one shared client."""
    limiter = anyio.Semaphore(concurrency)
    totals = {"tools": 0, "pages": 0}
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": MODERN}

    async def one(client: httpx2.AsyncClient, url: str) -> None:
        async with limiter:
            body = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": META}}
            (await client.post(url, json=body, headers={**headers, "mcp-method": "server/discover"})).raise_for_status()
            cursor: str | None = None
            request_id = 2
            while True:
                params: dict[str, Any] = {"_meta": META}
                if cursor:
                    params["cursor"] = cursor
                body = {"jsonrpc": "2.0", "id": request_id, "method": "tools/list", "params": params}
                response = await client.post(url, json=body, headers={**headers, "mcp-method": "tools/list"})
                result = response.json()["result"]
                totals["tools"] += len(result["tools"])
                totals["pages"] += 1
                request_id += 1
                cursor = result.get("nextCursor")
                if not cursor:
                    return

    limits = httpx2.Limits(max_connections=concurrency * 4, max_keepalive_connections=concurrency * 2)
    async with (
        httpx2.AsyncClient(limits=limits, timeout=30, trust_env=False) as client,
        anyio.create_task_group() as tg,
    ):
        for url in urls:
            tg.start_soon(one, client, url)
    return totals["tools"], totals["pages"]


async def sdk_baseline(urls: Sequence[str], *, concurrency: int) -> tuple[int, int]:
    """The same listing through the bare mcp SDK client (`Client` over the SDK's streamable-HTTP transport, every
    `tools/list` page), without anything of ours: no SSRF guard, trace, size limits, classification or
    fingerprints. What `probe_many` cannot go below while it speaks MCP through the SDK. Each server gets its own
    httpx2 client, as in `probe_many` (one shared pool is slower: httpcore scans its idle connections on every
    request), all sharing one SSL context (the SDK's default client loads the certificates again per server)."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    limiter = anyio.Semaphore(concurrency)
    totals = {"tools": 0, "pages": 0}
    verify = ssl.create_default_context()

    async def one(url: str) -> None:
        async with (
            limiter,
            httpx2.AsyncClient(verify=verify, timeout=30, trust_env=False) as http,
            Client(streamable_http_client(url, http_client=http), mode="auto", cache=None) as client,
        ):
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                totals["tools"] += len(page.tools)
                totals["pages"] += 1
                cursor = page.next_cursor
                if not cursor:
                    return

    async with anyio.create_task_group() as tg:
        for url in urls:
            tg.start_soon(one, url)
    return totals["tools"], totals["pages"]


async def probed(urls: Sequence[str], *, settings: ProbeSettings) -> tuple[int, int, dict[str, int]]:
    targets = [ProbeTarget(tenant="bench", server=f"s{i}", url=url, allow_private=True) for i, url in enumerate(urls)]
    results = await probe_many(targets, settings=settings)
    classes: dict[str, int] = {}
    for result in results:
        key = result.error_class or "ok"
        classes[key] = classes.get(key, 0) + 1
    return sum(len(r.tools or ()) for r in results), sum(r.pages for r in results), classes


def timed(label: str, run: Any) -> tuple[float, float, Any]:
    """Wall seconds, this process's CPU seconds, and the outcome of one run."""
    cpu_before = time.process_time()
    started = time.perf_counter()
    outcome = anyio.run(run)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    print(f"  {label:<34} {elapsed:7.2f} s  cpu {cpu:6.2f} s   {outcome}", flush=True)
    return elapsed, cpu, outcome


def start_servers(count: int, tools: int) -> tuple[subprocess.Popen[str], list[str], str]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--servers", str(count), "--tools", str(tools)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert child.stdout is not None
    threading.Thread(target=lambda: lines.put(child.stdout.readline() if child.stdout else ""), daemon=True).start()
    try:
        announced = json.loads(lines.get(timeout=STARTUP_TIMEOUT))
    except (queue.Empty, ValueError):
        child.kill()
        raise SystemExit("the server process did not start in time") from None
    return child, announced["urls"], announced["black_hole"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--servers", type=int, default=200)
    parser.add_argument("--tools", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds; the best round counts")
    parser.add_argument("--black-hole-timeout", type=float, default=5.0, help="total_timeout for the last run")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.servers, args.tools)
        return

    started = time.perf_counter()
    child, urls, black_hole = start_servers(args.servers, args.tools)
    print(
        f"{len(urls)} servers x {args.tools} tools ({len(urls[::4])} paginated by {PAGE_SIZE}), "
        f"concurrency {args.concurrency}; servers up in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    settings = ProbeSettings(
        allow_private_networks=True, max_concurrency=args.concurrency, total_timeout=args.black_hole_timeout * 4
    )
    try:
        warm = urls[: min(len(urls), args.concurrency)]
        timed("warm-up (not counted)", lambda: baseline(warm, concurrency=args.concurrency))
        timed("warm-up (not counted)", lambda: probed(warm, settings=settings))
        timed("warm-up (not counted)", lambda: sdk_baseline(warm, concurrency=args.concurrency))
        base_runs, sdk_runs, probe_runs = [], [], []
        for round_number in range(1, args.rounds + 1):
            print(f"round {round_number}", flush=True)
            base_runs.append(timed("baseline (bare JSON-RPC)", lambda: baseline(urls, concurrency=args.concurrency)))
            sdk_runs.append(timed("bare mcp SDK Client", lambda: sdk_baseline(urls, concurrency=args.concurrency)))
            probe_runs.append(timed("probe_many", lambda: probed(urls, settings=settings)))
        # The best round of each: the one the neighbours disturbed least, for wall and CPU time alike.
        base, sdk, probe = (min(run[0] for run in runs) for runs in (base_runs, sdk_runs, probe_runs))
        base_cpu, sdk_cpu, probe_cpu = (min(run[1] for run in runs) for runs in (base_runs, sdk_runs, probe_runs))

        hole_settings = ProbeSettings(
            allow_private_networks=True, max_concurrency=args.concurrency, total_timeout=args.black_hole_timeout
        )
        print("with one black-hole server", flush=True)
        hole, _, _ = timed("probe_many + black hole", lambda: probed([black_hole, *urls], settings=hole_settings))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)

    print()
    print(f"{'':<21} {'wall':>9}  {'ratio':>6}   {'client cpu':>10}  {'ratio':>6}")
    print(f"baseline              {base:7.2f} s            {base_cpu:8.2f} s")
    print(
        f"bare mcp SDK Client   {sdk:7.2f} s  {sdk / base:5.2f}x   {sdk_cpu:8.2f} s  {sdk_cpu / base_cpu:5.2f}x"
        "   (the floor: the SDK)"
    )
    print(
        f"probe_many            {probe:7.2f} s  {probe / base:5.2f}x   {probe_cpu:8.2f} s  {probe_cpu / base_cpu:5.2f}x"
        "   (target <= 1.10x baseline)"
    )
    print(
        f"probe_many / bare SDK: {probe / sdk:.2f}x wall, {probe_cpu / sdk_cpu:.2f}x cpu; "
        f"bare SDK / bare JSON-RPC: {sdk / base:.2f}x wall, {sdk_cpu / base_cpu:.2f}x cpu"
    )
    limit = base + args.black_hole_timeout
    print(f"probe_many + hole     {hole:7.2f} s   (target <= baseline + {args.black_hole_timeout:g} s = {limit:.2f} s)")
    print(f"total bench time      {time.perf_counter() - started:7.1f} s")


if __name__ == "__main__":
    main()
