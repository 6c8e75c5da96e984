"""Operator benchmark against a real kube-apiserver + etcd: 1,000 MCPServer objects from creation to Ready.

Starts the control plane the e2e suite uses (building it once if needed, see `.ci/kube-assets.sh`), runs the
operator as a child process (so its peak RSS is its own), creates the objects and prints:
time until all are Ready/Synced (with the shipped resync interval of 300 s, `--converge-resync`: at 10 s, 10,000
objects would each get a dozen drift checks while they converge) and the operator's CPU seconds over that time (on a
busy machine the time is mostly other processes' doing; the CPU is the operator's own), the CPU seconds etcd and
kube-apiserver spent meanwhile (the same for each baseline: the writes and watches a controller causes cost the
control plane, which shares this machine's cores) and the requests it served, by verb and resource (its own
metrics), status writes per object (and all writes, kopf's finalizer included) until convergence, counted from a
watch, and then while the operator, restarted with `--resync` (10 s), gives every object the pass its start asks for
and three periodic ones (counted by its own metrics), also checked by listing; and the operator's peak RSS and open
sockets. The registry is migrated first with `mcp-reconciler migrate`, as the chart's init container does. Targets:
1 status write per object to converge (its first pass ends within `first_status_delay`), none while idle, peak RSS ≤
250 MB. Prints numbers; asserts nothing.

Two modes, printed as `mode`: by default the servers have example.com URLs and discovery disabled, so nothing is
contacted (the operator still runs with probing on, as shipped). `--probe` serves the shipped demo MCP servers
on 127.0.0.1 in this process and points every object at the demo tools server, discovery on and private
addresses allowed, so every object is discovered and its tools listed.

Baselines, measured in the same run on the same control plane and printed as ratios (`--no-baselines` skips
them): the RSS of a bare `import kopf, kubernetes.aio.client` and of `import reconciler.operator`; a bare kopf
operator with one no-op handler on the same number of new objects (its peak RSS, and its time and CPU seconds
until kopf has handled all of them); and the cheapest possible controller, the bench itself writing one Ready
status per object right after creating it (its time until all are Ready).

Diagnostics, for finding where memory goes (they inflate the peak; never compare such a run's numbers):
`MCPR_BENCH_DIAGNOSTICS=1` makes the operator dump RSS, glibc malloc and pymalloc totals, the largest object types
and the deep sizes of kopf's and our per-object structures at start and at convergence (path printed as
`diagnostics`); add `MCPR_BENCH_TRACEMALLOC=<frames>` for the top allocations made since start, `MCPR_BENCH_TRIM=1`
to see what `gc.collect()` and `malloc_trim` give back, and `MCPR_BENCH_PRELUDE=<python>` to run an experiment (a
monkeypatch, a setting) in the operator before it starts. Environment variables such as `MALLOC_ARENA_MAX` reach the
operator unchanged.

`--black-holes N` measures something else: `--objects` healthy servers (the demo tools server) created in one
namespace, and the same number created among N black holes (listeners on 127.0.0.1 that accept TCP and never
answer) in another, and among N more servers that do answer in a third, by one operator in one run after a small
warm-up, twice each in the order A B C C B A; it prints the seconds until every healthy server is Ready in each
round and the ratios of the means: with black holes over alone (target ≤ 1.1: a server that never answers costs
the others nothing), and with black holes over with answering extras (the black holes' cost apart from that of
N more objects).

    python bench/operator_bench.py [--objects 1000] [--namespaces 1] [--resync 10] [--backend sqlite|postgresql]
                                   [--probe]
    python bench/operator_bench.py --objects 10000 --namespaces 100     (the fleet: a cluster-wide operator)
    python bench/operator_bench.py --black-holes 10 --objects 50
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from reconciler.demo import DemoServers, start_demo_servers  # noqa: E402
from tests.e2e.kube import (  # noqa: E402
    GROUP,
    VERSION,
    ControlPlane,
    KubeHttp,
    custom_path,
    find_binaries,
    start_control_plane,
)

NAMESPACE = "bench"
POSTGRES_ADMIN = os.environ.get("MCP_RECONCILER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CONVERGE_TIMEOUT_SECONDS = 1800
IDLE_TIMEOUT_SECONDS = 1800
CORES = len(os.sched_getaffinity(0))
SHIPPED_RESYNC_SECONDS = 300.0
"""`OperatorConfig.resync_interval`'s default: what a burst of new objects meets in a real deployment."""
LABEL = "bench.mcp.reconciler.dev/fleet"


@dataclass(frozen=True)
class Fleet:
    """Where one measurement's objects live: one namespace named `prefix`, or `spread` namespaces
    `prefix-000`... with object i in namespace i mod spread. Every object carries the fleet's label, so a spread
    fleet is listed and watched cluster-wide in one request."""

    prefix: str
    spread: int = 1

    @property
    def namespaces(self) -> list[str]:
        if self.spread == 1:
            return [self.prefix]
        return [f"{self.prefix}-{index:03d}" for index in range(self.spread)]

    def namespace_of(self, index: int) -> str:
        return self.namespaces[index % self.spread]

    def collection(self, *, watch_seconds: int | None = None) -> str:
        """The fleet's MCPServers: the namespace's collection, or every namespace's filtered by label."""
        path = (
            custom_path(self.prefix, "mcpservers")
            if self.spread == 1
            else f"/apis/{GROUP}/{VERSION}/mcpservers?labelSelector={LABEL}%3D{self.prefix}"
        )
        if watch_seconds is not None:
            path += ("&" if "?" in path else "?") + f"watch=true&timeoutSeconds={watch_seconds}"
        return path

    @property
    def operator_namespaces(self) -> tuple[str, ...]:
        """What the operator serves: the one namespace, or every namespace (cluster-wide watches, as a platform
        serving a hundred tenants runs it) for a spread fleet."""
        return (self.prefix,) if self.spread == 1 else ()


