"""Operator benchmark against a real kube-apiserver + etcd: 1,000 MCPServer objects from creation to Ready.

Starts the control plane the e2e suite uses (building it once if needed, see `.ci/kube-assets.sh`), runs the
operator as a child process through `run_operator` (so its peak RSS is its own), creates the objects with
discovery disabled, and prints: time until all are Ready/Synced, status writes per object (and all writes,
kopf's bookkeeping included) until convergence and then during three idle resync periods, counted from a
watch, and the operator's peak RSS. Targets: ≤ 2 status writes per object to converge, none while idle,
peak RSS ≤ 250 MB. Prints numbers; asserts nothing.

    python bench/operator_bench.py [--objects 1000] [--resync 10] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.kube import ControlPlane, KubeHttp, custom_path, find_binaries, start_control_plane  # noqa: E402

NAMESPACE = "bench"
POSTGRES_ADMIN = os.environ.get("MCP_RECONCILER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CONVERGE_TIMEOUT_SECONDS = 900


class Watcher(threading.Thread):
    """Streams watch events of the namespace's MCPServers and counts, per object, writes and status changes."""

    def __init__(self, plane: ControlPlane, *, seconds: int) -> None:
        super().__init__(daemon=True, name="watcher")
        self._plane = plane
        self._seconds = seconds
        self.lock = threading.Lock()
        self.writes: Counter[str] = Counter()
        self.status_writes: Counter[str] = Counter()
        self._last_status: dict[str, str] = {}
        self.marks: list[tuple[float, int, int]] = []

    def run(self) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        path = custom_path(NAMESPACE, "mcpservers") + f"?watch=true&timeoutSeconds={self._seconds}"
        request = urllib.request.Request(self._plane.server + path)
        request.add_header("Authorization", f"Bearer {self._plane.token}")
        with urllib.request.urlopen(request, context=context, timeout=self._seconds + 60) as response:
            for line in response:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] not in ("ADDED", "MODIFIED"):
                    continue
                obj = event["object"]
                name = obj["metadata"]["name"]
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
    """Samples the operator's resident memory, to show when the peak happens (burst or steady growth)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self._pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(1.0):
            try:
                for line in Path(f"/proc/{self._pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.samples.append((round(time.monotonic() - started), int(line.split()[1]) / 1024))
            except OSError:
                return

    def stop(self) -> None:
        self._stop.set()

    def timeline(self, points: int = 12) -> list[tuple[float, int]]:
        step = max(1, len(self.samples) // points)
        return [(at, round(mb)) for at, mb in self.samples[::step]]


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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


def _start_operator(
    plane: ControlPlane, *, registry_url: str, resync: float, log_path: Path
) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from pathlib import Path; "
        f"sys.path.insert(0, {str(REPO)!r}); "
        "from reconciler.operator import run_operator; "
        f"run_operator([{NAMESPACE!r}], registry_url={registry_url!r}, standalone=True, port=None, "
        f"resync_interval={resync!r}, kubeconfig=Path({str(plane.kubeconfig)!r}))"
    )
    log = log_path.open("wb")
    try:
        return subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def _server(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": f"server-{index:05d}", "namespace": NAMESPACE},
        "spec": {"url": f"https://server-{index:05d}.example.com/mcp", "discovery": {"enabled": False}},
    }


def run(objects: int, resync: float, backend: str) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    plane = start_control_plane(find_binaries(build=True), workdir / "control-plane")
    http = KubeHttp(plane.server, plane.token)
    registry_url, drop = _registry_url(backend, workdir)
    operator = None
    try:
        http.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        operator = _start_operator(plane, registry_url=registry_url, resync=resync, log_path=workdir / "operator.log")
        time.sleep(3)  # operator start-up (registry migration, kopf discovery) is not part of the measurement
        sampler = RssSampler(operator.pid)
        sampler.start()
        idle_window = 3 * resync * 1.2 + 5
        watcher = Watcher(plane, seconds=int(CONVERGE_TIMEOUT_SECONDS + idle_window + 180))
        watcher.start()
        time.sleep(0.5)

        started = time.monotonic()
        collection = custom_path(NAMESPACE, "mcpservers")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: http.post(collection, _server(i)), range(objects)))
        created = time.monotonic() - started

        ready = 0
        while time.monotonic() - started < CONVERGE_TIMEOUT_SECONDS:
            items = http.get(collection, timeout=120)["items"]
            ready = sum(1 for item in items if _ready(item))
            if ready == objects:
                break
            time.sleep(1)
        converged = time.monotonic() - started
        # kopf's own bookkeeping patch (last-handled-configuration) may land after the status: wait until the
        # stream has been quiet for a few seconds, so the idle window measures only idle resyncs.
        settle_deadline = time.monotonic() + 120
        last = watcher.snapshot()
        quiet_since = time.monotonic()
        while time.monotonic() < settle_deadline and time.monotonic() - quiet_since < 5:
            time.sleep(0.5)
            current = watcher.snapshot()
            if current != last:
                last, quiet_since = current, time.monotonic()
        writes_at_convergence, status_writes_at_convergence = watcher.snapshot()
        per_object_writes, per_object_status = watcher.per_object()

        time.sleep(idle_window)
        writes_after_idle, status_writes_after_idle = watcher.snapshot()
        rss = _peak_rss_mb(operator.pid)
        sampler.stop()
        return {
            "backend": backend,
            "objects": objects,
            "resync_interval_s": resync,
            "create_s": round(created, 1),
            "all_ready_s": round(converged, 1) if ready == objects else None,
            "ready": ready,
            "status_writes_per_object_to_converge": {
                "mean": round(status_writes_at_convergence / objects, 2),
                "max": max(per_object_status.values(), default=0),
            },
            "all_writes_per_object_until_quiet": {
                "mean": round(writes_at_convergence / objects, 2),
                "max": max(per_object_writes.values(), default=0),
                "note": "includes kopf's finalizer and last-handled-configuration patches",
            },
            "idle_window_s": round(idle_window, 1),
            "status_writes_during_idle_resyncs": status_writes_after_idle - status_writes_at_convergence,
            "all_writes_during_idle_resyncs": writes_after_idle - writes_at_convergence,
            "operator_peak_rss_mb": round(rss, 1),
            "operator_rss_timeline_s_mb": sampler.timeline(),
        }
    finally:
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
                operator.wait(timeout=10)
        plane.stop()
        if drop is not None:
            drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--resync", type=float, default=10.0, help="resync interval in seconds (minimum 10)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    result = run(args.objects, args.resync, args.backend)
    timeline = result.pop("operator_rss_timeline_s_mb")
    print(json.dumps(result, indent=2))
    print("operator RSS over time (s, MB):", " ".join(f"{at}:{mb}" for at, mb in timeline))
    if result["all_ready_s"] is not None:
        rate = defaultdict(float, {"objects_per_s": round(args.objects / result["all_ready_s"], 1)})
        print(f"throughput: {rate['objects_per_s']} objects/s to Ready")


if __name__ == "__main__":
    main()
