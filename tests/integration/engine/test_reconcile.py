"""The reconcile loop against a real registry (SQLite and PostgreSQL): examples, drift, ownership, pruning."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from reconciler.engine.planning import Verb
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.errors import InvalidInput, MissingReference
from reconciler.manifests import load_folder
from reconciler.registry import Registry, RegistryTransaction
from reconciler.registry.connecting import create_registry_engine
from reconciler.registry.records import ServerRecord, UserTokenRecord

EXAMPLES = Path(__file__).parents[3] / "examples"
EXAMPLE_DIRS = sorted(path for path in EXAMPLES.iterdir() if path.is_dir())
SETTINGS = EngineSettings()
WRITES = ("INSERT", "UPDATE", "DELETE")


def writes(registry: Registry) -> int:
    return sum(registry.statement_counts.get(verb, 0) for verb in WRITES)


def apply(folder: Path, registry: Registry) -> object:
    return reconcile(load_folder(folder), registry, settings=SETTINGS)


def write_folder(root: Path, documents: dict[str, list[dict[str, object]]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, docs in documents.items():
        (root / name).write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return root


def server(name: str, namespace: str = "acme", **spec: object) -> dict[str, object]:
    body: dict[str, object] = {"url": f"https://{name}.example.com/mcp", **spec}
    return {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda path: path.name)
def test_every_example_applies_and_a_second_apply_changes_nothing(example: Path, registry: Registry) -> None:
    first = reconcile(load_folder(example), registry, settings=SETTINGS)
    assert first.plan.has_changes and not first.plan.conflicts
    assert all(r.status["conditions"][0]["type"] == "Ready" for r in first.results)
    registry.reset_statement_counts()
    second = reconcile(load_folder(example), registry, settings=SETTINGS)
    assert second.plan.counts() == {"noop": len(first.results)} and not second.plan.has_changes
    assert writes(registry) == 0, registry.statement_counts
    assert not any(r.status_changed for r in second.results)


def test_all_examples_together_then_tampering_yields_repair(registry: Registry) -> None:
    apply(EXAMPLES, registry)
    state = registry.fetch_state()
    key = ("servers", "acme", "internal-search")
    row = state.rows[key]
    assert isinstance(row, ServerRecord)
    with registry.transaction() as tx:  # somebody edits the row behind our back
        tx.update([dataclasses.replace(row, url="https://evil.example.com/mcp", enabled=False)])
    report = reconcile(load_folder(EXAMPLES), registry, settings=SETTINGS, dry_run=True)
    (action,) = [a for a in report.plan.actions if a.key == key]
    assert action.verb is Verb.REPAIR
    assert {(c.path, c.before, c.after) for c in action.changes} == {
        ("url", "https://evil.example.com/mcp", "https://search.internal.example.com/mcp"),
        ("enabled", False, True),
    }
    assert [str(a.verb) for a in report.plan.actions if a.writes] == ["repair"]
    apply(EXAMPLES, registry)
    repaired = registry.fetch_state().rows[key]
    assert isinstance(repaired, ServerRecord)
    assert repaired.url == "https://search.internal.example.com/mcp" and repaired.row_id == row.row_id
    audit = registry.fetch_audit(limit=5)
    assert any(entry.entry.action == "repair" and entry.entry.name == "internal-search" for entry in audit)


def test_hand_made_row_conflicts_until_adopted(tmp_path: Path, registry: Registry) -> None:
    folder = write_folder(tmp_path / "a", {"s.yaml": [server("crm")]})
    apply(folder, registry)
    row = registry.fetch_state().rows[("servers", "acme", "crm")]
    with registry.transaction() as tx:  # turn it into a row nobody manages
        tx.release([("servers", "acme", "crm")])
    report = apply(folder, registry)
    assert [a.verb for a in report.plan.actions] == [Verb.CONFLICT]  # type: ignore[attr-defined]
    assert report.results[0].status["conditions"][1]["reason"] == "Conflict"  # type: ignore[attr-defined]
    untouched = registry.fetch_state().rows[("servers", "acme", "crm")]
    assert untouched.ownership.manager is None
    adopting = server("crm")
    adopting["metadata"]["annotations"] = {"mcp.reconciler.dev/adopt": "true"}  # type: ignore[index]
    write_folder(folder, {"s.yaml": [adopting]})
    report = apply(folder, registry)
    assert [a.verb for a in report.plan.actions] == [Verb.ADOPT]  # type: ignore[attr-defined]
    adopted = registry.fetch_state().rows[("servers", "acme", "crm")]
    assert adopted.ownership.manager == "mcp-reconciler" and adopted.row_id == row.row_id


def test_objects_gone_from_the_folder_are_pruned_by_deletion_policy(tmp_path: Path, registry: Registry) -> None:
    folder = write_folder(
        tmp_path / "f", {"s.yaml": [server("keep"), server("drop"), server("leave", deletionPolicy="Orphan")]}
    )
    apply(folder, registry)
    write_folder(folder, {"s.yaml": [server("keep")]})
    report = apply(folder, registry)
    assert sorted((str(a.verb), a.key[2]) for a in report.removals) == [("delete", "drop"), ("orphan", "leave")]  # type: ignore[attr-defined]
    rows = registry.fetch_state().rows
    assert ("servers", "acme", "drop") not in rows
    assert rows[("servers", "acme", "leave")].ownership.manager is None
    assert {r.name for r in registry.fetch_resources()} == {"keep"}


def test_observe_only_never_writes(tmp_path: Path, registry: Registry) -> None:
    folder = write_folder(tmp_path / "f", {"s.yaml": [server("watched", managementPolicy="ObserveOnly")]})
    report = apply(folder, registry)
    assert registry.fetch_state().rows == {}
    conditions = {c["type"]: c for c in report.results[0].status["conditions"]}  # type: ignore[attr-defined]
    assert conditions["Synced"]["reason"] == "ObserveOnly" and conditions["Ready"]["status"] == "False"


def test_deleting_a_server_removes_its_dependents_and_user_tokens(tmp_path: Path, registry: Registry) -> None:
    shutil.copytree(EXAMPLES / "05-org-connections", tmp_path / "org")
    apply(tmp_path / "org", registry)
    with registry.transaction() as tx:
        tx.insert_user_token(
            UserTokenRecord(
                tenant="openwork-org",
                server="notion",
                user_id="jordan",
                secret_ref="openwork/member-jordan#token",
                connection="notion-per-member",
            )
        )
    assert registry.count_user_tokens() == {("openwork-org", "notion"): 1}
    docs = [
        d
        for d in yaml.safe_load_all((tmp_path / "org/connections.yaml").read_text())
        if d["metadata"]["name"] not in ("notion", "notion-per-member")
    ]
    (tmp_path / "org/connections.yaml").write_text(yaml.safe_dump_all(docs))
    grants = [
        d
        for d in yaml.safe_load_all((tmp_path / "org/grants.yaml").read_text())
        if d["metadata"]["name"] != "notion-everyone"
    ]
    for doc in grants:
        if doc["kind"] == "MCPTemplateBinding":
            doc["spec"]["servers"] = [s for s in doc["spec"]["servers"] if s["serverRef"] != "notion"]
    (tmp_path / "org/grants.yaml").write_text(yaml.safe_dump_all(grants))
    report = apply(tmp_path / "org", registry)
    assert sorted((str(a.verb), a.key[0], a.key[2]) for a in report.removals) == [  # type: ignore[attr-defined]
        ("delete", "connections", "notion-per-member"),
        ("delete", "grants", "notion-everyone"),
        ("delete", "servers", "notion"),
    ]
    assert registry.count_user_tokens() == {}
    assert registry.fetch_user_tokens(tenant="openwork-org", server="notion") == []


def test_a_crash_half_way_leaves_nothing(tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(self: RegistryTransaction, entries: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(RegistryTransaction, "audit", explode)
    with pytest.raises(RuntimeError, match="power cut"):
        apply(EXAMPLES / "02-tenant-servers", registry)
    assert registry.fetch_state().rows == {} and registry.fetch_resources() == []
    monkeypatch.undo()
    apply(EXAMPLES / "02-tenant-servers", registry)
    assert len(registry.fetch_state().rows) == 8


def test_missing_secret_is_reported_not_fatal(tmp_path: Path, registry: Registry) -> None:
    folder = write_folder(
        tmp_path / "f",
        {"s.yaml": [server("needs-key", auth={"type": "bearer", "secretKeyRef": {"name": "absent", "key": "t"}})]},
    )
    report = apply(folder, registry)
    conditions = {c["type"]: c for c in report.results[0].status["conditions"]}  # type: ignore[attr-defined]
    assert conditions["Ready"]["reason"] == "SecretNotFound"
    assert conditions["CredentialsValid"]["reason"] == "SecretNotFound"
    assert "acme/absent#t" in conditions["Ready"]["message"]
    row = registry.fetch_state().rows[("servers", "acme", "needs-key")]
    assert isinstance(row, ServerRecord)
    assert row.auth["secretRef"] == "acme/absent#t" and row.auth["secretFingerprint"] is None


def test_invalid_input_writes_nothing(tmp_path: Path, registry: Registry) -> None:
    good = server("ok")
    dangling = {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPConnection",
        "metadata": {"name": "c", "namespace": "acme"},
        "spec": {"serverRef": "nope", "scope": "platform"},
    }
    folder = write_folder(tmp_path / "f", {"a.yaml": [good], "b.yaml": [dangling]})
    with pytest.raises(MissingReference) as caught:
        apply(folder, registry)
    assert "b.yaml:1: MCPConnection acme/c: field spec.serverRef: MCPServer 'nope' does not exist" in str(caught.value)
    bad_template = server("t", url="https://{{ tenant.vars.missing }}.example.com/mcp")
    write_folder(folder, {"b.yaml": [bad_template]})
    with pytest.raises(InvalidInput) as caught:
        apply(folder, registry)
    assert "MCPServer acme/t: field spec.url" in str(caught.value) and "missing" in str(caught.value)
    assert registry.fetch_state().rows == {} and registry.fetch_resources() == []


def test_secret_values_never_reach_the_registry(registry: Registry) -> None:
    desired = load_folder(EXAMPLES)
    values = [v for data in desired.secrets.values.values() for v in data.values()]
    assert len(values) >= 8
    reconcile(desired, registry, settings=SETTINGS)
    dump = json.dumps(registry.dump(), default=str)
    for value in values:
        assert value not in dump
        assert base64.b64encode(value.encode()).decode() not in dump


def test_an_unchanged_resync_takes_a_few_reads_and_hand_edits_are_still_repaired(
    tmp_path: Path, registry: Registry, registry_url: str
) -> None:
    shutil.copytree(EXAMPLES / "02-tenant-servers", tmp_path / "f")
    apply(tmp_path / "f", registry)
    registry.reset_statement_counts()
    quiet = reconcile(load_folder(tmp_path / "f"), registry, settings=SETTINGS)
    assert quiet.plan.actions == () and quiet.plan.unchanged == 8
    assert registry.statement_counts == {"SELECT": registry.statement_counts["SELECT"]}
    assert registry.statement_counts["SELECT"] <= 3
    engine = sa.create_engine(registry_url)
    try:
        with engine.begin() as connection:  # a hand edit, outside the reconciler entirely
            connection.execute(sa.text("UPDATE servers SET url = 'https://evil.example.com/mcp' WHERE name = 'plane'"))
    finally:
        engine.dispose()
    report = apply(tmp_path / "f", registry)
    assert [(str(a.verb), a.key[2]) for a in report.plan.actions if a.writes] == [("repair", "plane")]  # type: ignore[attr-defined]
    assert registry.fetch_state().rows[("servers", "acme", "plane")].url == "https://plane.example.com/mcp"  # type: ignore[union-attr]


def test_a_changed_secret_value_is_never_skipped(tmp_path: Path, registry: Registry) -> None:
    shutil.copytree(EXAMPLES / "02-tenant-servers", tmp_path / "f")
    apply(tmp_path / "f", registry)
    before = registry.fetch_state().rows[("servers", "acme", "internal-search")]
    tenant = tmp_path / "f" / "tenant.yaml"
    tenant.write_text(tenant.read_text().replace("example-tenant-api-key-123", "example-tenant-api-key-456"))
    report = apply(tmp_path / "f", registry)
    (action,) = [a for a in report.plan.actions if a.writes]  # type: ignore[attr-defined]
    assert action.verb is Verb.UPDATE and [c.path for c in action.changes] == ["auth.secretFingerprint"]
    after = registry.fetch_state().rows[("servers", "acme", "internal-search")]
    assert after.row_id == before.row_id


def test_a_write_racing_a_run_makes_it_plan_again_against_the_new_rows(
    tmp_path: Path, registry: Registry, registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(EXAMPLES / "02-tenant-servers", tmp_path / "f")
    original = Registry.fetch_state
    engine = sa.create_engine(registry_url)
    raced: list[bool] = []

    def fetch_then_someone_writes(self: Registry, **kwargs: object) -> object:
        state = original(self, **kwargs)  # type: ignore[arg-type]
        if not raced:
            raced.append(True)
            with engine.begin() as connection:
                connection.execute(sa.text("UPDATE servers SET enabled = NOT enabled WHERE name = 'plane'"))
        return state

    try:
        apply(tmp_path / "f", registry)
        servers = tmp_path / "f" / "servers.yaml"
        servers.write_text(servers.read_text().replace("displayName: Internal Search", "displayName: Search"))
        monkeypatch.setattr(Registry, "fetch_state", fetch_then_someone_writes)
        # The first pass planned against the rows before the racing write; it must not write that stale plan.
        report = apply(tmp_path / "f", registry)
        monkeypatch.undo()
        assert raced
        assert sorted((str(a.verb), a.key[2]) for a in report.plan.actions if a.writes) == [  # type: ignore[attr-defined]
            ("repair", "plane"),
            ("update", "internal-search"),
        ]
        report = apply(tmp_path / "f", registry)
        assert not [a for a in report.plan.actions if a.writes]  # type: ignore[attr-defined]
    finally:
        engine.dispose()


class _Died(BaseException):
    """Stands for the process dying (kill -9) while it probes: nothing after this point runs."""


def test_a_run_dying_while_it_probes_leaves_rows_and_their_stored_copies_in_step(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.engine import reconciling
    from reconciler.engine.probing import ProbeOptions
    from reconciler.probe import ProbeSettings

    shutil.copytree(EXAMPLES / "02-tenant-servers", tmp_path / "f")
    apply(tmp_path / "f", registry)
    servers = tmp_path / "f" / "servers.yaml"
    servers.write_text(servers.read_text().replace("search.internal.example.com", "search2.internal.example.com"))

    def die(*_args: object, **_kwargs: object) -> object:
        raise _Died

    monkeypatch.setattr(reconciling, "prepare_pass", die)
    with pytest.raises(_Died):
        reconcile(load_folder(tmp_path / "f"), registry, settings=SETTINGS, probe=ProbeOptions(ProbeSettings()))
    monkeypatch.undo()
    row = registry.fetch_state().rows[("servers", "acme", "internal-search")]
    assert isinstance(row, ServerRecord) and row.url == "https://search2.internal.example.com/mcp"
    (copy,) = registry.fetch_resources(kind="MCPServer", namespace="acme-prod", name="internal-search")
    assert copy.spec["url"] == row.url
    assert copy.spec_hash == row.ownership.spec_hash


def fleet(root: Path) -> Path:
    """Three tenants, each with two servers, a connection, a grant (with subjects) and a binding."""
    docs: list[dict[str, object]] = []
    for ns in ("alpha", "bravo", "charlie"):
        docs += [server("crm", ns), server("wiki", ns)]
        docs.append(
            {
                "apiVersion": "mcp.reconciler.dev/v1alpha1",
                "kind": "MCPConnection",
                "metadata": {"name": "crm-platform", "namespace": ns},
                "spec": {"serverRef": "crm", "scope": "platform", "credentialMode": "perMember"},
            }
        )
        docs.append(
            {
                "apiVersion": "mcp.reconciler.dev/v1alpha1",
                "kind": "MCPAccessGrant",
                "metadata": {"name": "crm-team", "namespace": ns},
                "spec": {"target": {"serverRef": "crm"}, "subjects": [{"kind": "Team", "name": "sales"}]},
            }
        )
        docs.append(
            {
                "apiVersion": "mcp.reconciler.dev/v1alpha1",
                "kind": "MCPTemplateBinding",
                "metadata": {"name": "assistant", "namespace": ns},
                "spec": {"template": "assistant", "servers": [{"serverRef": "crm"}, {"serverRef": "wiki"}]},
            }
        )
    return write_folder(root, {"fleet.yaml": docs})


def by_hand(registry_url: str, *statements: str) -> None:
    # Another process's connection, with SQLite's foreign keys on as every registry client has them (cascades).
    engine = create_registry_engine(registry_url)
    try:
        with engine.begin() as connection:  # outside the reconciler entirely
            for statement in statements:
                connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def tenant_rows(table: str, tenant: str) -> str:
    return f"tenant_id = (SELECT id FROM tenants WHERE slug = '{tenant}')"


def namespaces_read(report: object) -> set[str]:
    return {result.obj.resource.metadata.namespace for result in report.results}  # type: ignore[attr-defined]


def repairs(report: object) -> list[tuple[str, str, str]]:
    return sorted((str(a.verb), a.key[1], a.key[2]) for a in report.plan.actions if a.writes)  # type: ignore[attr-defined]


def test_a_resync_after_hand_edits_reads_and_repairs_only_the_tenants_they_touched(
    tmp_path: Path, registry: Registry, registry_url: str
) -> None:
    folder = fleet(tmp_path / "f")
    apply(folder, registry)
    wiki = "SELECT id FROM servers WHERE name = 'wiki' AND " + tenant_rows("servers", "bravo")
    grant = "SELECT id FROM access_grants WHERE name = 'crm-team' AND " + tenant_rows("access_grants", "charlie")
    by_hand(
        registry_url,
        f"UPDATE servers SET url = 'https://evil.example.com/mcp' WHERE id = ({wiki})",
        # A child row: its tenant is its grant's.
        f"DELETE FROM access_grant_subjects WHERE grant_id = ({grant})",
    )
    report = apply(folder, registry)
    assert namespaces_read(report) == {"bravo", "charlie"}
    assert repairs(report) == [("repair", "bravo", "wiki"), ("repair", "charlie", "crm-team")]
    assert report.plan.counts()["noop"] == 5 * 3 - 2  # type: ignore[attr-defined]
    assert registry.fetch_state().rows[("servers", "bravo", "wiki")].url == "https://wiki.example.com/mcp"  # type: ignore[union-attr]
    # The repair is recorded as reconciled: the next resync reads no rows at all.
    registry.reset_statement_counts()
    quiet = apply(folder, registry)
    assert quiet.results == [] and registry.statement_counts["SELECT"] <= 3  # type: ignore[attr-defined]


def test_a_tenant_deleted_by_hand_is_read_and_recreated(tmp_path: Path, registry: Registry, registry_url: str) -> None:
    folder = fleet(tmp_path / "f")
    apply(folder, registry)
    wiki = "SELECT id FROM servers WHERE name = 'wiki' AND " + tenant_rows("servers", "alpha")
    by_hand(
        registry_url,
        f"UPDATE servers SET enabled = false WHERE id = ({wiki})",
        # Its rows go with it (ON DELETE CASCADE) and no tenant is left to carry a stamp.
        "DELETE FROM tenants WHERE slug = 'charlie'",
    )
    report = apply(folder, registry)
    assert namespaces_read(report) == {"alpha", "charlie"}
    assert ("repair", "alpha", "wiki") in repairs(report)
    assert {key[1] for key in registry.fetch_state().rows} == {"alpha", "bravo", "charlie"}
    assert len(registry.fetch_state(tenants=["charlie"]).rows) == len(registry.fetch_state(tenants=["bravo"]).rows)


def test_a_stamp_moved_without_any_tenant_reads_everything(
    tmp_path: Path, registry: Registry, registry_url: str
) -> None:
    folder = fleet(tmp_path / "f")
    apply(folder, registry)
    by_hand(registry_url, "UPDATE registry_changes SET stamp = stamp + 1")  # as a TRUNCATE would, on PostgreSQL
    report = apply(folder, registry)
    assert namespaces_read(report) == {"alpha", "bravo", "charlie"} and repairs(report) == []


def test_the_runtimes_user_token_writes_never_force_a_read(
    tmp_path: Path, registry: Registry, registry_url: str
) -> None:
    folder = fleet(tmp_path / "f")
    apply(folder, registry)
    crm = "SELECT id FROM servers WHERE name = 'crm' AND " + tenant_rows("servers", "alpha")
    connection = "SELECT id FROM connections WHERE name = 'crm-platform' AND " + tenant_rows("connections", "alpha")
    alpha = "SELECT id FROM tenants WHERE slug = 'alpha'"
    by_hand(
        registry_url,
        "INSERT INTO user_tokens (tenant_id, server_id, connection_id, user_id, secret_ref, created_at) "
        f"VALUES (({alpha}), ({crm}), ({connection}), 'u1', 'alpha/u1-token#token', CURRENT_TIMESTAMP)",
        "UPDATE user_tokens SET secret_ref = 'alpha/u1-token#rotated' WHERE user_id = 'u1'",
        "DELETE FROM user_tokens WHERE user_id = 'u1'",
    )
    registry.reset_statement_counts()
    report = apply(folder, registry)
    assert report.results == [] and report.plan.counts() == {"noop": 15}  # type: ignore[attr-defined]
    assert registry.statement_counts == {"SELECT": registry.statement_counts["SELECT"]}
    assert registry.statement_counts["SELECT"] <= 3


ORG_CONNECTIONS = EXAMPLES / "05-org-connections"


@pytest.mark.parametrize("first", ["MCPServer", "MCPConnection"])
def test_a_server_and_its_discovery_connection_register_whichever_pass_comes_first(
    first: str, registry: Registry
) -> None:
    """The server names its discovery connection and the connection names its server: the operator reconciles
    each on its own, so neither may wait for the other's row (before: both waited, DependencyPending, forever)."""
    from reconciler.engine.reconciling import ObjectScope
    from reconciler.registry.records import SourceRef

    desired = load_folder(ORG_CONNECTIONS)
    server_ref = SourceRef("MCPServer", "openwork", "linear")
    connection_ref = SourceRef("MCPConnection", "openwork", "linear-shared")
    order = [server_ref, connection_ref] if first == "MCPServer" else [connection_ref, server_ref]

    before = reconcile(desired, registry, settings=SETTINGS, scope=ObjectScope(targets=frozenset([order[0]])))
    assert [result.obj.source for result in before.results] == [order[0]]  # only the target's status
    rows = registry.fetch_state(tenants=["openwork-org"]).rows
    linear = rows[("servers", "openwork-org", "linear")]
    assert isinstance(linear, ServerRecord) and linear.discovery_connection == "linear-shared"
    assert ("connections", "openwork-org", "linear-shared") in rows

    registry.reset_statement_counts()
    after = reconcile(desired, registry, settings=SETTINGS, scope=ObjectScope(targets=frozenset([order[1]])))
    assert [(result.obj.source, result.action.verb) for result in after.results] == [(order[1], Verb.NOOP)]
    assert writes(registry) == 0, registry.statement_counts