class Watcher(threading.Thread):
    """Streams watch events of the namespace's MCPServers and counts, per object, writes and status changes."""

    def __init__(self, plane: ControlPlane, fleet: Fleet, *, seconds: int) -> None:
        super().__init__(daemon=True, name="watcher")
        self._plane = plane
        self._fleet = fleet
        self._seconds = seconds
        self.lock = threading.Lock()
        self.writes: Counter[str] = Counter()
        self.status_writes: Counter[str] = Counter()
        self._last_status: dict[str, str] = {}
        self.marks: list[tuple[float, int, int]] = []
        self.ended: str | None = None
        """Why the stream ended early (the API server drops a watcher that falls behind a burst), else None."""

    def run(self) -> None:
        try:
            self._stream()
            self.ended = "the API server ended the watch"
        except Exception as error:  # reported in the results, never silently
            self.ended = f"{type(error).__name__}: {error}"

    def _stream(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        path = self._fleet.collection(watch_seconds=self._seconds)
        request = urllib.request.Request(self._plane.server + path)
        request.add_header("Authorization", f"Bearer {self._plane.token}")
        with urllib.request.urlopen(request, context=context, timeout=self._seconds + 60) as response:
            for line in response:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise RuntimeError(str(event.get("object", {}).get("message")))
                if event["type"] not in ("ADDED", "MODIFIED"):
                    continue
                obj = event["object"]
                name = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
                status = json.dumps(obj.get("status") or {}, sort_keys=True)
                with self.lock:
                    if event["type"] == "MODIFIED":
                        self.writes[name] += 1
                    if status != self._last_status.get(name, "{}"):
                        self.status_writes[name] += 1
                    self._last_status[name] = status

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return sum(self.writes.values()), sum(self.status_writes.values())

    def per_object(self) -> tuple[Counter[str], Counter[str]]:
        with self.lock:
            return Counter(self.writes), Counter(self.status_writes)


def _ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    found = {c["type"]: c["status"] for c in status.get("conditions", [])}
    return (
        status.get("observedGeneration") == obj["metadata"].get("generation")
        and found.get("Ready") == "True"
        and found.get("Synced") == "True"
    )


class RssSampler(threading.Thread):
    """Samples a process's resident memory and open sockets, to show when the peak happens (burst or steady
    growth) and how many API connections it holds meanwhile (each TLS connection holds its own read buffer)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self._pid = pid
        self.samples: list[tuple[float, float, int]] = []
        self._stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(1.0):
            try:
                rss = _status_mb(self._pid, "VmRSS")
                sockets = _open_sockets(self._pid)
            except OSError:
                return
            self.samples.append((round(time.monotonic() - started), rss, sockets))

    def stop(self) -> None:
        self._stop.set()

    def timeline(self, points: int = 12) -> list[tuple[float, int]]:
        step = max(1, len(self.samples) // points)
        return [(at, round(mb)) for at, mb, _ in self.samples[::step]]

    def peak_sockets(self) -> int:
        return max((sockets for _, _, sockets in self.samples), default=0)


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _open_sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += os.readlink(fd).startswith("socket:")
        except OSError:
            continue
    return count


def _peak_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmHWM")


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used so far (`/proc/<pid>/stat`): on a busy machine the time to
    Ready is mostly other processes' doing, the CPU the operator spent is its own."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _plane_cpu_s(plane: ControlPlane) -> float:
    """CPU seconds etcd and kube-apiserver have used so far: what each controller's writes and watches cost the
    control plane, which shares this machine's cores with it."""
    return sum(_cpu_s(process.pid) for process in plane.processes if process.poll() is None)


def _api_requests(http: KubeHttp) -> Counter[str]:
    """kube-apiserver's own count of the requests it has served so far, by verb and resource (leases, lists and
    watches left out: the bench polls by listing): the difference over a run says which writes and reads a
    controller causes."""
    counts: Counter[str] = Counter()
    text = str(http.request("GET", "/metrics", accept="text/plain", timeout=30, raw=True))
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line[: line.rindex("}")]))
        if labels.get("resource") in (None, "", "leases") or labels.get("verb") in ("WATCH", "LIST"):
            continue
        what = labels["resource"] + (f"/{labels['subresource']}" if labels.get("subresource") else "")
        counts[f"{labels['verb']} {what}"] += int(float(line.rsplit(" ", 1)[1]))
    return counts


def _requests_since(http: KubeHttp, before: Counter[str]) -> dict[str, int]:
    after = _api_requests(http)
    after.subtract(before)
    return {what: count for what, count in sorted(after.items()) if count > 0}


def _registry_url(backend: str, workdir: Path) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'registry.db'}", None
    import sqlalchemy as sa

    database = f"mcpr_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{database}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": database}
            )
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}"'))
        admin.dispose()

    return str(sa.engine.make_url(POSTGRES_ADMIN).set(database=database).render_as_string(hide_password=False)), drop


