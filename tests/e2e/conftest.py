"""Fixtures of the operator's e2e suite: a real etcd + kube-apiserver, fresh namespaces, operators in-process.

The binaries come from `$KUBEBUILDER_ASSETS`, the cache (`~/.cache/mcp-reconciler/kube-1.20.2/`), or a build
by `.ci/kube-assets.sh` that runs once, at collection time, so the build does not count against any test's
timeout. Where they cannot be had, the suite skips with the reason; in CI (MCP_RECONCILER_REQUIRE_SERVICES=1)
the root conftest turns that skip into a failure. One control plane serves the session; each test gets its
own namespaces (no namespace controller runs, so namespaces are never deleted) and its own operators.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.operator import OperatorConfig
from tests.e2e.kube import BinariesUnavailable, ControlPlane, KubeHttp, find_binaries, start_control_plane
from tests.e2e.running import RunningOperator
from tests.fixtures.mcp_servers import mcp_servers, server_loop, tool_catalog
from tests.fixtures.postgres import *  # noqa: F403

__all__ = ["mcp_servers", "server_loop", "tool_catalog"]

_BINARIES = pytest.StashKey[Path | BinariesUnavailable]()
E2E_DIR = Path(__file__).parent


def _in_e2e(item: pytest.Item) -> bool:
    return E2E_DIR in Path(str(item.path)).parents


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder `e2e` before `-m` deselects, so `pytest -m "not e2e"` is the quick loop."""
    for item in items:
        if _in_e2e(item):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Find or build the API server before any test starts (a first build takes minutes).

    Runs once the selection is final, so a run that deselected the e2e tests never starts a build.
    """
    config = session.config
    if not any(_in_e2e(item) for item in session.items):
        return
    try:
        config.stash[_BINARIES] = find_binaries(build=True)
    except BinariesUnavailable as error:
        config.stash[_BINARIES] = error


@pytest.fixture(scope="session")
def kube_binaries(pytestconfig: pytest.Config) -> Path:
    found = pytestconfig.stash.get(_BINARIES, None)
    if found is None:
        try:
            found = find_binaries(build=False)
        except BinariesUnavailable as error:
            found = error
    if isinstance(found, BinariesUnavailable):
        pytest.skip(f"no kube-apiserver for the e2e suite: {found}")
    return found


@pytest.fixture(scope="session")
def control_plane(kube_binaries: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = start_control_plane(kube_binaries, tmp_path_factory.mktemp("control-plane"))
    yield plane
    plane.stop()


@pytest.fixture
def kube(control_plane: ControlPlane) -> KubeHttp:
    return control_plane.http


@pytest.fixture
def new_namespace(kube: KubeHttp) -> Callable[..., str]:
    """Create a uniquely named namespace (optionally labelled) and return its name."""

    def create(prefix: str = "e2e", *, labels: dict[str, str] | None = None) -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        metadata: dict[str, Any] = {"name": name}
        if labels:
            metadata["labels"] = labels
        kube.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})
        return name

    return create


@pytest.fixture
def operator_config(control_plane: ControlPlane) -> OperatorConfig:
    """Fast intervals for tests: resync every 2 s (±10 %), back-off from 0.5 s, metrics on a free port.

    Probing is off unless a test turns it on: most tests register servers on hosts nobody may contact; those
    that probe (`test_probing.py`) point at live local MCP servers."""
    return OperatorConfig(
        probe=False,
        standalone=True,
        port=0,
        listen_host="127.0.0.1",
        kubeconfig=control_plane.kubeconfig,
        resync_interval=2.0,
        min_poll_interval=0.5,
        jitter=0.1,
        retry_base_delay=0.5,
        retry_max_delay=4.0,
        error_delays=(0.5, 1, 2, 4),
        watch_server_timeout=60,
        watch_client_timeout=90,
    )


@pytest.fixture
def start_operator(operator_config: OperatorConfig) -> Iterator[Callable[..., RunningOperator]]:
    """Start an operator for some namespaces and registry (stopped at teardown); overrides go to the config."""
    running: list[RunningOperator] = []

    def start(namespaces: list[str], registry_url: str, **overrides: Any) -> RunningOperator:
        config = dataclasses.replace(
            operator_config, namespaces=tuple(namespaces), registry_url=registry_url, **overrides
        )
        operator = RunningOperator(config).start()
        running.append(operator)
        return operator

    yield start
    errors = []
    for operator in reversed(running):
        try:
            operator.stop()
        except AssertionError as error:
            errors.append(error)
    if errors:
        raise errors[0]


@pytest.fixture(autouse=True)
def _no_patch_inconsistencies(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """kopf logs "Patching failed with inconsistencies" when its patches and ours fight: that fails the test."""
    yield
    fights = [record.getMessage() for record in caplog.records if "inconsistencies" in record.getMessage()]
    assert not fights, fights[0]