def test_a_discovery_connection_is_not_written_beside_its_server_once_registered(registry: Registry) -> None:
    from reconciler.engine.reconciling import ObjectScope
    from reconciler.registry.records import SourceRef

    desired = load_folder(ORG_CONNECTIONS)
    reconcile(desired, registry, settings=SETTINGS)
    with registry.transaction() as tx:  # somebody edits the connection behind our back
        row = registry.fetch_state(tenants=["openwork-org"]).rows[("connections", "openwork-org", "linear-shared")]
        tx.update([dataclasses.replace(row, active=False)])  # type: ignore[call-arg]
    report = reconcile(
        desired,
        registry,
        settings=SETTINGS,
        scope=ObjectScope(targets=frozenset([SourceRef("MCPServer", "openwork", "linear")])),
    )
    assert [action.key for action in report.plan.actions] == [("servers", "openwork-org", "linear")]
    row = registry.fetch_state(tenants=["openwork-org"]).rows[("connections", "openwork-org", "linear-shared")]
    assert row.active is False  # type: ignore[union-attr]  # the connection's own pass repairs it, not this one


def _counting_builds(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The fingerprint keys the observe step builds desired rows with, one entry per build."""
    from reconciler.engine import desired
    from reconciler.engine.steps import observe

    keys: list[bytes] = []
    real = desired.build_desired

    def counted(*args: object, fingerprint_key: bytes, **kwargs: object) -> object:
        keys.append(fingerprint_key)
        return real(*args, fingerprint_key=fingerprint_key, **kwargs)  # type: ignore[arg-type]

    # Every module that builds rows on the way (validation included), so a second build anywhere is counted.
    monkeypatch.setattr(observe, "build_desired", counted)
    monkeypatch.setattr(desired, "build_desired", counted)
    return keys


def test_a_cold_apply_builds_the_rows_once_with_the_key_it_stores(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = _counting_builds(monkeypatch)
    folder = EXAMPLES / "02-tenant-servers"
    first = reconcile(load_folder(folder), registry, settings=SETTINGS)
    assert first.plan.has_changes
    assert keys == [registry.fingerprint_key()]
    registry.reset_statement_counts()
    second = reconcile(load_folder(folder), registry, settings=SETTINGS)
    assert not second.plan.has_changes and writes(registry) == 0


def test_a_key_another_process_stored_first_wins_and_the_rows_are_built_again(
    registry_url: str, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.registry import open_registry

    # The race: this pass saw no key, then another process stored one before this pass could store its own.
    other = open_registry(registry_url)
    try:
        winner = other.fingerprint_key()
    finally:
        other.close()
    monkeypatch.setattr(type(registry), "stored_fingerprint_key", lambda self: None)
    keys = _counting_builds(monkeypatch)
    folder = EXAMPLES / "02-tenant-servers"
    first = reconcile(load_folder(folder), registry, settings=SETTINGS)
    assert first.plan.has_changes
    assert len(keys) == 2 and keys[0] != winner and keys[1] == winner == registry.fingerprint_key()
    monkeypatch.undo()
    registry.reset_statement_counts()
    second = reconcile(load_folder(folder), registry, settings=SETTINGS)
    assert not second.plan.has_changes and writes(registry) == 0


def test_an_authorization_code_server_reports_its_members_tokens(tmp_path: Path, registry: Registry) -> None:
    code = server(
        "code", auth={"type": "oauthAuthorizationCode", "pkce": "public", "clientId": {"value": "reconciler"}}
    )
    folder = write_folder(tmp_path / "f", {"s.yaml": [code, server("plain")]})
    first = apply(folder, registry)
    statuses = {r.obj.resource.metadata.name: r.status for r in first.results}  # type: ignore[attr-defined]
    assert statuses["code"]["oauth"] == {
        "connected": 0,
        "expiringWithin24h": 0,
        "needsReauthorization": 0,
        "withoutRefreshToken": 0,
        "membersExpected": True,
        "summary": "not connected",
    }
    assert "oauth" not in statuses["plain"]
    with registry.transaction() as tx:
        tx.insert_user_token(
            UserTokenRecord(
                tenant="acme",
                server="code",
                user_id="jordan",
                secret_ref="acme/member-jordan#token",
                expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            )
        )
    # Only the other server changed: the code server's row is as it was, but its members' tokens moved.
    write_folder(folder, {"s.yaml": [code, server("plain", description="changed")]})
    apply(folder, registry)
    stored = {r.name: r.status for r in registry.fetch_resources()}
    assert stored["code"]["oauth"]["summary"] == "1 connected, 1 reauth"
    assert stored["code"]["oauth"]["needsReauthorization"] == stored["code"]["oauth"]["withoutRefreshToken"] == 1
    registry.reset_statement_counts()
    apply(folder, registry)
    assert writes(registry) == 0


def test_a_pass_tallies_every_authorization_code_servers_tokens_in_one_query(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = {"type": "oauthAuthorizationCode", "pkce": "public", "clientId": {"value": "reconciler"}}
    folder = write_folder(tmp_path / "f", {"s.yaml": [server(f"code-{n}", auth=auth) for n in range(5)]})
    calls: list[list[tuple[str, str]]] = []
    tally = registry.tally_member_tokens

    def counted(servers: list[tuple[str, str]], **kwargs: Any) -> Any:
        calls.append(sorted(servers))
        return tally(servers, **kwargs)

    monkeypatch.setattr(registry, "tally_member_tokens", counted)
    report = apply(folder, registry)

    assert calls == [[("acme", f"code-{n}") for n in range(5)]]
    assert {r.status["oauth"]["summary"] for r in report.results} == {"not connected"}  # type: ignore[attr-defined]