_DIAGNOSTICS = r"""
import collections, ctypes, functools, gc, os, signal, sys, time

_DUMP = os.environ["MCPR_BENCH_DUMP"]
_FRAMES = int(os.environ.get("MCPR_BENCH_TRACEMALLOC") or 0)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _deep(roots, seen, *, into_tasks=False, sizes_by_type=None):
    # Bytes reachable from `roots` (sys.getsizeof), not counting `seen`, code, classes, modules or loops, and
    # unless `into_tasks`, not following futures, tasks, coroutines and frames either.
    import asyncio, threading, types

    stop = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
            types.CodeType, asyncio.AbstractEventLoop, threading.Thread)
    if not into_tasks:
        stop += (asyncio.Future, types.FrameType, types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType)
    total = 0
    stack = list(roots)
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, stop):
            continue
        seen.add(id(obj))
        size = sys.getsizeof(obj)
        total += size
        if sizes_by_type is not None:
            sizes_by_type[type(obj).__qualname__] += size
        stack.extend(gc.get_referents(obj))
    return total


def _holders(objects):
    # Deep sizes of the per-object structures that grow with the object count (kopf's and ours).
    by_type = collections.defaultdict(list)
    wanted = {
        "ResourceMemories", "OperatorIndexers", "ObjectReconciler", "OperatorMetrics", "ApiClient", "ObjectIndex",
        "HandledSpecs",
    }
    for obj in objects:
        if type(obj).__name__ in wanted:
            by_type[type(obj).__name__].append(obj)
    seen = set()
    mb = 1 << 20
    lines = ["deep sizes (MB, each counted once, in this order):"]
    for reconciler in by_type["ObjectReconciler"]:
        for name in ("_recording._written", "_locks", "_resync_retries", "_batching._batches"):
            value = functools.reduce(lambda holder, part: getattr(holder, part, None), name.split("."), reconciler)
            if value is not None:
                lines.append(f"  ObjectReconciler.{name}: {_deep([value], seen) / mb:.2f} in {len(value)}")
    for index in by_type["ObjectIndex"]:
        lines.append(f"  ObjectIndex: {_deep([index], seen) / mb:.2f} in {len(index)}")
    for handled in by_type["HandledSpecs"]:
        lines.append(f"  HandledSpecs: {_deep([handled], seen) / mb:.2f} in {len(handled)}")
    for metrics in by_type["OperatorMetrics"]:
        lines.append(f"  OperatorMetrics: {_deep([metrics.registry], seen) / mb:.2f}")
    for indexers in by_type["OperatorIndexers"]:
        for key, indexer in indexers.items():
            lines.append(f"  kopf index {key}: {_deep([indexer.index], seen) / mb:.2f}")
    import asyncio

    tasks = [obj for obj in objects if isinstance(obj, asyncio.Task) and not obj.done()]
    for memories in by_type["ResourceMemories"]:
        items = list(memories._items.values())
        bodies = [m.daemons_memory.live_fresh_body for m in items if m.daemons_memory.live_fresh_body is not None]
        raw = [getattr(body, "_src", body) for body in bodies]
        lines.append(f"  kopf live bodies (daemons' view): {_deep(raw, seen) / mb:.2f} in {len(raw)}")
        lines.append(f"  kopf resource memories (rest, tasks excluded): {_deep(items, seen) / mb:.2f} in {len(items)}")
    by_task = []
    task_types = collections.Counter()
    for task in tasks:  # each task's share, largest first (what an earlier task reached is not counted again)
        coro = task.get_coro()
        name = f"{task.get_name()} {getattr(coro, '__qualname__', coro)}"
        by_task.append((_deep([task], seen, into_tasks=True, sizes_by_type=task_types), name))
    lines.append(
        f"  pending tasks (coroutines, frames and what only they reach): {sum(size for size, _ in by_task) / mb:.2f}"
        f" in {len(tasks)}"
    )
    lines.extend(f"    {size / mb:.2f} {name}" for size, name in sorted(by_task, reverse=True)[:8])
    lines.append("  what the tasks reach, by type (MB):")
    lines.extend(f"    {size / mb:.2f} {name}" for name, size in task_types.most_common(12))
    lines.append(f"  everything else gc-tracked: {_deep(objects, seen, into_tasks=True) / mb:.2f}")
    return lines


def _large_buffers(objects):
    # asyncio keeps a read buffer per TLS connection (`SSLProtocol._ssl_buffer`, 256 KiB in CPython 3.11).
    import asyncio.sslproto

    protocols = [obj for obj in objects if isinstance(obj, asyncio.sslproto.SSLProtocol)]
    buffered = sum(len(getattr(protocol, "_ssl_buffer", b"")) for protocol in protocols)
    open_ = sum(1 for protocol in protocols if protocol._transport is not None)
    return [f"TLS protocols: {len(protocols)} ({open_} open), their read buffers {buffered / (1 << 20):.2f} MB"]


def _dump(signum, frame):
    try:
        _write_dump()
    except BaseException:  # never let a diagnostics bug raise into the operator's event loop
        import traceback

        with open(_DUMP, "a") as out:
            out.write("dump failed:\n" + traceback.format_exc())


def _write_dump():
    started = time.monotonic()
    lines = [f"== dump at {time.strftime('%H:%M:%S')}"]
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
    lines.append("VmRSS %s VmHWM %s RssAnon %s RssFile %s Threads %s" % tuple(
        status[k].strip() for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads")))
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        mb = 1 << 20
        lines.append(
            f"malloc: arena(non-mmap) {info.arena / mb:.1f} MB, in use {info.uordblks / mb:.1f} MB, "
            f"free in arenas {info.fordblks / mb:.1f} MB, mmapped {info.hblkhd / mb:.1f} MB ({info.hblks} blocks), "
            f"releasable top {info.keepcost / mb:.1f} MB"
        )
        libc.malloc_stats()  # per-arena breakdown, to the operator log (stderr)
    except (OSError, AttributeError):
        libc = None
        lines.append("malloc: not glibc")
    sys._debugmallocstats()  # pymalloc arenas and pools, to the operator log (stderr)
    sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    lines.append(f"open sockets: {sockets}")
    if os.environ.get("MCPR_BENCH_TRIM"):  # how much is garbage in cycles, and how much is free but not returned
        def rss():
            return next(line for line in open("/proc/self/status").read().splitlines() if line.startswith("VmRSS"))

        collected = gc.collect()
        lines.append(f"after gc.collect() ({collected} unreachable): {rss()}")
        if libc is not None:
            libc.malloc_trim(0)
            lines.append(f"after malloc_trim(0): {rss()}")
    objects = gc.get_objects()
    counts = collections.Counter()
    sizes = collections.Counter()
    for obj in objects:
        kind = type(obj)
        module = kind.__module__ if isinstance(kind.__module__, str) else "builtins"
        name = f"{module}.{kind.__qualname__}"
        counts[name] += 1
        sizes[name] += sys.getsizeof(obj)
    lines.append(f"gc-tracked objects: {len(objects)} (gc.freeze count {gc.get_freeze_count()})")
    if not _FRAMES:  # the deep walk is too slow with every allocation traced
        lines.extend(_holders(objects))
        lines.extend(_large_buffers(objects))
    for name, size in sizes.most_common(30):
        lines.append(f"  {size / (1 << 20):7.1f} MB {counts[name]:8d}  {name}")
    del objects
    if _FRAMES:
        import tracemalloc

        if not tracemalloc.is_tracing():
            tracemalloc.start(_FRAMES)  # from the first dump on: what is traced is what grew since then
            lines.append(f"tracemalloc started ({_FRAMES} frames)")
        else:
            snapshot = tracemalloc.take_snapshot()  # (filter_traces would take minutes on a million traces)
            total = sum(stat.size for stat in snapshot.statistics("filename"))
            lines.append(f"alive allocations made since the first dump: {total / (1 << 20):.1f} MB; top by line:")
            for stat in snapshot.statistics("lineno")[:40]:
                lines.append(f"  {stat.size / (1 << 20):7.2f} MB {stat.count:8d}  {stat.traceback[0]}")
            lines.append("top by traceback:")
            for stat in snapshot.statistics("traceback")[:25]:
                lines.append(f"  {stat.size / (1 << 20):7.2f} MB {stat.count:8d}")
                lines.extend("      " + str(frame) for frame in reversed(stat.traceback))
    lines.append(f"(dump took {time.monotonic() - started:.1f} s)")
    with open(_DUMP, "a") as out:
        out.write("\n".join(lines) + "\n")


signal.signal(signal.SIGUSR1, _dump)
"""
"""Run in the operator child when `MCPR_BENCH_DUMP` is set: SIGUSR1 appends RSS, glibc malloc totals, the largest
gc-tracked object types and (with `MCPR_BENCH_TRACEMALLOC=<frames>`) the top allocations to that file."""


