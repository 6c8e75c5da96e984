"""The README's kubectl commands for the CRDs, run as written against the e2e API server (Kubernetes 1.20):
below 1.25 the server-side apply the README gives for current clusters is refused (the CEL rules are unknown),
and the client-side apply with `--validate=false` it gives for older ones installs the CRDs.

Needs kubectl; where it cannot be found the test skips (in CI too: it is a client tool, not a service)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess

import pytest

from tests.e2e.kube import REPO, ControlPlane

README = REPO / "README.md"
KUBECTL_TIMEOUT_SECONDS = 120


def _readme_commands() -> list[str]:
    """Every `kubectl apply ... crds/` command the README gives, in code blocks or inline."""
    text = README.read_text()
    found = re.findall(r"(kubectl apply [^`\n]*-f charts/mcp-reconciler/crds/)", text)
    return list(dict.fromkeys(found))


@pytest.fixture
def kubectl() -> str:
    """Requested before the control plane, so a missing kubectl skips without starting one."""
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl not found on PATH")
    return found


def _run(kubectl: str, control_plane: ControlPlane, command: str) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(command)
    assert argv[0] == "kubectl"
    return subprocess.run(
        [kubectl, "--kubeconfig", str(control_plane.kubeconfig), *argv[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.mark.optional_tool
def test_the_readmes_crd_commands_work_below_kubernetes_1_25(kubectl: str, control_plane: ControlPlane) -> None:
    def _kubectl(plane: ControlPlane, command: str) -> subprocess.CompletedProcess[str]:
        return _run(kubectl, plane, command)

    commands = _readme_commands()
    current = "kubectl apply --server-side -f charts/mcp-reconciler/crds/"
    older = "kubectl apply --validate=false -f charts/mcp-reconciler/crds/"
    assert current in commands and older in commands, commands
    version = _kubectl(control_plane, "kubectl version -o json")
    assert '"minor": "20"' in version.stdout, version.stdout + version.stderr

    refused = _kubectl(control_plane, current)
    assert refused.returncode != 0 and "x-kubernetes-validations" in refused.stderr, refused
    refused = _kubectl(control_plane, "kubectl apply --server-side --validate=false -f charts/mcp-reconciler/crds/")
    assert refused.returncode != 0 and "x-kubernetes-validations: field not declared" in refused.stderr, refused

    applied = _kubectl(control_plane, older)
    assert applied.returncode == 0, applied.stderr
    crds = sorted(p.name for p in (REPO / "charts" / "mcp-reconciler" / "crds").glob("*.yaml"))
    assert len(applied.stdout.splitlines()) == len(crds) + 1, applied.stdout  # kopf's two peering CRDs in one file
    listed = _kubectl(control_plane, "kubectl get crd mcpservers.mcp.reconciler.dev -o name")
    assert listed.stdout.strip() == "customresourcedefinition.apiextensions.k8s.io/mcpservers.mcp.reconciler.dev"
