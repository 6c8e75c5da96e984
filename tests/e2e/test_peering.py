"""Kopf peering as the chart deploys it (`--peering`, a KopfPeering object per namespace, the peering CRDs from
the chart's `crds/`), against a real API server: of two operators on the same namespace only the one with the
higher priority works; when it stops, the other takes over. The periodic resyncs, which run in our own loop
rather than in kopf's handlers, pause and resume with kopf."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from reconciler.registry.records import ServerRecord
from tests.e2e.kube import REPO, KubeHttp, wait_for
from tests.e2e.running import RunningOperator
from tests.e2e.support import create, registry_at, server, sleep_through, wait_ready

Start = Callable[..., RunningOperator]
NewNamespace = Callable[..., str]
PEERING_CRDS = REPO / "charts" / "mcp-reconciler" / "crds" / "kopf.dev_peerings.yaml"
PEERING = "mcp-reconciler"


def _install_peering(kube: KubeHttp, namespace: str) -> None:
    for manifest in yaml.safe_load_all(PEERING_CRDS.read_text()):
        if manifest:
            kube.apply(manifest)
    wait_for(
        lambda: kube.maybe_get("/apis/kopf.dev/v1/namespaces/default/kopfpeerings") is not None,
        timeout=30,
        what="the KopfPeering CRD to be served",
    )
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
    kube.post(f"/apis/kopf.dev/v1/namespaces/{namespace}/kopfpeerings", peering)


def _servers(url: str) -> set[str]:
    with registry_at(url) as registry:
        rows = registry.fetch_state().rows
    return {name for (table, _, name), row in rows.items() if table == "servers" and isinstance(row, ServerRecord)}


@pytest.mark.timeout(180)
def test_only_the_higher_priority_peer_works_and_the_other_takes_over(
    kube: KubeHttp, new_namespace: NewNamespace, tmp_path: Path, start_operator: Start
) -> None:
    namespace = new_namespace("peers")
    _install_peering(kube, namespace)
    first_url, second_url = f"sqlite:///{tmp_path / 'first.db'}", f"sqlite:///{tmp_path / 'second.db'}"
    first = start_operator([namespace], first_url, standalone=False, peering_name=PEERING, priority=10)
    sleep_through(2)  # the first peer announces itself before the second starts
    start_operator([namespace], second_url, standalone=False, peering_name=PEERING, priority=0)

    wait_ready(kube, create(kube, server(namespace, "alpha")), timeout=60)
    sleep_through(3)
    assert _servers(first_url) == {"alpha"}
    assert _servers(second_url) == set(), "the lower-priority peer stays paused"

    first.stop()
    wait_ready(kube, create(kube, server(namespace, "beta")), timeout=90)
    wait_for(lambda: "beta" in _servers(second_url), timeout=30, what="the second peer to take over")
    assert "beta" not in _servers(first_url)


@pytest.mark.timeout(240)
def test_a_peer_that_loses_priority_stops_its_resyncs_until_it_is_active_again(
    kube: KubeHttp, new_namespace: NewNamespace, tmp_path: Path, start_operator: Start
) -> None:
    """Resyncs come from our own loop, not from kopf: they must pause when kopf pauses, and resume with it."""
    namespace = new_namespace("peers")
    _install_peering(kube, namespace)
    low_url, high_url = f"sqlite:///{tmp_path / 'low.db'}", f"sqlite:///{tmp_path / 'high.db'}"
    start_operator([namespace], low_url, standalone=False, peering_name=PEERING, priority=0)
    wait_ready(kube, create(kube, server(namespace, "alpha")), timeout=60)
    assert _servers(low_url) == {"alpha"}

    high = start_operator([namespace], high_url, standalone=False, peering_name=PEERING, priority=10)
    wait_for(lambda: "alpha" in _servers(high_url), timeout=60, what="the stronger peer to take over")
    sleep_through(PEERING_GATE_CACHE_SECONDS + 1)  # the weaker peer's gate has read the peering object since
    _tamper(low_url, namespace, "alpha")
    sleep_through(4 * RESYNC_SECONDS)
    assert _url(low_url, namespace, "alpha") == TAMPERED, "a paused peer repairs nothing"

    high.stop()
    wait_for(
        lambda: _url(low_url, namespace, "alpha") != TAMPERED,
        timeout=60,
        what="the weaker peer to resume its resyncs and repair the drift",
    )


PEERING_GATE_CACHE_SECONDS = 10
RESYNC_SECONDS = 2.2
TAMPERED = "https://tampered.example.net/mcp"


def _url(url: str, namespace: str, name: str) -> str:
    with registry_at(url) as registry:
        row = registry.fetch_state().rows[("servers", namespace, name)]
    assert isinstance(row, ServerRecord)
    return row.url


def _tamper(url: str, namespace: str, name: str) -> None:
    with registry_at(url) as registry:
        row = registry.fetch_state().rows[("servers", namespace, name)]
        assert isinstance(row, ServerRecord)
        with registry.transaction() as transaction:
            transaction.update([dataclasses.replace(row, url=TAMPERED)])


@pytest.mark.timeout(120)
def test_without_a_peering_object_the_operator_says_what_it_waits_for(
    kube: KubeHttp,
    new_namespace: NewNamespace,
    tmp_path: Path,
    start_operator: Start,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`run -n NS` against a cluster without the chart: a warning and `/healthz` name the wait and the ways out."""
    import json
    import urllib.request

    namespace = new_namespace("nopeering")
    running = start_operator(
        [namespace], f"sqlite:///{tmp_path / 'r.db'}", standalone=False, peering_name=PEERING, peering_check_seconds=1
    )

    def peering() -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{running.port}/healthz", timeout=10) as response:
            return dict(json.loads(response.read())["peering"])

    waiting = peering()
    assert waiting["ready"] is False
    message = str(waiting["message"])
    assert f"KopfPeering {PEERING!r} exists in namespace {namespace}" in message
    assert "--standalone" in message and "install the chart" in message
    assert any(r.levelname == "WARNING" and "--standalone" in r.getMessage() for r in caplog.records)

    _install_peering(kube, namespace)
    wait_for(lambda: peering()["ready"] is True, timeout=30, what="/healthz to see the peering object")