def _start_operator(
    plane: ControlPlane,
    *,
    registry_url: str,
    resync: float,
    probe: bool,
    log_path: Path,
    dump_path: Path | None,
    namespaces: tuple[str, ...] = (NAMESPACE,),
    metrics_port: int | None = None,
) -> subprocess.Popen[bytes]:
    code = (
        "import asyncio, sys; from pathlib import Path; "
        f"sys.path.insert(0, {str(REPO)!r}); "
        "from reconciler.operator.config import OperatorConfig; "
        "from reconciler.operator.running import Operator; "
        f"asyncio.run(Operator(OperatorConfig(namespaces={tuple(namespaces)!r}, registry_url={registry_url!r}, "
        f"standalone=True, port={metrics_port!r}, listen_host='127.0.0.1', resync_interval={resync!r}, "
        f"kubeconfig=Path({str(plane.kubeconfig)!r}), allow_private_networks={probe!r})).run())"
    )
    env = dict(os.environ)
    prelude = os.environ.get("MCPR_BENCH_PRELUDE")
    if prelude:  # an experiment (a monkeypatch, a malloc setting) run in the child before the operator starts
        code = prelude + "\n" + code
    if dump_path is not None:
        code = _DIAGNOSTICS + "\n" + code
        env["MCPR_BENCH_DUMP"] = str(dump_path)
    return _spawn(code, log_path=log_path, env=env)


def _spawn(code: str, *, log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = log_path.open("wb")
    try:
        return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT, env=env)
    finally:
        log.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _dump(operator: subprocess.Popen[bytes], dump_path: Path | None) -> None:
    """Ask the child for a diagnostics dump and wait (bounded) until it has been written."""
    if dump_path is None:
        return
    before = dump_path.stat().st_size if dump_path.exists() else 0
    operator.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if dump_path.exists() and dump_path.stat().st_size > before:
            time.sleep(1)
            return
        time.sleep(0.5)


