"""The chart's image itself: built here without a daemon (see conftest.py) and run with runc as the chart runs it.

Every container takes its user, `command`/`args`, environment and security context from the chart as Helm
renders it, so a drift between the chart and the image fails here: `--help` (the image's default command), the
`migrate` init container into a SQLite file on the /tmp emptyDir, and the operator container (`run`) with its
service account against a real kube-apiserver, reconciling an MCPServer that points at a real MCP server into
PostgreSQL, answering the chart's health probe, and stopping cleanly on SIGTERM.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.e2e.kube import BinariesUnavailable, ControlPlane, find_binaries, free_port, start_control_plane, wait_for
from tests.e2e.support import create, get, is_ready, registry_at, server
from tests.fixtures.mcp_servers import LocalServers, mcp_servers, server_loop
from tests.fixtures.postgres import postgres_admin_url, postgres_schema_url, postgres_test_engine, postgres_url
from tests.integration.image.running import (
    SERVICE_ACCOUNT_DIR,
    Bundle,
    ClusterService,
    Pod,
    UnpackedImage,
    chart_containers,
    container_config,
    image_config,
    image_tag,
)
from tests.unit.chart.conftest import CHART_DIR, parse_manifests, render_texts
from tests.unit.chart.test_image import env as containerfile_env
from tests.unit.chart.test_image import instruction

__all__ = ["mcp_servers", "postgres_admin_url", "postgres_schema_url", "postgres_test_engine", "postgres_url"]
__all__ += ["server_loop"]

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(30 * 60)]

CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
STORE_KEY = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
READY_SECONDS = 180.0


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


def render(chart: helm.Chart, overrides: Mapping[str, Any], *, namespace: str) -> list[dict[str, Any]]:
    return parse_manifests(render_texts(chart, overrides, release="mcp", namespace=namespace))


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    try:
        binaries = find_binaries(build=True)
    except BinariesUnavailable as error:
        pytest.skip(f"no kube-apiserver for the operator's run from the image: {error}")
    plane = start_control_plane(binaries, tmp_path_factory.mktemp("control-plane"))
    yield plane
    plane.stop()


@pytest.fixture
def cluster_service(control_plane: ControlPlane) -> Iterator[ClusterService]:
    host, port = control_plane.server.removeprefix("https://").rsplit(":", 1)
    service = ClusterService((host, int(port)))
    yield service
    service.close()


@pytest.fixture
def emptydir() -> Iterator[Path]:
    """The pod's /tmp: a host folder the pod's user owns (the test's own tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="mcpr-emptydir-"))
    os.chown(folder, 65532, 65532)
    yield folder
    shutil.rmtree(folder)


def pod_for(
    pod_spec: Mapping[str, Any],
    containers: list[Mapping[str, Any]],
    tmp: Path,
    *,
    secret_values: Mapping[str, str],
    namespace: str = "mcp-system",
    extra_env: Mapping[str, str] | None = None,
    read_only_mounts: Mapping[str, Path] | None = None,
) -> Pod:
    """The kubelet's side of the chart's pod: Secret keys by name, the downward API, mounts."""
    references = [
        item["valueFrom"]["secretKeyRef"]
        for container in containers
        for item in container.get("env", [])
        if "secretKeyRef" in item.get("valueFrom", {})
    ]
    context = pod_spec["securityContext"]
    return Pod(
        uid=context["runAsUser"],
        gid=context["runAsGroup"],
        tmp=tmp,
        secrets={(ref["name"], ref["key"]): secret_values[ref["key"]] for ref in references},
        fields={"metadata.namespace": namespace, "metadata.name": "mcp-mcp-reconciler-0"},
        extra_env=dict(extra_env or {}),
        read_only_mounts=dict(read_only_mounts or {}),
    )


def test_the_image_carries_the_containerfiles_settings_and_the_charts_tag(oci_layout: Path) -> None:
    config = image_config(oci_layout)
    declared = containerfile_env()

    assert image_tag(oci_layout) == CHART["appVersion"]
    assert config["User"] == instruction("USER") == "65532:65532"
    assert config["Entrypoint"] == ["mcp-reconciler"] and config["Cmd"] == ["--help"]
    assert config["WorkingDir"] == instruction("WORKDIR") == "/tmp"
    assert dict(line.split("=", 1) for line in config["Env"]) == declared
    assert config["Labels"]["org.opencontainers.image.version"] == CHART["appVersion"]
    assert config["Labels"]["org.opencontainers.image.title"] == "mcp-reconciler"


def test_the_default_command_prints_the_help(unpacked: UnpackedImage, emptydir: Path, tmp_path: Path) -> None:
    context = {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}
    pod = Pod(uid=65532, gid=65532, tmp=emptydir, secrets={}, fields={}, extra_env={}, read_only_mounts={})

    helped = Bundle.create(unpacked, container_config(unpacked, {"securityContext": context}, pod), tmp_path).run()

    assert helped.returncode == 0, helped.stderr
    assert "migrate" in helped.stdout and "run" in helped.stdout


def test_the_pod_user_sees_a_read_only_root_and_only_tmp_writable(
    unpacked: UnpackedImage, chart: helm.Chart, emptydir: Path, tmp_path: Path
) -> None:
    pod_spec, _migrate, operator = chart_containers(render(chart, {}, namespace="mcp-system"))
    pod = pod_for(pod_spec, [operator], emptydir, secret_values={"dsn": "unused", "store-key": STORE_KEY})
    probe = (
        "import os\n"
        "for path in ('/opt/mcp-reconciler/probe', '/etc/probe', '/tmp/probe'):\n"
        "    try:\n"
        "        open(path, 'w').close(); print(path, 'writable')\n"
        "    except OSError as error:\n"
        "        print(path, error.strerror)\n"
        "print('ids', os.getuid(), os.getgid(), os.getcwd(), os.environ['HOME'])\n"
    )
    shell = {**operator, "command": ["python3", "-c", probe], "args": []}

    seen = Bundle.create(unpacked, container_config(unpacked, shell, pod), tmp_path).run()

    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.splitlines() == [
        "/opt/mcp-reconciler/probe Read-only file system",
        "/etc/probe Read-only file system",
        "/tmp/probe writable",
        "ids 65532 65532 /tmp /tmp",
    ]
    assert (emptydir / "probe").stat().st_uid == 65532


def test_the_migrate_init_container_creates_the_registry_on_tmp(
    unpacked: UnpackedImage, chart: helm.Chart, emptydir: Path, tmp_path: Path
) -> None:
    pod_spec, migrate, _operator = chart_containers(render(chart, {}, namespace="mcp-system"))
    registry = "sqlite:////tmp/registry.db"
    pod = pod_for(pod_spec, [migrate], emptydir, secret_values={"dsn": registry})

    first = Bundle.create(unpacked, container_config(unpacked, migrate, pod), tmp_path / "first").run()
    again = Bundle.create(unpacked, container_config(unpacked, migrate, pod), tmp_path / "again").run()

    assert migrate["command"] == ["mcp-reconciler", "migrate"]
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"migrated {registry}: 0001_initial")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().endswith("is up to date")
    assert (emptydir / "registry.db").stat().st_uid == 65532


