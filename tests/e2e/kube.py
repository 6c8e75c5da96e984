"""A real Kubernetes control plane for the e2e suite: etcd + kube-apiserver on free 127.0.0.1 ports.

`find_binaries` honours `$KUBEBUILDER_ASSETS`, then the cache `~/.cache/mcp-reconciler/kube-1.20.2/`, and
otherwise runs `.ci/kube-assets.sh` (builds the API server from Debian's source package once, ~5-8 minutes on
2 cores, then caches it). `ControlPlane` starts both processes with token auth in a temp dir, writes a
kubeconfig, and installs the CRDs from `crds/`. `KubeHttp` is the suite's small JSON client (the server-side
`Table` view `kubectl get` prints needs a custom Accept header, which is easiest with plain HTTP).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBE_VERSION = "1.20.2"
ASSETS_SCRIPT = REPO / ".ci" / "kube-assets.sh"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mcp-reconciler" / f"kube-{KUBE_VERSION}"
BUILD_TIMEOUT_SECONDS = 45 * 60
START_TIMEOUT_SECONDS = 60
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"
GROUP, VERSION = "mcp.reconciler.dev", "v1alpha1"
PR_SET_PDEATHSIG = 1

_T = TypeVar("_T")


class BinariesUnavailable(RuntimeError):
    """The API server binaries are neither provided, cached, nor buildable here."""


def _usable(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in ("etcd", "kube-apiserver"))


def find_binaries(*, build: bool = True) -> Path:
    """The directory holding `etcd` and `kube-apiserver`; builds into the cache when allowed and needed."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and _usable(Path(assets)):
        return Path(assets)
    if _usable(CACHE_DIR):
        return CACHE_DIR
    if not build:
        raise BinariesUnavailable(f"no kube-apiserver in $KUBEBUILDER_ASSETS or {CACHE_DIR}")
    try:
        done = subprocess.run(
            ["bash", str(ASSETS_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BinariesUnavailable(f"{ASSETS_SCRIPT.name} could not run: {error}") from error
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not _usable(Path(lines[-1])):
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise BinariesUnavailable(f"{ASSETS_SCRIPT.name} failed (exit {done.returncode}):\n{tail}")
    return Path(lines[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], _T | None], *, timeout: float, interval: float = 0.2, what: str = "condition") -> _T:
    """Poll `check` until it returns something truthy; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: _T | None = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class KubeError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


class KubeHttp:
    """JSON over HTTPS with a bearer token (TLS is not verified: the server's cert is self-signed, on 127.0.0.1)."""

    def __init__(self, server: str, token: str) -> None:
        self.server = server
        self._token = token
        self._context = ssl.create_default_context()
        self._context.check_hostname = False
        self._context.verify_mode = ssl.CERT_NONE

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        accept: str = "application/json",
        timeout: float = 30,
        raw: bool = False,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", accept)
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, context=self._context, timeout=timeout) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise KubeError(error.code, error.read().decode(errors="replace")) from None
        if raw:
            return text
        return json.loads(text) if text else None

    def watch(self, path: str, *, seconds: int) -> list[dict[str, Any]]:
        """Every watch event on `path` for `seconds` (the server ends the stream; meant for a helper thread)."""
        separator = "&" if "?" in path else "?"
        text = self.request(
            "GET", f"{path}{separator}watch=true&timeoutSeconds={seconds}", timeout=seconds + 30, raw=True
        )
        return [json.loads(line) for line in str(text).splitlines() if line.strip()]

    def get(self, path: str, **options: Any) -> Any:
        return self.request("GET", path, **options)

    def maybe_get(self, path: str) -> Any:
        try:
            return self.get(path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str) -> Any:
        try:
            return self.request("DELETE", path)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def apply(self, manifest: Mapping[str, Any]) -> Any:
        """Create the object, or replace its spec/data/labels/annotations when it exists (a tiny `kubectl apply`)."""
        path = object_path(manifest)
        try:
            return self.post(collection_path(manifest), manifest)
        except KubeError as error:
            if error.status != 409:
                raise
        current = self.get(path)
        updated = dict(manifest)
        updated["metadata"] = {**manifest["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
        return self.request("PUT", path, updated)


def _plural(kind: str) -> str:
    return {"Namespace": "namespaces", "ConfigMap": "configmaps", "Secret": "secrets"}.get(kind, kind.lower() + "s")


def collection_path(manifest: Mapping[str, Any]) -> str:
    api_version = manifest["apiVersion"]
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    namespace = manifest["metadata"].get("namespace")
    if manifest["kind"] == "Namespace" or namespace is None:
        return f"{base}/{_plural(manifest['kind'])}"
    return f"{base}/namespaces/{namespace}/{_plural(manifest['kind'])}"


def object_path(manifest: Mapping[str, Any]) -> str:
    return f"{collection_path(manifest)}/{manifest['metadata']['name']}"


def custom_path(namespace: str, plural: str, name: str | None = None) -> str:
    base = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
    return base if name is None else f"{base}/{name}"


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver pair and the means to reach it."""

    server: str
    token: str
    kubeconfig: Path
    processes: list[subprocess.Popen[bytes]]
    workdir: Path

    @property
    def http(self) -> KubeHttp:
        return KubeHttp(self.server, self.token)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the test process dies, so no control plane outlives it."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def start_control_plane(binaries: Path, workdir: Path) -> ControlPlane:
    """Start etcd and kube-apiserver under `workdir`; returns once `/readyz` answers and the CRDs are served."""
    workdir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    (workdir / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    _openssl("genrsa", "-out", str(workdir / "sa.key"), "2048")
    _openssl("rsa", "-in", str(workdir / "sa.key"), "-pubout", "-out", str(workdir / "sa.pub"))
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    etcd_log = (logs / "etcd.log").open("wb")
    etcd = subprocess.Popen(
        [
            str(binaries / "etcd"),
            "--name=e2e",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=e2e=http://127.0.0.1:{peer_port}",
            "--log-level=error",
        ],
        stdout=etcd_log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    etcd_log.close()  # the child has its own descriptor
    processes.append(etcd)
    apiserver_log = (logs / "kube-apiserver.log").open("wb")
    apiserver = subprocess.Popen(
        [
            str(binaries / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={api_port}",
            "--insecure-port=0",
            f"--cert-dir={workdir / 'certs'}",
            f"--token-auth-file={workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={workdir / 'sa.pub'}",
            f"--service-account-signing-key-file={workdir / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/24",
            "--disable-admission-plugins=ServiceAccount",
            "--enable-priority-and-fairness=false",
            "--v=0",
        ],
        stdout=apiserver_log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    apiserver_log.close()
    processes.append(apiserver)
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = workdir / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "e2e", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "admin", "user": {"token": token}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
                "current-context": "e2e",
            }
        )
    )
    plane = ControlPlane(server=server, token=token, kubeconfig=kubeconfig, processes=processes, workdir=workdir)
    try:
        _wait_ready(plane)
        install_crds(plane.http)
    except BaseException:
        plane.stop()
        raise
    return plane


def _wait_ready(plane: ControlPlane) -> None:
    http = plane.http

    def ready() -> bool:
        for process in plane.processes:
            if process.poll() is not None:
                log = (plane.workdir / "logs" / "kube-apiserver.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"control plane process exited ({process.returncode}):\n{log}")
        try:
            http.request("GET", "/readyz", accept="*/*", timeout=5, raw=True)
        except (OSError, KubeError):
            return False
        return True

    wait_for(ready, timeout=START_TIMEOUT_SECONDS, interval=0.3, what="kube-apiserver /readyz")


def crd_manifests() -> Iterator[dict[str, Any]]:
    for path in sorted((REPO / "crds").glob("*.yaml")):
        yield yaml.safe_load(path.read_text())


def install_crds(http: KubeHttp) -> None:
    """Install every CRD from `crds/` and wait until the API server serves them."""
    names = []
    for manifest in crd_manifests():
        http.apply(manifest)
        names.append(manifest["metadata"]["name"])

    def established() -> bool:
        for name in names:
            crd = http.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            conditions = {c["type"]: c["status"] for c in crd.get("status", {}).get("conditions", [])}
            if conditions.get("Established") != "True":
                return False
        return all(http.maybe_get(f"/apis/{GROUP}/{VERSION}") for _ in (0,))

    wait_for(established, timeout=30, what="CRDs to be established")