def _wait_started(process: subprocess.Popen[bytes], *, watches: int = 3, timeout: float = 60.0) -> None:
    """Until the process holds its watch connections (kopf is running), bounded; then a second more."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if _open_sockets(process.pid) >= watches:
            break
        time.sleep(0.2)
    time.sleep(1)


def _spec(index: int, demo: DemoServers | None) -> dict[str, Any]:
    """Without demo servers: unreachable URLs and discovery off, so nothing is contacted. With them: every server
    is the demo tools server on 127.0.0.1, discovered and probed (private addresses allowed on both sides)."""
    if demo is None:
        return {"url": f"https://server-{index:05d}.example.com/mcp", "discovery": {"enabled": False}}
    return {"url": demo.tools_url, "network": {"allowPrivate": True}}


def _server(index: int, fleet: Fleet, *, demo: DemoServers | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {
            "name": f"server-{index:05d}",
            "namespace": fleet.namespace_of(index),
            "labels": {LABEL: fleet.prefix},
        },
        "spec": _spec(index, demo),
    }


def _create_namespace(http: KubeHttp, name: str) -> None:
    http.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def _create_namespaces(http: KubeHttp, fleet: Fleet) -> None:
    for namespace in fleet.namespaces:
        _create_namespace(http, namespace)


def _create_all(
    http: KubeHttp,
    fleet: Fleet,
    objects: int,
    *,
    demo: DemoServers | None,
    then: Callable[[str, str], Any] | None = None,
) -> None:
    """Create the objects from 8 threads (as a client applying a folder would); `then(namespace, name)` after each."""

    def one(index: int) -> None:
        body = _server(index, fleet, demo=demo)
        namespace = body["metadata"]["namespace"]
        http.post(custom_path(namespace, "mcpservers"), body)
        if then is not None:
            then(namespace, body["metadata"]["name"])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(objects)))


def _wait_all(
    http: KubeHttp, fleet: Fleet, objects: int, done: Callable[[dict[str, Any]], bool], *, started: float
) -> tuple[float, int]:
    """Poll the fleet until `done` holds for every object: (seconds since `started`, count). Once a second, or
    once per 2,000 objects' worth of listing time for a bigger fleet (a list of 10,000 objects is itself work
    for the API server that every measurement would otherwise pay)."""
    pause = max(1.0, objects / 2000)
    count = 0
    while time.monotonic() - started < CONVERGE_TIMEOUT_SECONDS:
        items = http.get(fleet.collection(), timeout=300)["items"]
        count = sum(1 for item in items if done(item))
        if count == objects:
            break
        time.sleep(pause)
    return time.monotonic() - started, count


def _delete_all(http: KubeHttp, fleet: Fleet) -> None:
    """Drop a baseline's objects (nothing holds a finalizer on them), so the operator's run starts from the same
    etcd size whatever the baselines did."""
    for namespace in fleet.namespaces:
        http.request("DELETE", custom_path(namespace, "mcpservers"), timeout=300)


def _ready_status(generation: int = 1) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "observedGeneration": generation,
        "conditions": [
            {
                "type": kind,
                "status": "True",
                "reason": "Bench",
                "message": "set directly by the benchmark",
                "lastTransitionTime": now,
                "observedGeneration": generation,
            }
            for kind in ("Ready", "Synced")
        ],
    }


def _direct_baseline(
    plane: ControlPlane, http: KubeHttp, objects: int, *, spread: int, demo: DemoServers | None
) -> dict[str, Any]:
    """The cheapest possible controller: the bench itself writes one Ready status per object right after creating
    it (same objects and namespaces, same 8 client threads, same readiness poll as the operator's measurement)."""
    fleet = Fleet(f"{NAMESPACE}-direct", spread)
    _create_namespaces(http, fleet)
    plane_before, requests_before = _plane_cpu_s(plane), _api_requests(http)
    started = time.monotonic()

    def patch_status(namespace: str, name: str) -> None:
        http.patch(custom_path(namespace, "mcpservers", name) + "/status", {"status": _ready_status()})

    _create_all(http, fleet, objects, demo=demo, then=patch_status)
    elapsed, ready = _wait_all(http, fleet, objects, _ready, started=started)
    plane_cpu = _plane_cpu_s(plane) - plane_before
    requests = _requests_since(http, requests_before)
    _delete_all(http, fleet)
    return {
        "all_ready_s": round(elapsed, 1) if ready == objects else None,
        "ready": ready,
        "control_plane_cpu_s": round(plane_cpu, 2),
        "api_requests": requests,
    }


_KOPF_NOOP = """
import asyncio, sys
import kopf
import kubernetes.aio.client  # noqa: F401  (what the operator's own client costs at import)

registry = kopf.OperatorRegistry()


@kopf.on.login(registry=registry)
def login(**kwargs):
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.resume("mcp.reconciler.dev", "v1alpha1", "mcpservers", registry=registry)
@kopf.on.create("mcp.reconciler.dev", "v1alpha1", "mcpservers", registry=registry)
def noop(**_):
    pass


settings = kopf.OperatorSettings()
settings.peering.standalone = True
settings.posting.enabled = False
namespaces = [name for name in sys.argv[1:] if name]
asyncio.run(kopf.operator(registry=registry, settings=settings, namespaces=namespaces, clusterwide=not namespaces))
"""
"""A bare kopf operator: imports kopf and kubernetes.aio, one no-op create/resume handler (kopf still patches its
last-handled-configuration annotation once per object). Its peak RSS is the floor for any kopf operator."""


def _kopf_noop_baseline(
    plane: ControlPlane, http: KubeHttp, objects: int, *, spread: int, workdir: Path
) -> dict[str, Any]:
    fleet = Fleet(f"{NAMESPACE}-kopf", spread)
    _create_namespaces(http, fleet)
    log = (workdir / "kopf-noop.log").open("wb")
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", _KOPF_NOOP, *fleet.operator_namespaces],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
        )
    finally:
        log.close()
    try:
        _wait_started(process, watches=1)
        cpu_before, plane_before, requests_before = _cpu_s(process.pid), _plane_cpu_s(plane), _api_requests(http)
        started = time.monotonic()
        _create_all(http, fleet, objects, demo=None)

        def handled(obj: dict[str, Any]) -> bool:
            annotations = obj["metadata"].get("annotations") or {}
            return "kopf.zalando.org/last-handled-configuration" in annotations

        elapsed, count = _wait_all(http, fleet, objects, handled, started=started)
        cpu, plane_cpu = _cpu_s(process.pid) - cpu_before, _plane_cpu_s(plane) - plane_before
        requests = _requests_since(http, requests_before)
        time.sleep(5)  # let it settle as the operator's run does, so both peaks cover the same phases
        rss = _peak_rss_mb(process.pid)
    finally:
        _stop(process)
    _delete_all(http, fleet)
    return {
        "peak_rss_mb": round(rss, 1),
        "all_handled_s": round(elapsed, 1) if count == objects else None,
        "cpu_to_all_handled_s": round(cpu, 2),
        "control_plane_cpu_s": round(plane_cpu, 2),
        "api_requests": requests,
    }


def _import_rss_mb(statement: str) -> float:
    """Peak RSS of a fresh interpreter that only runs `statement` (what the imports cost before any work).

    VmHWM, not `ru_maxrss`: the latter survives exec, so it would report this (bigger) process's RSS at fork."""
    code = (
        f"{statement}\nprint(next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')).split()[1])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, timeout=120
    )
    return round(int(output.stdout.split()[-1]) / 1024, 1)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


