"""One object's life under the operator, against a real API server and a real registry (SQLite here; the
PostgreSQL path is covered by the examples and the sharing tests): first sight, quiet resyncs, drift repair,
credential rotation through the Secret watch, forced and paused reconciles, terminal errors, and deletion
by policy."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from reconciler.registry.records import ServerRecord, TenantRecord
from tests.e2e.kube import KubeHttp, wait_for
from tests.e2e.running import RunningOperator
from tests.e2e.support import (
    Ref,
    annotate,
    condition,
    create,
    events,
    get,
    registry_at,
    resource_version,
    secret,
    server,
    settled_versions,
    sleep_through,
    wait_condition,
    wait_event,
    wait_gone,
    wait_ready,
)

Start = Callable[..., RunningOperator]
NewNamespace = Callable[..., str]
RESYNC = 2.0


def _server_row(url: str, tenant: str, name: str) -> ServerRecord | None:
    with registry_at(url) as registry:
        row = registry.fetch_state().rows.get(("servers", tenant, name))
    assert row is None or isinstance(row, ServerRecord)
    return row


def test_status_settles_and_idle_resyncs_write_nothing(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    # A first pass quicker than the delay writes its result as the first status (the slower case, Unknown first,
    # is `test_a_slow_first_pass_shows_unknown_while_it_runs_then_its_result`): a delay no busy machine reaches.
    start_operator([namespace], sqlite_url, first_status_delay=120.0)
    quiet = Ref("MCPServer", namespace, "quiet")
    with ThreadPoolExecutor(1) as pool:
        watched = pool.submit(kube.watch, quiet.collection, seconds=int(3 * RESYNC * 1.1 + 8))
        sleep_through(0.5)
        create(kube, server(namespace, "quiet"))
        obj = wait_ready(kube, quiet)
        _check_quiet(kube, quiet, obj)
        stream = watched.result(timeout=60)
    statuses = []
    for event in stream:
        status = event["object"].get("status")
        if status and (not statuses or statuses[-1] != status):
            statuses.append(status)
    assert len(statuses) == 1, "exactly one status write: the first pass's result"
    writes = [event for event in stream if event["type"] == "MODIFIED"]
    finalizer_added, status_written = writes[0]["object"], writes[-1]["object"]
    assert len(writes) == 2, "two writes in all: our finalizer, then the status (kopf's diff base is in memory)"
    assert finalizer_added["metadata"]["finalizers"] == ["mcp.reconciler.dev/finalizer"]
    assert status_written.get("status") == statuses[0]
    first = {c["type"]: c["status"] for c in statuses[0]["conditions"]}
    assert first["Ready"] == first["Synced"] == "True"


def _check_quiet(kube: KubeHttp, quiet: Ref, obj: dict[str, Any]) -> None:
    """Settled: our finalizer, conditions for this generation, no kopf bookkeeping on the object; then three
    resync periods without a single write or Event."""
    version = settled_versions(kube, [quiet], quiet=5.0)[quiet]
    obj = get(kube, quiet) or obj
    assert obj["metadata"]["finalizers"] == ["mcp.reconciler.dev/finalizer"]
    ready, synced = condition(obj, "Ready"), condition(obj, "Synced")
    assert ready["observedGeneration"] == synced["observedGeneration"] == obj["metadata"]["generation"]
    assert not obj["metadata"].get("annotations"), "kopf keeps its diff base in memory, its progress only on retries"
    assert "kopf" not in obj.get("status", {}), "kopf keeps nothing in status"
    assert [e["reason"] for e in events(kube, quiet.namespace, name="quiet")] == ["Created"]

    sleep_through(3 * RESYNC * 1.1 + 1)
    assert resource_version(kube, quiet) == version, "no heartbeat writes"
    assert [e["reason"] for e in events(kube, quiet.namespace, name="quiet")] == ["Created"], "no events per poll"


def test_drift_in_the_registry_is_repaired_and_reported(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    operator = start_operator([namespace], sqlite_url)
    drifty = create(kube, server(namespace, "drifty"))
    wait_ready(kube, drifty)
    row = _server_row(sqlite_url, namespace, "drifty")
    assert row is not None

    with registry_at(sqlite_url) as registry, registry.transaction() as tx:
        tx.update([dataclasses.replace(row, url="https://attacker.example.net/mcp", enabled=False)])

    event = wait_event(kube, namespace, name="drifty", reason="DriftRepaired", timeout=15)
    assert "url" in event["message"] and "enabled" in event["message"]
    assert "attacker" not in event["message"], "events name fields, never values"
    repaired = _server_row(sqlite_url, namespace, "drifty")
    assert repaired is not None and repaired.url == "https://drifty.example.com/mcp" and repaired.enabled
    assert repaired.row_id == row.row_id

    assert operator.port is not None
    metrics = kube_metrics(operator.port)
    assert 'mcp_reconciler_drift_repairs_total{kind="MCPServer"} 1.0' in metrics


def kube_metrics(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def test_secret_change_rotates_the_fingerprint_in_place(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    # A long resync: only the Secret watch can explain a quick update.
    start_operator([namespace], sqlite_url, resync_interval=300.0)
    kube.post(f"/api/v1/namespaces/{namespace}/secrets", secret(namespace, "token", {"token": "first-canary-value"}))
    auth = {"type": "bearer", "secretKeyRef": {"name": "token", "key": "token"}}
    rotating = create(kube, server(namespace, "rotating", auth=auth))
    before = wait_ready(kube, rotating)
    row = _server_row(sqlite_url, namespace, "rotating")
    assert row is not None
    old_print = row.auth["secretFingerprint"]
    assert before["status"]["credentials"]["fingerprint"] == old_print

    kube.patch(f"/api/v1/namespaces/{namespace}/secrets/token", {"stringData": {"token": "second-canary-value"}})

    def rotated() -> ServerRecord | None:
        found = _server_row(sqlite_url, namespace, "rotating")
        return found if found is not None and found.auth["secretFingerprint"] != old_print else None

    new_row = wait_for(rotated, timeout=15, what="the registry fingerprint to change")
    assert new_row.row_id == row.row_id, "rotated in place: same row"
    wait_event(kube, namespace, name="rotating", reason="Rotated")
    after = wait_for(
        lambda: (
            (obj := get(kube, rotating))
            and obj["status"]["credentials"]["fingerprint"] == new_row.auth["secretFingerprint"]
            and obj
        ),
        timeout=10,
        what="status to show the new fingerprint",
    )
    text = str(after) + str(events(kube, namespace))
    assert "canary" not in text, "secret values never reach status or events"


def test_unlabelled_secret_is_read_at_resync_and_status_says_so(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    start_operator([namespace], sqlite_url)
    kube.post(
        f"/api/v1/namespaces/{namespace}/secrets", secret(namespace, "plain", {"key": "value-one"}, labelled=False)
    )
    auth = {"type": "apiKey", "secretKeyRef": {"name": "plain", "key": "key"}}
    unwatched = create(kube, server(namespace, "unwatched", auth=auth))
    obj = wait_ready(kube, unwatched)
    assert "plain lacks the label mcp.reconciler.dev/credential" in condition(obj, "CredentialsValid")["message"]
    old_print = obj["status"]["credentials"]["fingerprint"]

    kube.patch(f"/api/v1/namespaces/{namespace}/secrets/plain", {"stringData": {"key": "value-two"}})
    wait_for(
        lambda: (found := get(kube, unwatched)) and found["status"]["credentials"]["fingerprint"] != old_print,
        timeout=4 * RESYNC + 5,
        what="the resync to pick up the unlabelled Secret",
    )


def test_reconcile_request_is_echoed(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    start_operator([namespace], sqlite_url, resync_interval=300.0)
    forced = create(kube, server(namespace, "forced"))
    wait_ready(kube, forced)
    annotate(kube, forced, {"mcp.reconciler.dev/reconcile-requested-at": "2026-01-01T00:00"})
    wait_for(
        lambda: (obj := get(kube, forced)) and obj["status"].get("lastHandledReconcileAt") == "2026-01-01T00:00",
        timeout=15,
        what="lastHandledReconcileAt to echo the request",
    )


def test_paused_objects_are_not_written_but_can_be_deleted(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    start_operator([namespace], sqlite_url)
    sleepy = create(kube, server(namespace, "sleepy"))
    wait_ready(kube, sleepy)
    annotate(kube, sleepy, {"mcp.reconciler.dev/paused": "true"})
    obj = wait_condition(kube, sleepy, type_="Synced", status="False", reason="ReconcilePaused")
    assert condition(obj, "Ready")["status"] == "True", "Ready keeps what the last real pass found"

    row = _server_row(sqlite_url, namespace, "sleepy")
    assert row is not None
    with registry_at(sqlite_url) as registry, registry.transaction() as tx:
        tx.update([dataclasses.replace(row, description="edited by hand")])
    version = resource_version(kube, sleepy)
    sleep_through(2 * RESYNC + 1)
    still = _server_row(sqlite_url, namespace, "sleepy")
    assert still is not None and still.description == "edited by hand", "paused: the registry is not written"
    assert resource_version(kube, sleepy) == version

    annotate(kube, sleepy, {"mcp.reconciler.dev/paused": None})
    wait_ready(kube, sleepy)
    wait_for(
        lambda: (found := _server_row(sqlite_url, namespace, "sleepy")) is not None and found.description is None,
        timeout=10,
        what="the hand edit to be repaired after unpausing",
    )

    annotate(kube, sleepy, {"mcp.reconciler.dev/paused": "true"})
    wait_condition(kube, sleepy, type_="Synced", status="False", reason="ReconcilePaused")
    kube.delete(sleepy.path)
    wait_gone(kube, sleepy)
    assert _server_row(sqlite_url, namespace, "sleepy") is None, "deletion still works while paused"


@pytest.mark.parametrize("policy", ["Delete", "Orphan"])
def test_deletion_honours_the_policy(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start, policy: str
) -> None:
    namespace = new_namespace()
    start_operator([namespace], sqlite_url)
    doomed = create(kube, server(namespace, "doomed", deletionPolicy=policy))
    wait_ready(kube, doomed)
    kube.delete(doomed.path)
    wait_gone(kube, doomed)
    row = _server_row(sqlite_url, namespace, "doomed")
    if policy == "Delete":
        assert row is None
    else:
        assert row is not None and row.ownership.manager is None, "orphaned rows are released, not deleted"


def test_deleting_when_the_row_is_already_gone_succeeds(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    start_operator([namespace], sqlite_url, resync_interval=300.0)
    vanished = create(kube, server(namespace, "vanished"))
    wait_ready(kube, vanished)
    with registry_at(sqlite_url) as registry, registry.transaction() as tx:
        tx.delete([("servers", namespace, "vanished")])
    kube.delete(vanished.path)
    wait_gone(kube, vanished)


def test_terminal_errors_are_reported_once_and_not_retried(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    other = new_namespace()
    start_operator([namespace, other], sqlite_url)
    create(kube, server(other, "elsewhere"))
    connection = {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPConnection",
        "metadata": {"name": "dangling", "namespace": namespace},
        "spec": {"serverRef": "elsewhere", "scope": "platform"},
    }
    dangling = create(kube, connection)
    obj = wait_condition(kube, dangling, type_="Synced", status="False", reason="MissingReference")
    assert "MCPServer 'elsewhere' does not exist in namespace" in condition(obj, "Synced")["message"]
    assert condition(obj, "Ready")["status"] == "False"

    version = settled_versions(kube, [dangling], quiet=5.0)[dangling]  # after kopf's own bookkeeping patch
    sleep_through(3 * RESYNC * 1.1 + 1)
    assert resource_version(kube, dangling) == version, "no retry storm"
    warnings = events(kube, namespace, name="dangling", reason="MissingReference")
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"

    # Fixing the world (not the spec) is picked up at the next resync.
    create(kube, server(namespace, "elsewhere"))
    wait_ready(kube, dangling, timeout=4 * RESYNC + 10)


def test_namespace_label_names_the_tenant(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace(labels={"mcp.reconciler.dev/tenant": "acme-corp"})
    start_operator([namespace], sqlite_url)
    labelled = create(kube, server(namespace, "labelled"))
    wait_ready(kube, labelled)
    assert _server_row(sqlite_url, "acme-corp", "labelled") is not None


def test_an_unmanaged_row_is_a_conflict_not_an_overwrite(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    namespace = new_namespace()
    with registry_at(sqlite_url) as registry, registry.transaction() as tx:
        tx.ensure_tenants([TenantRecord(slug=namespace, namespace=namespace)])
        tx.insert([ServerRecord(tenant=namespace, name="taken", url="https://hand-made.example.com/mcp")])
    start_operator([namespace], sqlite_url)
    taken = create(kube, server(namespace, "taken"))
    obj = wait_condition(kube, taken, type_="Synced", status="False", reason="Conflict")
    assert "not managed by mcp-reconciler" in condition(obj, "Synced")["message"]
    event = wait_event(kube, namespace, name="taken", reason="Conflict")
    assert event["type"] == "Warning"
    row = _server_row(sqlite_url, namespace, "taken")
    assert row is not None and row.url == "https://hand-made.example.com/mcp" and row.ownership.manager is None

    annotate(kube, taken, {"mcp.reconciler.dev/adopt": "true"})
    wait_ready(kube, taken)
    adopted = _server_row(sqlite_url, namespace, "taken")
    assert adopted is not None and adopted.ownership.manager == "mcp-reconciler" and adopted.row_id == row.row_id


def test_a_namespace_whose_tenant_label_aliases_another_tenant_is_refused_and_the_others_go_on(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    """A Namespace labelled with another tenant's namespace as its slug would let a runtime naming that namespace
    reach the wrong tenant. Its objects are refused (`InvalidSpec`, nothing written), once; the batch pass that
    carried them still writes the other namespaces' objects."""
    first = new_namespace(labels={"mcp.reconciler.dev/tenant": f"acme-{secrets.token_hex(3)}"})
    aliasing = new_namespace(labels={"mcp.reconciler.dev/tenant": first})
    bystander = new_namespace()
    start_operator([first, aliasing, bystander], sqlite_url)
    wait_ready(kube, create(kube, server(first, "crm")))

    refused = create(kube, server(aliasing, "crm"))
    unaffected = create(kube, server(bystander, "crm"))

    obj = wait_condition(kube, refused, type_="Synced", status="False", reason="InvalidSpec")
    message = condition(obj, "Synced")["message"]
    assert f"its tenant slug {first!r} is the namespace of tenant" in message, message
    assert "mcp.reconciler.dev/tenant" in message, message
    wait_ready(kube, unaffected)
    assert _server_row(sqlite_url, first, "crm") is None, "nothing written under the alias"
    assert _server_row(sqlite_url, bystander, "crm") is not None
    version = settled_versions(kube, [refused], quiet=5.0)[refused]
    sleep_through(2 * RESYNC * 1.1 + 1)
    assert resource_version(kube, refused) == version, "refused once, not retried in a loop"
    assert len(events(kube, aliasing, name="crm", reason="InvalidSpec")) == 1