def test_the_operator_runs_from_the_image_as_the_chart_runs_it(
    unpacked: UnpackedImage,
    chart: helm.Chart,
    control_plane: ControlPlane,
    cluster_service: ClusterService,
    mcp_servers: LocalServers,
    postgres_schema_url: str,
    emptydir: Path,
    tmp_path: Path,
) -> None:
    kube = control_plane.http
    namespace = f"image-{secrets.token_hex(3)}"
    kube.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    metrics_port = free_port()
    values = {
        "watch": {"scope": "Namespaced", "namespaces": [namespace]},
        "peering": {"enabled": False},
        "probe": {"allowPrivateNetworks": True},
        "metrics": {"port": metrics_port},
    }
    pod_spec, migrate, operator = chart_containers(render(chart, values, namespace=namespace))
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(control_plane.token)
    (account / "namespace").write_text(namespace)
    (account / "ca.crt").write_bytes((control_plane.workdir / "certs" / "apiserver.crt").read_bytes())
    for path in (tmp_path, account, *account.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    hosts = tmp_path / "hosts"
    hosts.write_text(cluster_service.hosts())
    hosts.chmod(0o644)
    pod = pod_for(
        pod_spec,
        [migrate, operator],
        emptydir,
        secret_values={"dsn": postgres_schema_url, "store-key": STORE_KEY},
        namespace=namespace,
        # The name rather than the Service's IP: the API server's certificate names 10.96.0.1, not our address.
        extra_env={"KUBERNETES_SERVICE_HOST": "kubernetes.default.svc", "KUBERNETES_SERVICE_PORT": "443"},
        read_only_mounts={SERVICE_ACCOUNT_DIR: account, "/etc/hosts": hosts},
    )
    migrated = Bundle.create(unpacked, container_config(unpacked, migrate, pod), tmp_path / "migrate").run()
    assert migrated.returncode == 0, migrated.stderr

    bundle = Bundle.create(unpacked, container_config(unpacked, operator, pod), tmp_path / "operator")
    running = bundle.start()
    try:
        spec: dict[str, Any] = {
            "url": mcp_servers.tools,
            "network": {"allowPrivate": True},
            "discovery": {"enabled": True},
        }
        ref = create(kube, server(namespace, "tools", **spec))

        def ready() -> dict[str, Any] | None:
            assert running.poll() is None, "the operator container exited"
            obj = get(kube, ref)
            return obj if is_ready(obj) else None

        reconciled: dict[str, Any] | None = None
        try:
            reconciled = wait_for(ready, timeout=READY_SECONDS, interval=0.5, what=f"{ref} to be Ready")
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=10) as response:
                health = response.status
        except AssertionError:
            health = None
    finally:
        code, out, err = bundle.stop(running)

    logs = (out + err)[-6000:]
    assert reconciled is not None, f"not Ready; the operator container said:\n{logs}"
    assert operator["args"][:4] == ["run", "-n", namespace, "--standalone"]
    assert "--allow-private-networks" in operator["args"] and "--metrics-port" in operator["args"]
    assert health == 200
    tools = reconciled["status"]["tools"]
    with registry_at(postgres_schema_url) as registry:
        row = registry.fetch_state().rows.get(("servers", namespace, "tools"))
        [snapshot] = registry.fetch_tool_snapshots(namespace, "tools")
    assert row is not None
    assert tools["count"] == len(snapshot.tools) > 0 and tools["hash"] == snapshot.hash
    assert code == 0, f"exit {code} on SIGTERM:\n{logs}"
    assert STORE_KEY not in out + err and control_plane.token not in out + err