def run(
    objects: int,
    resync: float,
    backend: str,
    *,
    spread: int,
    probe: bool,
    baselines: bool,
    converge_resync: float = SHIPPED_RESYNC_SECONDS,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    with contextlib.ExitStack() as stack:
        demo = stack.enter_context(start_demo_servers()) if probe else None
        plane = start_control_plane(find_binaries(build=True), workdir / "control-plane")
        stack.callback(plane.stop)
        http = KubeHttp(plane.server, plane.token)
        measured: dict[str, Any] = {}
        if baselines:
            measured = {
                "bare_import_rss_mb": _import_rss_mb("import kopf, kubernetes.aio.client"),
                "operator_import_rss_mb": _import_rss_mb("import reconciler.operator"),
                "direct_status_writes": _direct_baseline(plane, http, objects, spread=spread, demo=demo),
                "kopf_noop_operator": _kopf_noop_baseline(plane, http, objects, spread=spread, workdir=workdir),
            }
        registry_url, drop = _registry_url(backend, workdir)
        if drop is not None:
            stack.callback(drop)
        # As the chart's init container does: the operator starts on an up-to-date schema (and never loads Alembic).
        subprocess.run(
            [sys.executable, "-m", "reconciler.cli", "migrate", "--registry", registry_url],
            check=True,
            cwd=REPO,
            timeout=120,
            capture_output=True,
        )
        result = _measure_operator(
            plane,
            http,
            Fleet(NAMESPACE, spread),
            objects,
            resync=resync,
            converge_resync=converge_resync,
            registry_url=registry_url,
            demo=demo,
            workdir=workdir,
        )
        result = {
            "mode": (
                f"probe: every server is the demo tools server {demo.tools_url}, discovered and probed"
                if demo is not None
                else "no probe: example.com URLs with discovery disabled, nothing is contacted"
            ),
            "backend": backend,
            "namespaces": spread,
            "registry": "migrated beforehand by `mcp-reconciler migrate`, as the chart's init container does",
            **result,
        }
        if baselines:
            result["baselines"] = measured
            result["ratios"] = {
                "operator_peak_rss / kopf_noop_peak_rss": _ratio(
                    result["operator_peak_rss_mb"], measured["kopf_noop_operator"]["peak_rss_mb"]
                ),
                # Our imports plus what a no-op kopf operator adds over its own imports (kopf's memory per object):
                # the least peak RSS any operator importing ours can have, before any state of its own.
                "rss_floor_of_our_imports / kopf_noop_peak_rss": _ratio(
                    measured["operator_import_rss_mb"]
                    + measured["kopf_noop_operator"]["peak_rss_mb"]
                    - measured["bare_import_rss_mb"],
                    measured["kopf_noop_operator"]["peak_rss_mb"],
                ),
                "operator_peak_rss / bare_import_rss": _ratio(
                    result["operator_peak_rss_mb"], measured["bare_import_rss_mb"]
                ),
                "all_ready_s / direct_status_writes_all_ready_s": _ratio(
                    result["all_ready_s"], measured["direct_status_writes"]["all_ready_s"]
                ),
                "all_ready_s / kopf_noop_all_handled_s": _ratio(
                    result["all_ready_s"], measured["kopf_noop_operator"]["all_handled_s"]
                ),
                "operator_cpu_to_ready / kopf_noop_cpu_to_all_handled": _ratio(
                    result["operator_cpu_to_ready_s"], measured["kopf_noop_operator"]["cpu_to_all_handled_s"]
                ),
                "control_plane_cpu: operator / direct_status_writes": _ratio(
                    result["control_plane_cpu_to_ready_s"], measured["direct_status_writes"]["control_plane_cpu_s"]
                ),
                "control_plane_cpu: kopf_noop / direct_status_writes": _ratio(
                    measured["kopf_noop_operator"]["control_plane_cpu_s"],
                    measured["direct_status_writes"]["control_plane_cpu_s"],
                ),
                # The operator and the control plane share this machine's cores: their CPU seconds over the
                # cores is the least time the convergence can take here, however the work is scheduled.
                "cpu_floor_of_all_ready_s / direct_status_writes_all_ready_s": _ratio(
                    (result["operator_cpu_to_ready_s"] + result["control_plane_cpu_to_ready_s"]) / CORES,
                    measured["direct_status_writes"]["all_ready_s"],
                ),
                "control_plane_cpu_alone_over_cores / direct_status_writes_all_ready_s": _ratio(
                    result["control_plane_cpu_to_ready_s"] / CORES, measured["direct_status_writes"]["all_ready_s"]
                ),
            }
            result["cores"] = CORES
        return result


def _measure_operator(
    plane: ControlPlane,
    http: KubeHttp,
    fleet: Fleet,
    objects: int,
    *,
    resync: float,
    converge_resync: float,
    registry_url: str,
    demo: DemoServers | None,
    workdir: Path,
) -> dict[str, Any]:
    """Convergence with the shipped resync interval (`converge_resync`), then the idle check: the operator is
    restarted with `resync` and left until its passes show every object checked four times (the pass its start
    asks for and three periodic ones), counting every write meanwhile."""
    _create_namespaces(http, fleet)
    dump_path = workdir / "diagnostics.txt" if os.environ.get("MCPR_BENCH_DIAGNOSTICS") else None
    operator = _start_operator(
        plane,
        registry_url=registry_url,
        resync=converge_resync,
        probe=demo is not None,
        log_path=workdir / "operator.log",
        dump_path=dump_path,
        namespaces=fleet.operator_namespaces,
    )
    try:
        _wait_started(operator)  # start-up (imports, registry migration, kopf discovery) is not measured
        _dump(operator, dump_path)
        sampler = RssSampler(operator.pid)
        sampler.start()
        watcher = Watcher(plane, fleet, seconds=int(CONVERGE_TIMEOUT_SECONDS + IDLE_TIMEOUT_SECONDS + 180))
        watcher.start()
        time.sleep(0.5)

        cpu_before, plane_before, requests_before = _cpu_s(operator.pid), _plane_cpu_s(plane), _api_requests(http)
        started = time.monotonic()
        _create_all(http, fleet, objects, demo=demo)
        created = time.monotonic() - started
        converged, ready = _wait_all(http, fleet, objects, _ready, started=started)
        cpu_to_ready = _cpu_s(operator.pid) - cpu_before
        plane_cpu_to_ready = _plane_cpu_s(plane) - plane_before
        requests_to_ready = _requests_since(http, requests_before)
        _wait_quiet(watcher)  # a write may land after the last Ready (a pass requested twice)
        writes_at_convergence, status_writes_at_convergence = watcher.snapshot()
        per_object_writes, per_object_status = watcher.per_object()
        listed_at_convergence = _versions(http, fleet)
        _dump(operator, dump_path)
        rss = _peak_rss_mb(operator.pid)
        sampler.stop()
    finally:
        _stop(operator)

    metrics_port = _free_loopback_port()
    operator = _start_operator(
        plane,
        registry_url=registry_url,
        resync=resync,
        probe=demo is not None,
        log_path=workdir / "operator-idle.log",
        dump_path=None,
        namespaces=fleet.operator_namespaces,
        metrics_port=metrics_port,
    )
    try:
        _wait_started(operator)
        idle_started = time.monotonic()
        passes = _wait_passes(operator, metrics_port, 4 * objects, timeout=IDLE_TIMEOUT_SECONDS)
        exited = operator.poll()
        idle_s = time.monotonic() - idle_started
        _wait_quiet(watcher)
        writes_after_idle, status_writes_after_idle = watcher.snapshot()
        listed_after_idle = _versions(http, fleet)
    finally:
        _stop(operator)
    return {
        "objects": objects,
        "resync_interval_s": {"to_converge": converge_resync, "idle_check": resync},
        "create_s": round(created, 1),
        "all_ready_s": round(converged, 1) if ready == objects else None,
        "operator_cpu_to_ready_s": round(cpu_to_ready, 2),
        "control_plane_cpu_to_ready_s": round(plane_cpu_to_ready, 2),
        "api_requests_to_ready": requests_to_ready,
        "ready": ready,
        "status_writes_per_object_to_converge": {
            "mean": round(status_writes_at_convergence / objects, 2),
            "max": max(per_object_status.values(), default=0),
        },
        "all_writes_per_object_until_quiet": {
            "mean": round(writes_at_convergence / objects, 2),
            "max": max(per_object_writes.values(), default=0),
            "note": "includes kopf's finalizer patch",
        },
        "idle_check": {
            "what": "the operator restarted (every object gets a pass), then three resync periods",
            "seconds": round(idle_s, 1),
            "passes": passes,
            "passes_wanted": 4 * objects,
            "operator_exited": None if exited is None else f"exit code {exited}, see {workdir / 'operator-idle.log'}",
        },
        "status_writes_during_idle_resyncs": status_writes_after_idle - status_writes_at_convergence,
        "all_writes_during_idle_resyncs": writes_after_idle - writes_at_convergence,
        "watch_ended_early": watcher.ended,
        "objects_written_during_idle_by_listing": {
            "any_write": sum(
                1
                for key, (version, _) in listed_after_idle.items()
                if listed_at_convergence.get(key, ("",))[0] != version
            ),
            "status_changed": sum(
                1
                for key, (_, status) in listed_after_idle.items()
                if listed_at_convergence.get(key, ("", ""))[1] != status
            ),
            "note": "two listings, at convergence and after the idle check: holds even when the watch ended early",
        },
        "operator_peak_rss_mb": round(rss, 1),
        "operator_peak_open_sockets": sampler.peak_sockets(),
        "operator_rss_timeline_s_mb": sampler.timeline(),
        "diagnostics": str(dump_path) if dump_path is not None else None,
    }


def _wait_quiet(watcher: Watcher, *, quiet: float = 5.0, timeout: float = 120.0) -> None:
    """Until the watch stream has shown no write for `quiet` seconds (bounded by `timeout`)."""
    deadline = time.monotonic() + timeout
    last = watcher.snapshot()
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet:
        time.sleep(0.5)
        current = watcher.snapshot()
        if current != last:
            last, quiet_since = current, time.monotonic()


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_passes(process: subprocess.Popen[bytes], port: int, wanted: int, *, timeout: float) -> int:
    """Until the operator's `mcp_reconciler_reconciles_total` (every pass, by kind and outcome) reaches `wanted`,
    bounded by `timeout` and by the process's life, polling its metrics on 127.0.0.1 once a second; returns the last
    count read."""
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                text = response.read().decode()
        except OSError:
            text = ""  # not listening yet
        count = int(
            sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("mcp_reconciler_reconciles_total{")
            )
        )
        if count >= wanted:
            break
        time.sleep(1)
    return count


