"""What can be tested of the image without building it: the wheel builds from a clean copy of the sources and
installs into a fresh venv on the system Python (what the Containerfile does on Debian's), and its entrypoint
runs as UID 65532 from a read-only tree with HOME=/tmp, as the chart runs it: `--help`, `migrate`, `import` of a
preset (package data in the wheel), and a short `serve` answering the Registry API on 127.0.0.1.

The package comes from the wheel. Its dependencies are the wheel's own `Requires-Dist`, followed transitively and
copied offline, file by file from each distribution's RECORD, out of the development venv into the fresh one
(the image installs the same names from PyPI); `pip check` then proves the closure complete. Nothing the
non-root user runs lies under the checkout, whose parent folders may be private (a clone under `mktemp -d`).
"""

from __future__ import annotations

import email.parser
import http.client
import importlib.metadata
import os
import selectors
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[3]
SYSTEM_PYTHON = shutil.which("python3.11", path="/usr/bin:/usr/local/bin") or sys.executable
USER = 65532
TOKEN = "image-test-serve-token-0123"
BOUND_SECONDS = 60


def _run(argv: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False, **options)  # type: ignore[call-overload]


def wheel_requirements(wheel: Path) -> list[Requirement]:
    """The `Requires-Dist` lines of the built wheel: what the image's `pip install` would fetch."""
    with zipfile.ZipFile(wheel) as archive:
        [name] = [item for item in archive.namelist() if item.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(archive.read(name).decode())
    return [Requirement(line) for line in metadata.get_all("Requires-Dist") or []]


def runtime_closure(requirements: list[Requirement]) -> list[importlib.metadata.Distribution]:
    """The installed distributions those requirements need, transitively, with extras and markers honoured."""
    found: dict[str, importlib.metadata.Distribution] = {}
    followed: set[tuple[str, str]] = set()
    pending = [(requirement, "") for requirement in requirements]
    while pending:
        requirement, extra = pending.pop()  # `extra`: the one asked of the distribution that declared this line
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        distribution = importlib.metadata.distribution(requirement.name)
        assert distribution.version in requirement.specifier, f"{requirement} but {distribution.version} installed"
        key = distribution.metadata["Name"].lower().replace("_", "-")
        found[key] = distribution
        for wanted in ["", *requirement.extras]:
            if (key, wanted) not in followed:
                followed.add((key, wanted))
                pending += [(Requirement(line), wanted) for line in distribution.requires or []]
    return list(found.values())


def copy_distribution(distribution: importlib.metadata.Distribution, site: Path) -> None:
    """Copy one installed distribution's files (its RECORD) into another venv's site-packages, offline."""
    installed_site = Path(str(distribution.locate_file(""))).resolve()
    for file in distribution.files or []:
        source = Path(str(distribution.locate_file(file))).resolve()
        if not source.is_relative_to(installed_site) or not source.is_file():
            continue  # console scripts under bin/ and RECORD entries for files never written (bytecode)
        destination = site / source.relative_to(installed_site)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


@pytest.fixture(scope="module")
def tree() -> Iterator[Path]:
    """A world-readable work folder (pytest's own tmp is private to root, which UID 65532 could not enter)."""
    folder = Path(tempfile.mkdtemp(prefix="mcpr-image-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def venv(tree: Path) -> Path:
    source = tree / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "reconciler", source / "reconciler", ignore=shutil.ignore_patterns("__pycache__"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tree / "dist"), str(source)])
    assert built.returncode == 0, built.stderr
    [wheel] = (tree / "dist").glob("mcp_reconciler-*.whl")

    target = tree / "opt" / "mcp-reconciler"
    created = _run([SYSTEM_PYTHON, "-m", "venv", str(target)])
    assert created.returncode == 0, created.stderr
    installed = _run([str(target / "bin" / "pip"), "install", "--no-deps", "--no-index", "-q", str(wheel)])
    assert installed.returncode == 0, installed.stderr
    [site] = (target / "lib").glob("python3*/site-packages")
    for distribution in runtime_closure(wheel_requirements(wheel)):
        copy_distribution(distribution, site)
    checked = _run([str(target / "bin" / "python"), "-m", "pip", "check"])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    compiled = _run([str(target / "bin" / "python"), "-m", "compileall", "-q", str(site / "reconciler")])
    assert compiled.returncode == 0, compiled.stderr
    for path in [target, *target.rglob("*")]:  # read-only for everyone, like the image's root filesystem
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode):
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return target


