"""The Containerfile and the chart agree: the image the chart names is the one `make image` tags, its user is
the pod's, its entrypoint is the binary the chart's containers call, and what it writes goes under /tmp, the one
writable mount of a read-only root filesystem."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.unit.chart.conftest import Render, one

ROOT = Path(__file__).resolve().parents[3]
CONTAINERFILE = (ROOT / "Containerfile").read_text()
VALUES = yaml.safe_load((ROOT / "charts" / "mcp-reconciler" / "values.yaml").read_text())
CHART = yaml.safe_load((ROOT / "charts" / "mcp-reconciler" / "Chart.yaml").read_text())


def final_stage() -> str:
    return CONTAINERFILE.rsplit("\nFROM ", 1)[1]


def instruction(name: str) -> str:
    [value] = re.findall(rf"^{name} (.+)$", final_stage(), flags=re.MULTILINE)
    return value.strip()


def env() -> dict[str, str]:
    block = re.search(r"^ENV (.+?)(?:\n(?! )|\Z)", final_stage(), flags=re.MULTILINE | re.DOTALL)
    assert block is not None
    pairs = re.findall(r"(\w+)=(\S+)", block.group(1).replace("\\\n", " "))
    return dict(pairs)


def test_the_image_is_multi_stage_and_installs_the_built_wheel_into_a_venv() -> None:
    assert CONTAINERFILE.count("\nFROM ") == 2
    assert "python -m build --wheel" in CONTAINERFILE
    assert "/opt/mcp-reconciler/bin/pip install --no-cache-dir --quiet /dist/*.whl" in CONTAINERFILE
    assert "COPY --from=build /opt/mcp-reconciler /opt/mcp-reconciler" in final_stage()
    assert "compileall" in CONTAINERFILE  # bytecode at build time: the root filesystem is read-only at run time


def test_user_and_entrypoint_match_the_chart(render: Render) -> None:
    deployment = one(render(), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [migrate] = pod["initContainers"]
    [operator] = pod["containers"]

    user, group = instruction("USER").split(":")
    assert (int(user), int(group)) == (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"])
    entrypoint = json.loads(instruction("ENTRYPOINT"))
    assert migrate["command"] == [*entrypoint, "migrate"]
    assert operator["command"] == entrypoint
    assert operator["args"][0] == "run"
    for container in (migrate, operator):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        chart_env: dict[str, Any] = {item["name"]: item.get("value") for item in container["env"]}
        assert chart_env["HOME"] == env()["HOME"] == "/tmp"
        assert chart_env["PYTHONDONTWRITEBYTECODE"] == env()["PYTHONDONTWRITEBYTECODE"] == "1"
    mounts = {mount["mountPath"] for mount in operator.get("volumeMounts", [])}
    assert instruction("WORKDIR") == "/tmp" and "/tmp" in mounts


def make_image_dry_run(tool: str) -> str:
    return subprocess.run(
        ["make", "-n", "image", f"CONTAINER_TOOL={tool}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


def test_make_image_tags_the_image_the_chart_pulls(render: Render) -> None:
    deployment = one(render(), "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    repository, tag = VALUES["image"]["repository"], CHART["appVersion"]

    assert image == f"{repository}:{tag}"
    assert f"IMAGE={repository} VERSION={tag} BASE= .ci/build-image.sh" in make_image_dry_run("buildah")
    assert f"podman build -f Containerfile --build-arg VERSION={tag}  -t {image} ." in make_image_dry_run("podman")


def test_the_daemonless_build_script_defaults_to_the_charts_image() -> None:
    script = (ROOT / ".ci" / "build-image.sh").read_text()

    assert f'IMAGE="${{IMAGE:-{VALUES["image"]["repository"]}}}"' in script
    assert "charts/mcp-reconciler/Chart.yaml" in script  # VERSION defaults to the chart's appVersion
    assert "-f Containerfile" in script and '--build-arg BASE="$BASE"' in script