def _versions(http: KubeHttp, fleet: Fleet) -> dict[str, tuple[str, str]]:
    """namespace/name → (resourceVersion, status as JSON) of every object of the fleet, in one listing."""
    items = http.get(fleet.collection(), timeout=300)["items"]
    return {
        f"{item['metadata']['namespace']}/{item['metadata']['name']}": (
            str(item["metadata"].get("resourceVersion")),
            json.dumps(item.get("status") or {}, sort_keys=True),
        )
        for item in items
    }


def _reported(obj: dict[str, Any]) -> bool:
    """Ready is no longer Unknown: the server's probe has ended, one way or the other."""
    found = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions", [])}
    return found.get("Ready") in ("True", "False")


def _healthy_ready_s(
    http: KubeHttp, namespace: str, servers: list[tuple[str, str]], healthy: set[str], *, poll: float = 0.2
) -> float | None:
    """Create `servers` (name, url) from 8 threads and poll until every one named in `healthy` is Ready: the
    seconds from the first create until then (None past the timeout). Polls 5 times a second, not once."""
    collection = custom_path(namespace, "mcpservers")

    def one(item: tuple[str, str]) -> None:
        name, url = item
        body = {
            "apiVersion": "mcp.reconciler.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"url": url, "network": {"allowPrivate": True}},
        }
        http.post(collection, body)

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, servers))
    while time.monotonic() - started < CONVERGE_TIMEOUT_SECONDS:
        items = http.get(collection, timeout=120)["items"]
        if sum(1 for item in items if item["metadata"]["name"] in healthy and _ready(item)) == len(healthy):
            return time.monotonic() - started
        time.sleep(poll)
    return None


