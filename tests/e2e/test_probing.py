"""The operator contacts the MCP servers it registers, against a real API server and live local MCP servers:
the quickstart example reaches Ready with real tool snapshots (what `kubectl get mcps` prints), a forced
reconcile re-probes, and a changed Secret is verified against the live server before any row points at it —
a rejected value keeps the last good one in use, is retried with back-off, and clears once the Secret is fixed.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from reconciler.demo import DEMO_BEARER_TOKEN, DEMO_PORTS, DemoServers, start_demo_servers
from reconciler.probe import ProbeSettings, ProbeTarget, probe_many_sync
from reconciler.registry.records import ServerRecord
from tests.e2e.kube import REPO, TABLE_ACCEPT, KubeHttp, custom_path, wait_for
from tests.e2e.running import RunningOperator
from tests.e2e.support import (
    Ref,
    annotate,
    condition,
    create,
    events,
    example_manifests,
    get,
    registry_at,
    secret,
    server,
    sleep_through,
    wait_condition,
    wait_event,
    wait_gone,
    wait_ready,
)
from tests.fixtures.mcp_servers import LocalServers, ToolCatalog

Start = Callable[..., RunningOperator]
NewNamespace = Callable[..., str]
PROBING = {"probe": True, "allow_private_networks": True}


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoServers]:
    """The shipped demo servers on the ports the quickstart example names."""
    with start_demo_servers(ports=DEMO_PORTS) as servers:
        yield servers


def _tool_count(url: str, transport: str = "streamable-http") -> int:
    target = ProbeTarget(tenant="e2e", server="count", url=url, transport=transport, allow_private=True)  # type: ignore[arg-type]
    (result,) = probe_many_sync([target], settings=ProbeSettings(allow_private_networks=True))
    assert result.ok and result.tools is not None, result
    return len(result.tools)


@pytest.mark.timeout(180)
def test_quickstart_reaches_ready_with_real_tool_snapshots(
    kube: KubeHttp, demo: DemoServers, sqlite_url: str, start_operator: Start
) -> None:
    documents = example_manifests(REPO / "examples" / "01-quickstart")
    for doc in documents:
        kube.apply(doc)
    own = [doc for doc in documents if doc["apiVersion"].startswith("mcp.reconciler.dev/")]
    start_operator(["demo"], sqlite_url, **PROBING)
    try:
        for doc in own:
            wait_ready(kube, Ref(doc["kind"], "demo", doc["metadata"]["name"]), timeout=60)

        # What `kubectl get mcps -n demo` prints: the server-side Table from the CRD's printer columns.
        table = kube.get(custom_path("demo", "mcpservers"), accept=TABLE_ACCEPT)
        columns = [column["name"] for column in table["columnDefinitions"]]
        assert columns[:8] == ["Name", "Transport", "Auth", "Enabled", "Tools", "Ready", "Synced", "Age"]
        rows = {row["cells"][0]: dict(zip(columns, row["cells"], strict=True)) for row in table["rows"]}
        assert set(rows) == {"everything", "notes-sse", "protected"}
        assert rows["everything"]["Tools"] == _tool_count(demo.tools_url)
        assert rows["notes-sse"]["Tools"] == _tool_count(demo.events_url, "sse")
        assert rows["protected"]["Tools"] > 0
        for name, row in rows.items():
            assert (row["Ready"], row["Synced"], row["Reason"]) == ("True", "True", "Available"), name
        assert (rows["notes-sse"]["Transport"], rows["protected"]["Auth"]) == ("sse", "bearer")

        protected = get(kube, Ref("MCPServer", "demo", "protected"))
        assert protected is not None
        status = protected["status"]
        assert status["registryId"], "the registry id is published in status"
        assert status["credentials"]["secretRef"] == "demo/protected-mcp-token#token"
        assert status["discovery"]["authorizationServers"] == [demo.authorization_server_url]
        assert DEMO_BEARER_TOKEN not in json.dumps(protected)

        # A forced reconcile probes again, whatever the snapshot's age.
        everything = Ref("MCPServer", "demo", "everything")
        before = (get(kube, everything) or {})["status"]["lastTest"]["at"]
        sleep_through(1.1)  # probe times are kept to the second
        annotate(kube, everything, {"mcp.reconciler.dev/reconcile-requested-at": "2026-11-22T20:00:00Z"})
        wait_for(
            lambda: (
                (found := get(kube, everything))
                and found["status"].get("lastHandledReconcileAt") == "2026-11-22T20:00:00Z"
                and found["status"]["lastTest"]["at"] != before
            ),
            timeout=30,
            what="the forced reconcile to re-probe",
        )
    finally:
        for doc in own:
            kube.delete(custom_path("demo", doc["kind"].lower() + "s", doc["metadata"]["name"]))
        for doc in own:
            wait_gone(kube, Ref(doc["kind"], "demo", doc["metadata"]["name"]))


def _row(url: str, tenant: str, name: str) -> ServerRecord:
    with registry_at(url) as registry:
        row = registry.fetch_state().rows.get(("servers", tenant, name))
    assert isinstance(row, ServerRecord)
    return row


def _status(kube: KubeHttp, ref: Ref) -> dict[str, Any]:
    found = get(kube, ref)
    assert found is not None
    return dict(found["status"])


@pytest.mark.timeout(180)
def test_a_changed_secret_is_verified_against_the_live_server_before_it_is_used(
    kube: KubeHttp, demo: DemoServers, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    # A long resync: the Secret watch and the rotation back-off must explain every pass that follows.
    start_operator([namespace], sqlite_url, resync_interval=300.0, **PROBING)
    secrets_path = f"/api/v1/namespaces/{namespace}/secrets"
    kube.post(secrets_path, secret(namespace, "token", {"token": "stale-canary-value"}))
    auth = {"type": "bearer", "secretKeyRef": {"name": "token", "key": "token"}}
    spec = {"url": demo.protected_url, "network": {"allowPrivate": True}, "discovery": {"enabled": True}}
    ref = create(kube, server(namespace, "guarded", auth=auth, **spec))
    wait_condition(kube, ref, type_="Ready", status="False", reason="AuthError")
    first = _row(sqlite_url, namespace, "guarded")

    # The right token: verified, then applied in place.
    kube.patch(f"{secrets_path}/token", {"stringData": {"token": DEMO_BEARER_TOKEN}})
    wait_event(kube, namespace, name="guarded", reason="Rotated")
    good = wait_ready(kube, ref)
    verified = _row(sqlite_url, namespace, "guarded")
    assert verified.row_id == first.row_id and verified.auth["secretFingerprint"] != first.auth["secretFingerprint"]
    assert good["status"]["credentials"]["revision"] == 1 and good["status"]["credentials"]["rotatedAt"]

    # A wrong token: held back, the last good one stays in use, and the check is retried with back-off.
    kube.patch(f"{secrets_path}/token", {"stringData": {"token": "wrong-canary-value"}})
    failed = wait_condition(kube, ref, type_="CredentialsValid", status="False", reason="RotationFailed")
    assert f"{namespace}/token#token" in condition(failed, "CredentialsValid")["message"]
    wait_event(kube, namespace, name="guarded", reason="RotationFailed")
    assert _row(sqlite_url, namespace, "guarded") == verified, "the row keeps the verified fingerprint"
    in_use = verified.auth["secretFingerprint"]
    assert _status(kube, ref)["credentials"]["fingerprint"] == in_use, "status shows the credential in use"
    wait_for(
        lambda: _status(kube, ref)["credentials"].get("failedRotationAttempts", 0) >= 3,
        timeout=30,
        what="the failed rotation to be retried (back-off from 0.5 s)",
    )

    # Fixing the Secret clears it without any other action.
    kube.patch(f"{secrets_path}/token", {"stringData": {"token": DEMO_BEARER_TOKEN}})
    wait_condition(kube, ref, type_="CredentialsValid", status="True")
    assert _row(sqlite_url, namespace, "guarded") == verified
    fixed = _status(kube, ref)["credentials"]
    assert "failedRotationAttempts" not in fixed and fixed["fingerprint"] == in_use
    text = json.dumps(get(kube, ref)) + json.dumps(events(kube, namespace))
    assert "canary" not in text and DEMO_BEARER_TOKEN not in text, "secret values never reach status or events"


@pytest.mark.timeout(120)
def test_a_changed_tool_list_is_reported_once_and_measured(
    kube: KubeHttp,
    tool_catalog: ToolCatalog,
    mcp_servers: LocalServers,
    new_namespace: NewNamespace,
    sqlite_url: str,
    start_operator: Start,
) -> None:
    namespace = new_namespace()
    operator = start_operator([namespace], sqlite_url, resync_interval=300.0, **PROBING)
    spec = {"url": mcp_servers.changing, "network": {"allowPrivate": True}, "discovery": {"enabled": True}}
    ref = create(kube, server(namespace, "weather", **spec))
    first = wait_ready(kube, ref)
    assert first["status"]["tools"]["count"] == 2
    # The 2026-07-28 freshness hints (here the SDK's defaults) are kept by the API server's schema.
    tools = first["status"]["tools"]
    assert (tools["cacheScope"], tools["ttlMs"], tools["viewOf"]) == ("private", 0, "anonymous"), tools
    assert tools["nextProbeAt"].endswith("Z")
    assert condition(first, "ToolsDrifted")["status"] == "False"

    tool_catalog.tools = [*tool_catalog.tools[:1], tool_catalog.tools[0].model_copy(update={"name": "get_alerts"})]
    annotate(kube, ref, {"mcp.reconciler.dev/reconcile-requested-at": "drift-1"})
    drifted = wait_condition(kube, ref, type_="ToolsDrifted", status="True", reason="ToolsChanged")
    message = condition(drifted, "ToolsDrifted")["message"]
    assert "get_alerts" in message and "get_forecast" in message
    wait_event(kube, namespace, name="weather", reason="ToolsDrifted")
    sleep_through(2)
    assert len(events(kube, namespace, name="weather", reason="ToolsDrifted")) == 1, "one Event per change"

    assert operator.operator.port is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{operator.operator.port}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    labels = f'name="weather",namespace="{namespace}"'
    assert f"mcp_reconciler_server_tools{{{labels}}} 2.0" in metrics, "the tool-count gauge follows the snapshot"
    assert "mcp_reconciler_probe_latency_seconds_count" in metrics
