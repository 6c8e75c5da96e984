"""Table-driven planner tests: (desired, observed) → expected actions. Pure: no registry, no I/O."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from deepdiff import DeepDiff
from hypothesis import given
from hypothesis import strategies as st

from reconciler.engine.planning import PlanOptions, Verb, field_changes, plan_changes
from reconciler.registry.records import (
    BindingRecord,
    BoundServerRecord,
    ConnectionRecord,
    GrantRecord,
    GrantSubjectRecord,
    HeaderRecord,
    ObservedState,
    Ownership,
    Record,
    ServerRecord,
    SourceRef,
    key_of,
)

ME = "mcp-reconciler"


def source(kind: str, name: str, namespace: str = "acme") -> SourceRef:
    return SourceRef(kind, namespace, name)


def desired_server(name: str = "crm", **fields: object) -> tuple[Record, SourceRef]:
    fields.setdefault("url", "https://crm.example/mcp")
    record = ServerRecord(tenant="acme", name=name, **fields)  # type: ignore[arg-type]
    src = source("MCPServer", name)
    owned = Ownership(manager=ME, source=src, spec_hash=record.content_hash())
    return dataclasses.replace(record, ownership=owned), src


def written(
    record: Record,
    row_id: int = 1,
    *,
    manager: str | None = ME,
    spec_hash: str | None = None,
    policy: str = "Delete",
    src: SourceRef | None = None,
) -> Record:
    """A row as the registry would return it after we wrote `record`."""
    ownership = Ownership(
        manager=manager,
        source=src if src is not None else (record.ownership.source if manager else None),
        spec_hash=spec_hash if spec_hash is not None else (record.ownership.spec_hash if manager else None),
        deletion_policy=policy,  # type: ignore[arg-type]
    )
    return dataclasses.replace(record, ownership=ownership, row_id=row_id)


def observed(*rows: Record) -> ObservedState:
    return ObservedState(rows={key_of(row): row for row in rows})


def verbs(plan) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    return [(str(a.verb), a.key[0], a.key[2]) for a in plan.actions]


def test_new_object_is_created() -> None:
    record, src = desired_server()
    plan = plan_changes([(record, src)], observed(), options=PlanOptions(manager=ME))
    assert verbs(plan) == [("create", "servers", "crm")]
    assert plan.has_changes


def test_unchanged_row_is_noop_without_diff() -> None:
    record, src = desired_server()
    plan = plan_changes([(record, src)], observed(written(record)), options=PlanOptions(manager=ME))
    assert verbs(plan) == [("noop", "servers", "crm")]
    assert not plan.has_changes and plan.actions[0].changes == ()


def test_spec_change_is_update_with_field_diff() -> None:
    old, src = desired_server()
    new, _ = desired_server(url="https://crm.example/v2/mcp")
    plan = plan_changes([(new, src)], observed(written(old)), options=PlanOptions(manager=ME))
    (action,) = plan.actions
    assert action.verb is Verb.UPDATE
    assert [(c.path, c.before, c.after) for c in action.changes] == [
        ("url", "https://crm.example/mcp", "https://crm.example/v2/mcp")
    ]


def test_row_changed_behind_our_back_is_repair() -> None:
    record, src = desired_server()
    tampered = dataclasses.replace(written(record), url="https://evil.example/mcp", enabled=False)
    plan = plan_changes([(record, src)], observed(tampered), options=PlanOptions(manager=ME))
    (action,) = plan.actions
    assert action.verb is Verb.REPAIR
    assert {c.path for c in action.changes} == {"url", "enabled"}


def test_spec_and_row_both_changed_is_update() -> None:
    old, src = desired_server()
    new, _ = desired_server(featured=True)
    tampered = dataclasses.replace(written(old), enabled=False)
    (action,) = plan_changes([(new, src)], observed(tampered), options=PlanOptions(manager=ME)).actions
    assert action.verb is Verb.UPDATE
    assert {c.path for c in action.changes} == {"enabled", "featured"}


@pytest.mark.parametrize(
    ("manager", "adopt", "expected", "message_part"),
    [
        (None, False, Verb.CONFLICT, "mcp.reconciler.dev/adopt"),
        (None, True, Verb.ADOPT, ""),
        ("someone-else", True, Verb.CONFLICT, "managed by 'someone-else'"),
    ],
)
def test_rows_we_do_not_own(manager: str | None, adopt: bool, expected: Verb, message_part: str) -> None:
    record, src = desired_server()
    hand_made = dataclasses.replace(written(record, manager=manager), url="https://old.example/mcp")
    options = PlanOptions(manager=ME, adopt={key_of(record)} if adopt else set())
    (action,) = plan_changes([(record, src)], observed(hand_made), options=options).actions
    assert action.verb is expected
    assert message_part in action.message
    if expected is Verb.ADOPT:
        assert [c.path for c in action.changes] == ["url"]


def test_row_owned_by_another_object_is_conflict() -> None:
    record, src = desired_server()
    other = written(record, src=source("MCPServer", "crm", namespace="other-ns"))
    (action,) = plan_changes([(record, src)], observed(other), options=PlanOptions(manager=ME)).actions
    assert action.verb is Verb.CONFLICT and "other-ns/crm" in action.message


@pytest.mark.parametrize(("policy", "expected"), [("Delete", Verb.DELETE), ("Orphan", Verb.ORPHAN)])
def test_gone_objects_are_pruned_by_their_deletion_policy(policy: str, expected: Verb) -> None:
    record, _ = desired_server()
    (action,) = plan_changes([], observed(written(record, policy=policy)), options=PlanOptions(manager=ME)).actions
    assert action.verb is expected


def test_pruning_never_touches_rows_of_others_or_other_tenants() -> None:
    mine, _ = desired_server("mine")
    manual, _ = desired_server("manual")
    theirs, _ = desired_server("theirs")
    other_tenant = dataclasses.replace(desired_server("far")[0], tenant="globex")
    rows = observed(
        written(mine, 1),
        written(manual, 2, manager=None),
        written(theirs, 3, manager="other"),
        written(other_tenant, 4),
    )
    plan = plan_changes([], rows, options=PlanOptions(manager=ME, prune_tenants={"acme"}))
    assert verbs(plan) == [("delete", "servers", "mine")]
    assert verbs(plan_changes([], rows, options=PlanOptions(manager=ME, prune=False))) == []


def test_observe_only_never_writes_but_reports_drift() -> None:
    record, src = desired_server()
    tampered = dataclasses.replace(written(record), url="https://drifted.example/mcp")
    options = PlanOptions(manager=ME, observe_only={key_of(record)})
    (action,) = plan_changes([(record, src)], observed(tampered), options=options).actions
    assert action.verb is Verb.NOOP and not action.writes
    assert "url" in action.message and [c.path for c in action.changes] == ["url"]
    (missing,) = plan_changes([(record, src)], observed(), options=options).actions
    assert missing.verb is Verb.NOOP and "ObserveOnly" in missing.message


def test_deletion_policy_change_is_an_update() -> None:
    record, src = desired_server()
    orphaning = dataclasses.replace(record, ownership=dataclasses.replace(record.ownership, deletion_policy="Orphan"))
    (action,) = plan_changes([(orphaning, src)], observed(written(record)), options=PlanOptions(manager=ME)).actions
    assert action.verb is Verb.UPDATE
    assert [(c.path, c.after) for c in action.changes] == [("deletionPolicy", "Orphan")]


def test_actions_are_ordered_parents_first_and_removals_children_first() -> None:
    server, server_src = desired_server("s")
    conn = ConnectionRecord(tenant="acme", name="c", server="s")
    conn = dataclasses.replace(conn, ownership=Ownership(ME, source("MCPConnection", "c"), conn.content_hash()))
    grant = GrantRecord(tenant="acme", name="g", target_server="s", subjects=(GrantSubjectRecord("Organization"),))
    grant = dataclasses.replace(grant, ownership=Ownership(ME, source("MCPAccessGrant", "g"), grant.content_hash()))
    binding = BindingRecord(tenant="acme", name="b", template="t", servers=(BoundServerRecord("s"),))
    old_binding = written(binding, 9)
    old_server = written(dataclasses.replace(desired_server("old")[0]), 8)
    plan = plan_changes(
        [(grant, source("MCPAccessGrant", "g")), (conn, source("MCPConnection", "c")), (server, server_src)],
        observed(old_binding, old_server),
        options=PlanOptions(manager=ME),
    )
    assert verbs(plan) == [
        ("create", "servers", "s"),
        ("create", "connections", "c"),
        ("create", "grants", "g"),
        ("delete", "bindings", "b"),
        ("delete", "servers", "old"),
    ]


def test_hand_made_duplicate_of_an_app_owned_server_is_reported() -> None:
    record, src = desired_server("plane", owner_kind="Plugin", owner_name="plane")
    duplicate = written(dataclasses.replace(desired_server("plane-manual")[0]), 5, manager=None)
    plan = plan_changes([(record, src)], observed(duplicate), options=PlanOptions(manager=ME))
    assert verbs(plan) == [("create", "servers", "plane")]
    assert len(plan.warnings) == 1 and "acme/plane-manual duplicates the managed server plane" in plan.warnings[0]


def test_field_changes_name_nested_paths() -> None:
    before = {"headers": [{"name": "x", "value": "1"}], "auth": {"scopes": ["a"]}}
    after = {"headers": [{"name": "x", "value": "2"}], "auth": {"scopes": ["a", "b"]}}
    assert [(c.path, c.before, c.after) for c in field_changes(before, after)] == [
        ("auth.scopes[1]", None, "b"),
        ("headers[0].value", "1", "2"),
    ]


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, 1.0, 2.5]), st.text("ab", max_size=2)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("xy", max_size=2), inner, max_size=3),
    max_leaves=8,
)
ROWS = st.dictionaries(st.sampled_from(["name", "url", "auth", "headers", "tools", "enabled"]), VALUES, max_size=6)


def _whole_row_diff(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """DeepDiff over the whole rows, as `field_changes` did before it handed over only the differing fields."""
    diff = DeepDiff(before, after, ignore_order=False, view="tree", verbose_level=2, threshold_to_diff_deeper=0.33)
    found: dict[str, tuple[str, Any, Any]] = {}
    for report in diff.values():
        for level in report:
            path = ""
            for part in level.path(output_format="list"):
                path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
            absent = [type(value).__name__ == "NotPresent" for value in (level.t1, level.t2)]
            found[path] = (path, None if absent[0] else level.t1, None if absent[1] else level.t2)
    return [found[path] for path in sorted(found)]


@given(before=ROWS, after=ROWS, shared=st.sets(st.sampled_from(["name", "url", "auth", "headers", "tools"])))
def test_field_changes_report_what_deepdiff_reports_over_the_whole_rows(
    before: dict[str, Any], after: dict[str, Any], shared: set[str]
) -> None:
    """Fields equal on both sides (here: `shared` copied over, as most of a repaired row is) are left out of the
    diff; `1`, `1.0` and `True` are equal to Python but not to DeepDiff, so they still count as changes."""
    after = {**after, **{key: before[key] for key in shared if key in before}}
    assert [(c.path, c.before, c.after) for c in field_changes(before, after)] == _whole_row_diff(before, after)


def test_field_changes_see_a_type_change_python_calls_equal() -> None:
    changes = field_changes({"port": 1, "name": "a"}, {"port": 1.0, "name": "a"})
    assert [(c.path, c.before, c.after) for c in changes] == [("port", 1, 1.0)]


def test_field_changes_name_fields_removed_beside_equal_ones() -> None:
    changes = field_changes({"name": "a", "url": "u", "auth": None}, {"name": "a"})
    assert [(c.path, c.before, c.after) for c in changes] == [("auth", None, None), ("url", "u", None)]


def test_secret_change_shows_only_fingerprints() -> None:
    old, src = desired_server(headers=(HeaderRecord("x-key", secret_ref="acme/s#k", fingerprint="hmac-sha256:aa"),))
    new, _ = desired_server(headers=(HeaderRecord("x-key", secret_ref="acme/s#k", fingerprint="hmac-sha256:bb"),))
    (action,) = plan_changes([(new, src)], observed(written(old)), options=PlanOptions(manager=ME)).actions
    assert [(c.path, c.before, c.after) for c in action.changes] == [
        ("headers[0].fingerprint", "hmac-sha256:aa", "hmac-sha256:bb")
    ]


def test_immutable_columns_cover_every_immutable_spec_path() -> None:
    from reconciler.api.server import IMMUTABLE_SERVER_FIELDS
    from reconciler.engine.planning import IMMUTABLE_COLUMNS

    assert set(IMMUTABLE_COLUMNS) == set(IMMUTABLE_SERVER_FIELDS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"transport": "sse"}, "transport is immutable: recreate to switch type ('streamable-http' → 'sse')"),
        ({"auth_type": "bearer"}, "auth.type is immutable: recreate to switch type ('none' → 'bearer')"),
    ],
)
def test_switching_an_immutable_field_in_place_is_refused(change: dict[str, str], message: str) -> None:
    before, src = desired_server()
    after, _ = desired_server(**change)
    plan = plan_changes([(after, src)], observed(written(before)), options=PlanOptions(manager=ME))
    assert verbs(plan) == [("conflict", "servers", "crm")]
    assert plan.conflicts[0].message == message and not plan.has_changes


def test_an_immutable_field_changed_behind_our_back_is_repaired() -> None:
    record, src = desired_server()
    drifted = written(dataclasses.replace(record, transport="sse"))
    plan = plan_changes([(record, src)], observed(drifted), options=PlanOptions(manager=ME))
    assert verbs(plan) == [("repair", "servers", "crm")]


def test_a_declared_duplicate_of_an_app_owned_server_is_a_conflict() -> None:
    owned, owned_src = desired_server("plane", owner_kind="Plugin", owner_name="plane")
    copy, copy_src = desired_server("plane-copy")
    plan = plan_changes([(owned, owned_src), (copy, copy_src)], observed(), options=PlanOptions(manager=ME))
    assert verbs(plan) == [("create", "servers", "plane"), ("conflict", "servers", "plane-copy")]
    assert "URL of server plane (owned by Plugin plane)" in plan.conflicts[0].message


def test_a_declared_duplicate_of_an_app_owned_row_declared_elsewhere_is_a_conflict() -> None:
    """Operator scope: only the duplicate is planned; the app-owned row was written from its own object."""
    owned, _ = desired_server("plane", owner_kind="Plugin", owner_name="plane")
    copy, copy_src = desired_server("plane-copy")
    options = PlanOptions(manager=ME, prune=False)
    plan = plan_changes([(copy, copy_src)], observed(written(owned)), options=options)
    assert verbs(plan) == [("conflict", "servers", "plane-copy")]
    # The same row about to be pruned no longer counts: the declared server is then the only one.
    plan = plan_changes([(copy, copy_src)], observed(written(owned)), options=PlanOptions(manager=ME))
    assert verbs(plan) == [("create", "servers", "plane-copy"), ("delete", "servers", "plane")]


def test_servers_sharing_a_url_without_an_owner_are_not_duplicates() -> None:
    first, first_src = desired_server("a")
    second, second_src = desired_server("b")
    plan = plan_changes([(first, first_src), (second, second_src)], observed(), options=PlanOptions(manager=ME))
    assert verbs(plan) == [("create", "servers", "a"), ("create", "servers", "b")]


def signing_server(name: str, *, key: str, kid: str = "k1", url: str | None = None) -> tuple[Record, SourceRef]:
    """A CIMD client-credentials server publishing the public key `key` (its `x`) under `kid`."""
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": key, "kid": kid, "alg": "EdDSA", "use": "sig"}
    return desired_server(
        name,
        url=url or f"https://{name}.example/mcp",
        auth_type="oauthClientCredentials",
        auth={"clientAssertion": {"keyId": kid}, "clientAssertionPublicKey": jwk},
    )


def test_a_key_id_naming_another_servers_key_in_the_tenant_is_a_conflict_for_the_newcomer() -> None:
    incumbent, incumbent_src = signing_server("billing", key="AAAA")
    newcomer, newcomer_src = signing_server("crm", key="BBBB")
    plan = plan_changes(
        [(incumbent, incumbent_src), (newcomer, newcomer_src)],
        observed(written(incumbent)),
        options=PlanOptions(manager=ME),
    )
    assert verbs(plan) == [("noop", "servers", "billing"), ("conflict", "servers", "crm")]
    assert "keyId 'k1' already names another key in tenant acme's JWKS (server billing)" in plan.conflicts[0].message
    # Operator scope: only the newcomer is planned, the incumbent's row stays and still claims the kid.
    plan = plan_changes(
        [(newcomer, newcomer_src)], observed(written(incumbent)), options=PlanOptions(manager=ME, prune=False)
    )
    assert verbs(plan) == [("conflict", "servers", "crm")]
    # Two newcomers claiming one kid with two keys: neither is published.
    plan = plan_changes(
        [(incumbent, incumbent_src), (newcomer, newcomer_src)], observed(), options=PlanOptions(manager=ME)
    )
    assert verbs(plan) == [("conflict", "servers", "billing"), ("conflict", "servers", "crm")]


def test_one_key_shared_under_one_kid_or_kids_in_other_tenants_are_not_conflicts() -> None:
    first, first_src = signing_server("billing", key="AAAA")
    same_key, same_key_src = signing_server("crm", key="AAAA")
    plan = plan_changes([(first, first_src), (same_key, same_key_src)], observed(), options=PlanOptions(manager=ME))
    assert verbs(plan) == [("create", "servers", "billing"), ("create", "servers", "crm")]
    elsewhere = dataclasses.replace(signing_server("crm", key="BBBB")[0], tenant="globex")
    plan = plan_changes(
        [(first, first_src)], observed(written(elsewhere)), options=PlanOptions(manager=ME, prune=False)
    )
    assert verbs(plan) == [("create", "servers", "billing")]


def test_a_pruned_servers_kid_is_free_and_a_server_may_change_its_own_key() -> None:
    incumbent, _ = signing_server("billing", key="AAAA")
    newcomer, newcomer_src = signing_server("crm", key="BBBB")
    plan = plan_changes([(newcomer, newcomer_src)], observed(written(incumbent)), options=PlanOptions(manager=ME))
    assert verbs(plan) == [("create", "servers", "crm"), ("delete", "servers", "billing")]
    rotated, rotated_src = signing_server("billing", key="CCCC")
    plan = plan_changes([(rotated, rotated_src)], observed(written(incumbent)), options=PlanOptions(manager=ME))
    assert verbs(plan) == [("update", "servers", "billing")]