@pytest.fixture
def home(tree: Path) -> Path:
    """The emptyDir at /tmp: the one place the process may write."""
    folder = Path(tempfile.mkdtemp(prefix="home-", dir=tree))
    if os.geteuid() == 0:
        os.chown(folder, USER, USER)
    return folder


def as_the_chart_runs_it(venv: Path, home: Path, *args: str) -> list[str]:
    """argv running the entrypoint as UID/GID 65532 (when we are root) with the chart's environment."""
    env = [
        "env",
        "-i",
        f"PATH={venv / 'bin'}:/usr/bin:/bin",
        f"HOME={home}",
        "PYTHONDONTWRITEBYTECODE=1",
        f"MCP_RECONCILER_SERVE_TOKEN={TOKEN}",
    ]
    switch = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups"] if os.geteuid() == 0 else []
    return [*switch, *env, "mcp-reconciler", *args]


def test_the_installed_package_is_the_wheel_not_the_checkout(venv: Path, home: Path) -> None:
    where = _run([str(venv / "bin" / "python"), "-c", "import reconciler; print(reconciler.__file__)"], cwd=home)

    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr


def test_help_migrate_and_import_run_as_non_root_from_a_read_only_tree(venv: Path, home: Path) -> None:
    registry = f"sqlite:///{home / 'registry.db'}"

    helped = _run(as_the_chart_runs_it(venv, home, "--help"), cwd=venv)
    migrated = _run(as_the_chart_runs_it(venv, home, "migrate", "--registry", registry), cwd=venv)
    again = _run(as_the_chart_runs_it(venv, home, "migrate", "--registry", registry), cwd=venv)
    imported = _run(as_the_chart_runs_it(venv, home, "import", "--preset", "notion"), cwd=venv)

    assert helped.returncode == 0, helped.stderr
    assert "migrate" in helped.stdout and "serve" in helped.stdout
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("migrated ")
    assert again.stdout.strip().endswith("is up to date")
    assert imported.returncode == 0, imported.stderr
    assert "url: https://mcp.notion.com/mcp" in imported.stdout
    if os.geteuid() == 0:
        assert (home / "registry.db").stat().st_uid == USER
    assert not list(venv.rglob("*.db"))


def test_serve_answers_the_registry_api_as_non_root(venv: Path, home: Path) -> None:
    registry = f"sqlite:///{home / 'registry.db'}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = as_the_chart_runs_it(venv, home, "serve", "--port", str(port), "--registry", registry)
    server = subprocess.Popen(argv, cwd=venv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        waited = selectors.DefaultSelector()
        waited.register(server.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + BOUND_SECONDS
        log = ""
        # uvicorn says when it listens; wait for that line (bounded), not for a fixed time.
        while "Uvicorn running on" not in log and time.monotonic() < deadline and server.poll() is None:
            if waited.select(timeout=max(0.0, deadline - time.monotonic())):
                log += server.stderr.readline()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/v0.1/servers", headers={"Authorization": f"Bearer {TOKEN}"})
            response = connection.getresponse()
            status, body = response.status, response.read().decode()
        finally:
            connection.close()
    finally:
        server.terminate()
        _out, err = server.communicate(timeout=30)
    assert status == 200, err
    assert body == '{"servers":[],"metadata":{"count":0}}'
