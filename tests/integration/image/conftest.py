"""Fixtures of the image tests: the image built once per source state (a cached OCI layout) and unpacked once.

`.ci/build-image.sh` builds the Containerfile with buildah on a base root filesystem that mmdebstrap makes from
Debian's archive: no daemon and no container registry. Its OCI layout is kept in
`~/.cache/mcp-reconciler/image/<key>/`, keyed by a hash of every input of the build (the Containerfile, the
script, pyproject.toml, README.md and `reconciler/`), so a session rebuilds only after a change to them (about
3 minutes on a busy 2-core machine; 70 s once the base is cached in the build storage). A lock keeps two
sessions from building at once. Without the tools or root the tests skip with the reason, which CI
(MCP_RECONCILER_REQUIRE_SERVICES=1) turns into a failure; `.ci/run` installs the tools.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.image.running import UnpackedImage, image_config, image_tag

ROOT = Path(__file__).resolve().parents[3]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mcp-reconciler" / "image"
TOOLS = {"buildah": "buildah", "mmdebstrap": "mmdebstrap", "umoci": "umoci", "runc": "runc"}
BUILD_TIMEOUT_SECONDS = 20 * 60
UNPACK_TIMEOUT_SECONDS = 5 * 60
KEPT_BUILDS = 2
BUILD_INPUTS = ("Containerfile", ".ci/build-image.sh", "pyproject.toml", "README.md")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "image: builds (or reuses) the container image and runs it; `make quick` leaves it out"
    )


def source_key() -> str:
    """A hash of every file the build reads: the same sources give the same cached image."""
    digest = hashlib.sha256()
    files = [ROOT / name for name in BUILD_INPUTS]
    files += sorted(p for p in (ROOT / "reconciler").rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def missing_tools() -> list[str]:
    return [f"{tool} (apt-get install {package})" for tool, package in TOOLS.items() if not shutil.which(tool)]


@pytest.fixture(scope="session")
def oci_layout() -> Path:
    """The image as an OCI layout directory tagged with the chart's appVersion, built here unless cached."""
    if missing := missing_tools():
        pytest.skip(f"building and running the image needs {', '.join(missing)}")
    if os.geteuid() != 0:
        pytest.skip("building and running the image here needs root (buildah's chroot isolation, runc)")
    CACHE.mkdir(parents=True, exist_ok=True)
    layout = CACHE / source_key() / "oci"
    with (CACHE / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (layout / "index.json").is_file():
            builds = sorted(
                (d for d in CACHE.iterdir() if d.is_dir() and d.name != "storage"), key=lambda d: d.stat().st_mtime
            )
            for stale in builds[:-KEPT_BUILDS]:  # another session may still be unpacking a recent one
                shutil.rmtree(stale, ignore_errors=True)
            partial = layout.with_name("oci.partial")
            built = subprocess.run(
                ["bash", str(ROOT / ".ci" / "build-image.sh"), "--oci", str(partial)],
                cwd=ROOT,
                env={**os.environ, "STORAGE_ROOT": str(CACHE / "storage")},
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_SECONDS,
                check=False,
            )
            assert built.returncode == 0, f"build-image.sh failed:\n{built.stderr[-4000:]}"
            partial.rename(layout)
    return layout


@pytest.fixture(scope="session")
def unpacked(oci_layout: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UnpackedImage]:
    """`umoci unpack` of the image: a runtime bundle (rootfs/ and the image's config.json) for runc."""
    bundle = tmp_path_factory.mktemp("image") / "bundle"
    unpacked = subprocess.run(
        ["umoci", "unpack", "--image", f"{oci_layout}:{image_tag(oci_layout)}", str(bundle)],
        capture_output=True,
        text=True,
        timeout=UNPACK_TIMEOUT_SECONDS,
        check=False,
    )
    assert unpacked.returncode == 0, unpacked.stderr
    config = image_config(oci_layout)
    runtime = json.loads((bundle / "config.json").read_text())
    yield UnpackedImage(bundle=bundle, runtime=runtime, entrypoint=config["Entrypoint"], cmd=config["Cmd"])
    shutil.rmtree(bundle, ignore_errors=True)
