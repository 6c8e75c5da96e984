"""Running the unpacked image with runc the way the kubelet runs the chart's containers.

`container_config` turns the image's runtime config (from `umoci unpack`) and one rendered container of the
chart into a runc config: the pod's user and group, the container's `command`/`args` and `env`, a read-only
root filesystem, every capability dropped, no privilege escalation, and an emptyDir-like host folder owned by
the pod's user at /tmp, the one writable place. The container joins the host's network namespace so that what
it reaches (the API server, PostgreSQL, an MCP server) is on 127.0.0.1. `ClusterService` stands in for the
`kubernetes` Service and the pod's /etc/hosts: in a pod, kopf's service-account login dials
`https://kubernetes.default.svc` (port 443), whatever KUBERNETES_SERVICE_HOST says. Used by `test_image.py`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import secrets
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_TIMEOUT_SECONDS = 180
STOP_TIMEOUT_SECONDS = 60
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def image_tag(layout: Path) -> str:
    [manifest] = json.loads((layout / "index.json").read_text())["manifests"]
    return str(manifest["annotations"]["org.opencontainers.image.ref.name"])


def image_config(layout: Path) -> dict[str, Any]:
    """The image's OCI config (`config` of the config blob): User, Entrypoint, Cmd, Env, WorkingDir, Labels."""

    def blob(descriptor: Mapping[str, Any]) -> dict[str, Any]:
        algorithm, digest = str(descriptor["digest"]).split(":")
        return dict(json.loads((layout / "blobs" / algorithm / digest).read_text()))

    [manifest] = json.loads((layout / "index.json").read_text())["manifests"]
    return dict(blob(blob(manifest)["config"])["config"])


@dataclass(frozen=True)
class Pod:
    """What the kubelet would supply around a container: its user, its environment's sources, its mounts."""

    uid: int
    gid: int
    tmp: Path
    secrets: Mapping[tuple[str, str], str]
    """(Secret name, key) → value, for `valueFrom.secretKeyRef`."""
    fields: Mapping[str, str]
    """fieldPath → value, for `valueFrom.fieldRef`."""
    extra_env: Mapping[str, str]
    """What the kubelet injects (KUBERNETES_SERVICE_HOST/PORT)."""
    read_only_mounts: Mapping[str, Path]


def resolve_env(container: Mapping[str, Any], pod: Pod) -> list[str]:
    values = []
    for item in container.get("env", []):
        source = item.get("valueFrom")
        if source is None:
            value = item["value"]
        elif "secretKeyRef" in source:
            value = pod.secrets[(source["secretKeyRef"]["name"], source["secretKeyRef"]["key"])]
        else:
            value = pod.fields[source["fieldRef"]["fieldPath"]]
        values.append(f"{item['name']}={value}")
    return values


@dataclass(frozen=True)
class UnpackedImage:
    """`umoci unpack`'s bundle (rootfs/ and its config.json) and the image's ENTRYPOINT and CMD."""

    bundle: Path
    runtime: Mapping[str, Any]
    entrypoint: list[str]
    cmd: list[str]


def kubelet_argv(image: UnpackedImage, container: Mapping[str, Any]) -> list[str]:
    """Kubernetes' rule: `command` replaces ENTRYPOINT and drops CMD; `args` replaces CMD."""
    command = container.get("command", image.entrypoint)
    args = container.get("args", [] if "command" in container else image.cmd)
    return [*command, *args]


def container_config(image: UnpackedImage, container: Mapping[str, Any], pod: Pod) -> dict[str, Any]:
    """runc's config.json for `container` of the chart, on the unpacked image's runtime config."""
    config = copy.deepcopy(dict(image.runtime))
    process = config["process"]
    context = container["securityContext"]
    assert context["capabilities"]["drop"] == ["ALL"] and context["allowPrivilegeEscalation"] is False
    process["terminal"] = False
    process["user"] = {"uid": pod.uid, "gid": pod.gid, "additionalGids": [pod.gid]}
    process["args"] = kubelet_argv(image, container)
    image_env = [line for line in process["env"] if not line.startswith("TERM=")]
    process["env"] = [*image_env, *resolve_env(container, pod), *(f"{k}={v}" for k, v in pod.extra_env.items())]
    process["capabilities"] = {kind: [] for kind in ("bounding", "effective", "inheritable", "permitted", "ambient")}
    process["noNewPrivileges"] = True
    config["root"]["readonly"] = bool(context["readOnlyRootFilesystem"])
    config["linux"]["namespaces"] = [ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"]
    config["mounts"].append(
        {"destination": "/tmp", "type": "bind", "source": str(pod.tmp), "options": ["rbind", "rw", "nosuid", "nodev"]}
    )
    for destination, source in pod.read_only_mounts.items():
        config["mounts"].append(
            {"destination": destination, "type": "bind", "source": str(source), "options": ["rbind", "ro"]}
        )
    return config


@dataclass
class Bundle:
    """One container's runc bundle: its own config.json over the shared, read-only unpacked rootfs."""

    path: Path
    id: str

    @classmethod
    def create(cls, image: UnpackedImage, config: Mapping[str, Any], folder: Path) -> Bundle:
        folder.mkdir(parents=True, exist_ok=True)
        written = dict(config)
        written["root"] = {**config["root"], "path": str(image.bundle / "rootfs")}
        (folder / "config.json").write_text(json.dumps(written))
        return cls(path=folder, id=f"mcpr-image-test-{secrets.token_hex(4)}")

    def run(self) -> subprocess.CompletedProcess[str]:
        """Run to completion (bounded), like an init container."""
        try:
            return subprocess.run(
                ["runc", "run", "--bundle", str(self.path), self.id],
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT_SECONDS,
                check=False,
            )
        finally:
            self.delete()

    def start(self) -> subprocess.Popen[str]:
        """Start in the foreground of a child process, like a long-running container; stop with `stop`."""
        return subprocess.Popen(
            ["runc", "run", "--bundle", str(self.path), self.id],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def stop(self, running: subprocess.Popen[str]) -> tuple[int, str, str]:
        """SIGTERM, as the kubelet sends on pod deletion; (exit code, stdout, stderr) once it has exited."""
        try:
            subprocess.run(["runc", "kill", self.id, "TERM"], capture_output=True, timeout=30, check=False)
            out, err = running.communicate(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            subprocess.run(["runc", "kill", self.id, "KILL"], capture_output=True, timeout=30, check=False)
            out, err = running.communicate(timeout=30)
        finally:
            self.delete()
        return running.returncode, out, err

    def delete(self) -> None:
        subprocess.run(["runc", "delete", "--force", self.id], capture_output=True, timeout=30, check=False)


def chart_containers(manifests: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(pod spec, `migrate` init container, `operator` container) of the chart's operator Deployment."""
    [deployment] = [
        m
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
    pod = deployment["spec"]["template"]["spec"]
    [migrate] = pod["initContainers"]
    [operator] = pod["containers"]
    return pod, migrate, operator


class ClusterService:
    """The `kubernetes` Service as kube-proxy and cluster DNS make it: a loopback address of its own, port 443,
    forwarded to the API server, and the /etc/hosts line naming it `kubernetes.default.svc`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.address = f"127.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}"
        self._listener = socket.create_server((self.address, 443))
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name="cluster-service").start()

    def hosts(self) -> str:
        return f"127.0.0.1\tlocalhost\n{self.address}\tkubernetes.default.svc kubernetes.default kubernetes\n"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                if self._listener.fileno() == -1:
                    return
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._open:
                sock.close()