def run_black_holes(objects: int, holes: int, backend: str) -> dict[str, Any]:
    """`objects` healthy servers (the demo tools server) to Ready, alone and then with `holes` black holes (TCP
    listeners on 127.0.0.1 that accept and never answer) created among them, by one operator in one run."""
    from reconciler.demo.serving import ServerLoop

    workdir = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    with contextlib.ExitStack() as stack:
        demo = stack.enter_context(start_demo_servers())
        loop = stack.enter_context(ServerLoop())
        hole_urls = [loop.serve_black_hole() + "/mcp" for _ in range(holes)]
        plane = start_control_plane(find_binaries(build=True), workdir / "control-plane")
        stack.callback(plane.stop)
        http = KubeHttp(plane.server, plane.token)
        registry_url, drop = _registry_url(backend, workdir)
        if drop is not None:
            stack.callback(drop)
        subprocess.run(
            [sys.executable, "-m", "reconciler.cli", "migrate", "--registry", registry_url],
            check=True,
            cwd=REPO,
            timeout=120,
            capture_output=True,
        )
        # A B C C B A: any drift over the run (a warming cache, a growing etcd) weighs on every condition alike.
        # C adds as many servers that answer as B adds black holes: the cost of more objects, apart from the
        # cost of objects that never answer.
        rounds = ("clean", "holes", "extra", "extra", "holes", "clean")
        spaces = [f"{NAMESPACE}-warmup", *(f"{NAMESPACE}-{kind}-{index}" for index, kind in enumerate(rounds))]
        for namespace in spaces:
            _create_namespace(http, namespace)
        operator = _start_operator(
            plane,
            registry_url=registry_url,
            resync=300.0,
            probe=True,
            log_path=workdir / "operator.log",
            dump_path=None,
            namespaces=tuple(spaces),
        )
        timings: dict[str, list[float | None]] = {"clean": [], "holes": [], "extra": []}
        reported: list[float] = []
        try:
            _wait_started(operator)
            healthy = [(f"server-{index:05d}", demo.tools_url) for index in range(objects)]
            names = {name for name, _ in healthy}
            # Imports, the SSL context and the first registry connections are paid here, by neither measurement.
            _healthy_ready_s(http, spaces[0], healthy[:5], {name for name, _ in healthy[:5]})
            every = max(1, objects // max(1, holes))
            for namespace, kind in zip(spaces[1:], rounds, strict=True):
                servers = healthy
                if kind in ("holes", "extra"):
                    hole_items = [
                        (f"hole-{index:03d}", url if kind == "holes" else demo.tools_url)
                        for index, url in enumerate(hole_urls)
                    ]
                    servers = []
                    for index, item in enumerate(healthy):
                        if index % every == 0 and hole_items:
                            servers.append(hole_items.pop(0))
                        servers.append(item)
                    servers.extend(hole_items)
                started = time.monotonic()
                timings[kind].append(_healthy_ready_s(http, namespace, servers, names))
                if kind == "holes":  # the next round starts once these black holes' probes have given up
                    _wait_all(http, Fleet(namespace), len(servers), _reported, started=started)
                    reported.append(round(time.monotonic() - started, 2))
        finally:
            _stop(operator)

    def mean(values: list[float | None]) -> float | None:
        return None if any(value is None for value in values) else sum(values) / len(values)  # type: ignore[arg-type]

    clean, with_holes, extra = mean(timings["clean"]), mean(timings["holes"]), mean(timings["extra"])
    return {
        "mode": (
            f"{objects} healthy servers (demo tools server): alone (A), among {holes} black holes (B), among {holes} "
            "more answering servers (C); rounds A B C C B A"
        ),
        "backend": backend,
        "healthy_ready_s_without_black_holes": [round(t, 2) if t is not None else None for t in timings["clean"]],
        "healthy_ready_s_with_black_holes": [round(t, 2) if t is not None else None for t in timings["holes"]],
        "healthy_ready_s_with_answering_extras": [round(t, 2) if t is not None else None for t in timings["extra"]],
        "all_black_holes_reported_s": reported,
        "mean_without": round(clean, 2) if clean is not None else None,
        "mean_with": round(with_holes, 2) if with_holes is not None else None,
        "mean_with_answering_extras": round(extra, 2) if extra is not None else None,
        "ratio_with / without": _ratio(with_holes, clean),
        "ratio_with / answering extras": _ratio(with_holes, extra),
        "target": "<= 1.1",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument(
        "--namespaces", type=int, default=1, help="spread the objects over this many namespaces (cluster-wide operator)"
    )
    parser.add_argument(
        "--resync", type=float, default=10.0, help="resync interval of the idle check, in seconds (minimum 10)"
    )
    parser.add_argument(
        "--converge-resync",
        type=float,
        default=SHIPPED_RESYNC_SECONDS,
        help="resync interval while the objects converge (default: the shipped one)",
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="serve the demo MCP servers on 127.0.0.1 and have every object discovered and probed against them",
    )
    parser.add_argument(
        "--no-baselines", dest="baselines", action="store_false", help="skip the same-run baselines (no ratios)"
    )
    parser.add_argument(
        "--black-holes",
        type=int,
        default=0,
        metavar="N",
        help="time --objects healthy servers to Ready alone and among N black holes (same run), nothing else",
    )
    args = parser.parse_args()
    if args.black_holes:
        print(json.dumps(run_black_holes(args.objects, args.black_holes, args.backend), indent=2))
        return
    result = run(
        args.objects,
        args.resync,
        args.backend,
        spread=args.namespaces,
        probe=args.probe,
        baselines=args.baselines,
        converge_resync=args.converge_resync,
    )
    timeline = result.pop("operator_rss_timeline_s_mb")
    print(json.dumps(result, indent=2))
    print("operator RSS over time (s, MB):", " ".join(f"{at}:{mb}" for at, mb in timeline))
    if result["all_ready_s"] is not None:
        print(f"throughput: {round(args.objects / result['all_ready_s'], 1)} objects/s to Ready")
    for name, value in result.get("ratios", {}).items():
        print(f"{name}: {value if value is not None else 'n/a'}x")


if __name__ == "__main__":
    main()