def test_a_signing_key_is_read_from_its_secret_and_rotated_through_the_secret_watch(
    kube: KubeHttp, new_namespace: NewNamespace, sqlite_url: str, start_operator: Start
) -> None:
    """`clientAssertion.privateKey` is a Secret the operator reads and watches like any other: it was never read
    (every `private_key_jwt` server was SecretNotFound) and its rotation went unseen."""
    namespace = new_namespace()
    start_operator([namespace], sqlite_url, resync_interval=300.0)
    pems = [
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        .decode()
        for _ in range(2)
    ]
    kube.post(f"/api/v1/namespaces/{namespace}/secrets", secret(namespace, "signing", {"pem": pems[0]}))
    assertion = {"keyId": "k1", "privateKey": {"name": "signing", "key": "pem"}}
    auth = {"type": "oauthClientCredentials", "clientId": {"value": "crm-agent"}, "clientAssertion": assertion,
            "tokenUrl": "https://auth.example.com/token"}  # fmt: skip
    signing = create(kube, server(namespace, "signing", auth=auth))

    def key_print(changed_from: str | None = None) -> str | None:
        row = _server_row(sqlite_url, namespace, "signing")
        found = row.auth.get("clientAssertionKeyFingerprint") if row is not None else None
        return found if found and found != changed_from else None

    first = wait_for(key_print, timeout=30, what="the signing key's fingerprint in the registry")
    kube.patch(f"/api/v1/namespaces/{namespace}/secrets/signing", {"stringData": {"pem": pems[1]}})
    wait_for(lambda: key_print(first), timeout=20, what="the rotated key's fingerprint (the Secret watch)")
    obj = get(kube, signing)
    assert obj is not None and "SecretNotFound" not in str(obj.get("status"))
    body = pems[1].split("-----")[2].strip().splitlines()[1]
    assert body not in str(obj) + str(events(kube, namespace)), "the key never reaches status or Events"
