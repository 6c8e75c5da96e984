"""The registry contract: the same cases against SQLite and PostgreSQL, through the public API only."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import InvalidInput, MissingReference, PermanentError, RetryableError
from reconciler.records import ToolAnnotationHints
from reconciler.registry import (
    AuditLogRow,
    ConcurrentChange,
    DuplicateRow,
    OAuthClientRecord,
    Registry,
    RegistryUnavailable,
    open_registry,
)
from reconciler.registry.records import (
    AuditEntry,
    BindingRecord,
    BoundServerRecord,
    ConnectionRecord,
    GrantRecord,
    GrantSubjectRecord,
    HeaderRecord,
    MemberHeaderRecord,
    Ownership,
    ProbeStateRecord,
    Record,
    ResourceRecord,
    RowKey,
    ServerRecord,
    SourceRef,
    TenantRecord,
    ToolRecord,
    ToolSnapshotRecord,
    UserTokenRecord,
    key_of,
)
from tests.integration.registry.samples import fleet, full_tenant, owned, tenant

WRITE_VERBS = ("INSERT", "UPDATE", "DELETE")
T0 = dt.datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)


def write(registry: Registry, records: Sequence[Record]) -> dict[RowKey, int]:
    with registry.transaction() as transaction:
        transaction.ensure_tenants({tenant(record.tenant) for record in records})
        return transaction.insert(records)


def writes(registry: Registry) -> int:
    counts = registry.statement_counts
    return sum(counts[verb] for verb in WRITE_VERBS)


def server_with_runtime_data(registry: Registry, slug: str, server: str, *, connection: str) -> None:
    """What the probe, the credentials package and the runtime hang off a server row."""
    with registry.transaction() as transaction:
        transaction.insert_user_token(UserTokenRecord(tenant=slug, server=server, user_id="u1", secret_ref="v/u1#t"))
        transaction.insert_user_token(
            UserTokenRecord(tenant=slug, server=server, user_id="u2", secret_ref="v/u2#t", connection=connection)
        )
        transaction.put_tool_snapshot(
            ToolSnapshotRecord(tenant=slug, server=server, hash="sha256:1", tools=(ToolRecord(name="a"),), taken_at=T0)
        )
        transaction.put_probe_state(ProbeStateRecord(tenant=slug, server=server, last_test={"ok": True}))
        transaction.put_oauth_client(
            OAuthClientRecord(tenant=slug, server=server, issuer="https://as.example.com", client_id=f"{server}-c")
        )


# -- round trip ----------------------------------------------------------------------------------------------


def test_every_record_type_round_trips(registry: Registry) -> None:
    records = full_tenant("acme")
    ids = write(registry, records)

    state = registry.fetch_state()

    assert state.tenants == {"acme": TenantRecord(slug="acme", namespace="ns-acme")}
    assert set(state.rows) == {key_of(record) for record in records}
    for record in records:
        fetched = state.rows[key_of(record)]
        assert fetched == record
        assert fetched.content_hash() == record.content_hash()
        assert fetched.ownership == record.ownership
        assert fetched.row_id == ids[key_of(record)]


def test_none_and_empty_stay_distinct(registry: Registry) -> None:
    records: list[Record] = [
        ServerRecord(tenant="t", name="a", display_name=None, description="", auth={}),
        ServerRecord(tenant="t", name="b", display_name="", description=None, auth={"k": None, "l": []}),
        ConnectionRecord(tenant="t", name="c", server="a", subject="", secret_ref=None, authorization_scheme=""),
        GrantRecord(tenant="t", name="g", subjects=(GrantSubjectRecord(kind="member", name=""),)),
        BindingRecord(tenant="t", name="b", template="", servers=(BoundServerRecord(server="a", connection=None),)),
    ]
    write(registry, records)

    state = registry.fetch_state()

    for record in records:
        assert state.rows[key_of(record)].content() == record.content()


def test_ownership_columns_record_who_manages_a_row(registry: Registry) -> None:
    hand_made = ServerRecord(tenant="t", name="manual", url="https://m")
    managed = ServerRecord(tenant="t", name="managed", url="https://o", ownership=owned("MCPServer", "ns-t", "x"))
    write(registry, [hand_made, managed])

    rows = {row["name"]: row for row in registry.dump()["servers"]}
    assert rows["manual"]["manager"] is None
    assert rows["manual"]["source_kind"] is None
    assert rows["managed"]["manager"] == "mcp-reconciler"
    assert (rows["managed"]["source_kind"], rows["managed"]["source_namespace"], rows["managed"]["source_name"]) == (
        "MCPServer",
        "ns-t",
        "x",
    )
    assert rows["managed"]["spec_hash"] == "sha256:MCPServer-ns-t-x"
    state = registry.fetch_state()
    assert state.rows[("servers", "t", "manual")].ownership == Ownership()
    assert state.rows[("servers", "t", "managed")].ownership == managed.ownership


def test_fetch_state_filters_by_tenant(registry: Registry) -> None:
    write(registry, full_tenant("one") + full_tenant("two"))

    state = registry.fetch_state(tenants=["two"])

    assert set(state.tenants) == {"two"}
    assert {tenant for _table, tenant, _name in state.rows} == {"two"}
    assert state.rows == {key_of(record): record for record in full_tenant("two")}


json_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | json_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(json_text, children, max_size=3),
    max_leaves=10,
)
optional_text = st.none() | json_text
headers = st.lists(
    st.builds(HeaderRecord, name=json_text, value=optional_text, secret_ref=optional_text, fingerprint=optional_text),
    max_size=3,
).map(tuple)
globs = st.lists(json_text, max_size=3).map(tuple)


@st.composite
def tenant_batches(draw: st.DrawFn) -> list[Record]:
    """A consistent batch: references point at servers/connections of the same batch."""
    server_names = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=4, unique=True))
    connection_names = draw(st.lists(st.sampled_from("pqrstu"), max_size=4, unique=True))
    connection_or_none = st.sampled_from([None, *connection_names])
    servers = [
        ServerRecord(
            tenant="t",
            name=name,
            display_name=draw(optional_text),
            description=draw(optional_text),
            url=draw(json_text),
            transport=draw(json_text),
            enabled=draw(st.booleans()),
            featured=draw(st.booleans()),
            headers=draw(headers),
            auth_type=draw(json_text),
            auth=draw(st.dictionaries(json_text, json_values, max_size=4)),
            owner_kind=draw(optional_text),
            owner_name=draw(optional_text),
            tool_policy=draw(json_text),
            approved_hash=draw(optional_text),
            tools_allow=draw(globs),
            tools_deny=draw(globs),
            allow_private=draw(st.booleans()),
            discovery_enabled=draw(st.booleans()),
            discovery_interval_seconds=draw(st.integers(0, 2**31 - 1)),
            discovery_connection=draw(connection_or_none),
        )
        for name in server_names
    ]
    connections = [
        ConnectionRecord(
            tenant="t",
            name=name,
            server=draw(st.sampled_from(server_names)),
            scope=draw(json_text),
            subject=draw(optional_text),
            credential_mode=draw(json_text),
            secret_ref=draw(optional_text),
            fingerprint=draw(optional_text),
            authorization_scheme=draw(optional_text),
            headers=draw(headers),
            active=draw(st.booleans()),
            use_for_discovery=draw(st.booleans()),
            member_headers=tuple(
                draw(st.lists(st.builds(MemberHeaderRecord, name=json_text, key=json_text), max_size=2))
            ),
        )
        for name in connection_names
    ]
    grants = [
        GrantRecord(
            tenant="t",
            name=f"g{index}",
            target_server=draw(st.sampled_from([None, *server_names])),
            target_connection=draw(connection_or_none),
            subjects=tuple(
                draw(st.lists(st.builds(GrantSubjectRecord, kind=json_text, name=optional_text), max_size=4))
            ),
        )
        for index in range(draw(st.integers(0, 3)))
    ]
    bound = st.builds(
        BoundServerRecord,
        server=st.sampled_from(server_names),
        connection=connection_or_none,
        tools_allow=globs,
        tools_deny=globs,
    )
    bindings = [
        BindingRecord(
            tenant="t",
            name=f"b{index}",
            template=draw(json_text),
            servers=tuple(draw(st.lists(bound, max_size=4))),
            agents=tuple(draw(st.lists(json_text, max_size=3, unique=True))),
        )
        for index in range(draw(st.integers(0, 3)))
    ]
    return [*servers, *connections, *grants, *bindings]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=tenant_batches())
def test_generated_records_round_trip_exactly(registry: Registry, batch: list[Record]) -> None:
    with registry.transaction() as transaction:
        transaction.delete([key for key in registry.fetch_state().rows])
        transaction.ensure_tenants([tenant("t")])
        transaction.insert(batch)

    fetched = registry.fetch_state(tenants=["t"]).rows

    assert fetched == {key_of(record): record for record in batch}
    assert {key: record.content_hash() for key, record in fetched.items()} == {
        key_of(record): record.content_hash() for record in batch
    }


# -- insert errors -------------------------------------------------------------------------------------------


def test_inserting_an_existing_key_is_a_clear_permanent_error(registry: Registry) -> None:
    write(registry, [ServerRecord(tenant="t", name="crm", url="https://a")])

    with pytest.raises(DuplicateRow, match="servers t/crm") as raised:
        write(registry, [ServerRecord(tenant="t", name="crm", url="https://b")])

    assert isinstance(raised.value, PermanentError)
    assert registry.fetch_state().rows[("servers", "t", "crm")] == ServerRecord(tenant="t", name="crm", url="https://a")


def test_the_same_key_twice_in_one_batch_is_rejected(registry: Registry) -> None:
    with pytest.raises(DuplicateRow, match="twice"):
        write(registry, [ServerRecord(tenant="t", name="x"), ServerRecord(tenant="t", name="x", url="u")])

    assert registry.fetch_state().rows == {}


def test_a_unique_violation_inside_the_database_is_translated(registry: Registry) -> None:
    """One token per member and server even without a connection (NULLs never collide in a UNIQUE)."""
    write(registry, [ServerRecord(tenant="t", name="s")])
    token = UserTokenRecord(tenant="t", server="s", user_id="alice", secret_ref="ns/tok#a")
    with registry.transaction() as transaction:
        transaction.insert_user_token(token)

    with pytest.raises(DuplicateRow) as raised, registry.transaction() as transaction:
        transaction.insert_user_token(token)

    assert isinstance(raised.value, PermanentError)
    assert isinstance(raised.value.__cause__, sa.exc.IntegrityError)
    assert registry.count_user_tokens() == {("t", "s"): 1}


def test_references_resolve_within_the_tenant_or_fail_naming_them(registry: Registry) -> None:
    write(registry, [ServerRecord(tenant="other", name="crm")])
    orphan = ConnectionRecord(
        tenant="t", name="c", server="crm", ownership=owned("MCPConnection", "ns-t", "c-resource")
    )
    bad_binding = BindingRecord(
        tenant="t", name="b", template="x", servers=(BoundServerRecord(server="s", connection="n"),)
    )

    with pytest.raises(MissingReference) as raised:
        write(registry, [ServerRecord(tenant="t", name="s"), orphan, bad_binding])

    problems = {(problem.kind, problem.namespace, problem.name, problem.field) for problem in raised.value.problems}
    assert problems == {
        ("MCPConnection", "ns-t", "c-resource", "server"),
        ("MCPTemplateBinding", "ns-t", "b", "servers[0].connection"),
    }
    assert "server 'crm' does not exist in tenant 't'" in str(raised.value)
    assert set(registry.fetch_state().rows) == {("servers", "other", "crm")}


def test_unknown_tenants_are_missing_references(registry: Registry) -> None:
    with pytest.raises(MissingReference, match="tenant 'ghost'"), registry.transaction() as transaction:
        transaction.insert([ServerRecord(tenant="ghost", name="s")])


def test_references_reach_rows_inserted_earlier_and_in_the_same_call(registry: Registry) -> None:
    write(registry, [ServerRecord(tenant="t", name="old"), ConnectionRecord(tenant="t", name="old-c", server="old")])
    batch: list[Record] = [
        ServerRecord(tenant="t", name="new", discovery_connection="new-c"),
        ServerRecord(tenant="t", name="new2", discovery_connection="old-c"),
        ConnectionRecord(tenant="t", name="new-c", server="new"),
        GrantRecord(tenant="t", name="g", target_server="old", target_connection="new-c"),
        BindingRecord(tenant="t", name="b", template="x", servers=(BoundServerRecord("new", "old-c"),)),
    ]
    write(registry, batch)

    rows = registry.fetch_state().rows
    for record in batch:
        assert rows[key_of(record)] == record


# -- update --------------------------------------------------------------------------------------------------


def test_update_rewrites_in_place_and_keeps_runtime_data(registry: Registry) -> None:
    write(registry, full_tenant("acme"))
    server_with_runtime_data(registry, "acme", "crm", connection="crm-platform")
    observed = registry.fetch_state().rows
    server = observed[("servers", "acme", "crm")]
    connection = observed[("connections", "acme", "crm-platform")]
    assert isinstance(server, ServerRecord) and isinstance(connection, ConnectionRecord)
    new_server = dataclasses.replace(
        server,
        url="https://crm2.example.com/mcp",
        headers=(HeaderRecord(name="X-Api-Key", secret_ref="ns-acme/rotated#token", fingerprint="hmac:new"),),
        discovery_connection="crm-alice",
        ownership=owned("MCPServer", "ns-acme", "crm2"),
    )
    new_connection = dataclasses.replace(
        connection, secret_ref="ns-acme/rotated#t", fingerprint="hmac:9", server="wiki"
    )

    with registry.transaction() as transaction:
        transaction.update([new_server, new_connection])

    rows = registry.fetch_state().rows
    assert rows[key_of(new_server)] == new_server
    assert rows[key_of(new_server)].row_id == server.row_id
    assert rows[key_of(new_server)].ownership == new_server.ownership
    assert rows[key_of(new_connection)] == new_connection
    assert rows[key_of(new_connection)].row_id == connection.row_id
    assert {token.user_id for token in registry.fetch_user_tokens(tenant="acme", server="crm")} == {"u1", "u2"}
    assert [snapshot.hash for snapshot in registry.fetch_tool_snapshots("acme", "crm")] == ["sha256:1"]
    assert registry.fetch_probe_states()[("acme", "crm")].last_test == {"ok": True}
    assert [client.client_id for client in registry.fetch_oauth_clients(tenant="acme", server="crm")] == ["crm-c"]
    # Grants and bindings pointing at the rewritten rows still do.
    assert rows[("grants", "acme", "crm-sales")] == observed[("grants", "acme", "crm-sales")]
    assert rows[("bindings", "acme", "support-agent")] == observed[("bindings", "acme", "support-agent")]


def test_update_replaces_children_in_order(registry: Registry) -> None:
    write(registry, full_tenant("acme"))
    observed = registry.fetch_state().rows
    grant = observed[("grants", "acme", "crm-sales")]
    binding = observed[("bindings", "acme", "support-agent")]
    assert isinstance(grant, GrantRecord) and isinstance(binding, BindingRecord)
    new_grant = dataclasses.replace(
        grant, subjects=(GrantSubjectRecord("member", "zed"), GrantSubjectRecord("organization"))
    )
    new_binding = dataclasses.replace(
        binding,
        template="support-v2",
        servers=(BoundServerRecord("crm", tools_deny=("*",)), BoundServerRecord("wiki", tools_read_only=True)),
    )

    with registry.transaction() as transaction:
        transaction.update([new_grant, new_binding])

    rows = registry.fetch_state().rows
    assert rows[key_of(new_grant)] == new_grant
    assert rows[key_of(new_binding)] == new_binding
    assert len(registry.dump()["access_grant_subjects"]) == 1 + 2
    assert len(registry.dump()["template_binding_servers"]) == 2


def test_updating_a_row_that_vanished_asks_to_observe_again(registry: Registry) -> None:
    write(registry, [ServerRecord(tenant="t", name="s"), ServerRecord(tenant="t", name="kept")])
    observed = registry.fetch_state().rows[("servers", "t", "s")]
    still_there = registry.fetch_state().rows[("servers", "t", "kept")]
    assert isinstance(observed, ServerRecord)
    with registry.transaction() as transaction:
        transaction.delete([("servers", "t", "s")])

    with pytest.raises(ConcurrentChange, match="1 of 2 servers") as raised, registry.transaction() as transaction:
        transaction.update([dataclasses.replace(observed, url="https://new"), still_there])

    assert isinstance(raised.value, RetryableError)


def test_update_needs_observed_rows(registry: Registry) -> None:
    write(registry, [ServerRecord(tenant="t", name="s")])

    with pytest.raises(ValueError, match="row_id"), registry.transaction() as transaction:
        transaction.update([ServerRecord(tenant="t", name="s", url="x")])


# -- delete and release --------------------------------------------------------------------------------------


def test_deleting_a_server_cascades_to_everything_hanging_off_it(registry: Registry) -> None:
    write(registry, full_tenant("acme"))
    write(
        registry,
        [
            ServerRecord(tenant="acme", name="other"),
            ConnectionRecord(tenant="acme", name="other-c", server="other"),
            GrantRecord(
                tenant="acme", name="other-g", target_server="other", subjects=(GrantSubjectRecord("team", "x"),)
            ),
        ],
    )
    with registry.transaction() as transaction:
        binding = transaction.fetch_state().rows[("bindings", "acme", "support-agent")]
        assert isinstance(binding, BindingRecord)
        transaction.update([dataclasses.replace(binding, servers=(*binding.servers, BoundServerRecord("other")))])
    server_with_runtime_data(registry, "acme", "crm", connection="crm-platform")
    server_with_runtime_data(registry, "acme", "other", connection="other-c")

    with registry.transaction() as transaction:
        transaction.delete([("servers", "acme", "crm")])

    rows = registry.fetch_state().rows
    assert set(rows) == {
        ("servers", "acme", "wiki"),
        ("servers", "acme", "other"),
        ("connections", "acme", "other-c"),
        ("grants", "acme", "nobody"),
        ("grants", "acme", "other-g"),
        ("bindings", "acme", "support-agent"),
        ("bindings", "acme", "bare"),
    }
    assert rows[("bindings", "acme", "support-agent")] == BindingRecord(
        tenant="acme",
        name="support-agent",
        template="support",
        servers=(BoundServerRecord("wiki"), BoundServerRecord("other")),
    )
    assert registry.count_user_tokens() == {("acme", "other"): 2}
    dump = registry.dump()
    assert [row["client_id"] for row in dump["oauth_clients"]] == ["other-c"]
    assert len(dump["tool_snapshots"]) == 1
    assert len(dump["server_probe_state"]) == 1
    assert [row["name"] for row in dump["access_grant_subjects"]] == ["x"]


def test_deleting_a_connection_leaves_its_server(registry: Registry) -> None:
    write(registry, full_tenant("acme"))
    server_with_runtime_data(registry, "acme", "crm", connection="crm-platform")

    with registry.transaction() as transaction:
        transaction.delete([("connections", "acme", "crm-platform")])

    rows = registry.fetch_state().rows
    crm = rows[("servers", "acme", "crm")]
    assert isinstance(crm, ServerRecord)
    assert crm.discovery_connection is None
    assert ("grants", "acme", "crm-sales") not in rows
    binding = rows[("bindings", "acme", "support-agent")]
    assert isinstance(binding, BindingRecord)
    assert binding.servers == (BoundServerRecord("wiki"),)
    assert [token.user_id for token in registry.fetch_user_tokens(tenant="acme", server="crm")] == ["u1"]


def test_deleting_missing_rows_is_fine(registry: Registry) -> None:
    write(registry, [ServerRecord(tenant="t", name="s")])

    with registry.transaction() as transaction:
        transaction.delete([("servers", "t", "gone"), ("grants", "nobody", "x"), ("servers", "t", "s")])

    assert registry.fetch_state().rows == {}


def test_release_clears_ownership_and_keeps_the_row(registry: Registry) -> None:
    records = full_tenant("acme")
    ids = write(registry, records)

    with registry.transaction() as transaction:
        transaction.release([("servers", "acme", "crm"), ("grants", "acme", "crm-sales")])

    rows = registry.fetch_state().rows
    for key in (("servers", "acme", "crm"), ("grants", "acme", "crm-sales")):
        assert rows[key].ownership == Ownership()
        assert rows[key].row_id == ids[key]
    assert rows[("servers", "acme", "crm")] == records[0]
    assert rows[("connections", "acme", "crm-platform")].ownership.manager == "mcp-reconciler"


# -- transactions and statement counts -----------------------------------------------------------------------


def test_an_exception_rolls_back_everything(registry: Registry) -> None:
    class Crash(Exception):
        pass

    with pytest.raises(Crash), registry.transaction() as transaction:
        transaction.ensure_tenants([tenant("acme")])
        transaction.insert(full_tenant("acme"))
        transaction.audit([AuditEntry(action="create", table="servers", tenant="acme", name="crm", actor="me")])
        transaction.put_resources([ResourceRecord("MCPServer", "ns", "n", "acme", 1, "h", {})])
        raise Crash

    # The change stamp row exists from migration 0004 on; it proves the rollback too: it never moved.
    assert {table: rows for table, rows in registry.dump().items() if rows} == {
        "registry_changes": [{"id": 1, "stamp": 0}]
    }


def test_a_failed_write_rolls_back_earlier_writes_of_the_transaction(registry: Registry) -> None:
    with pytest.raises(MissingReference), registry.transaction() as transaction:
        transaction.ensure_tenants([tenant("t")])
        transaction.insert([ServerRecord(tenant="t", name="s")])
        transaction.insert([ConnectionRecord(tenant="t", name="c", server="nope")])

    assert registry.fetch_state().rows == {}
    assert registry.fetch_state().tenants == {}


def test_fetch_state_costs_the_same_queries_for_10_and_200_rows(registry: Registry) -> None:
    _small_tenants, small = fleet(tenants=1, objects_per_tenant=10)
    big_tenants, big = fleet(tenants=4, objects_per_tenant=52)
    with registry.transaction() as transaction:
        transaction.ensure_tenants([tenant("small")])
        transaction.insert([dataclasses.replace(record, tenant="small") for record in small])
    registry.reset_statement_counts()
    registry.fetch_state()
    small_counts = registry.statement_counts

    with registry.transaction() as transaction:
        transaction.ensure_tenants(big_tenants)
        transaction.insert(big)
    registry.reset_statement_counts()
    state = registry.fetch_state()
    big_counts = registry.statement_counts

    assert len(small) < 10 and len(state.rows) == len(small) + len(big) > 200
    assert big_counts == small_counts
    assert small_counts["SELECT"] == 7


def test_batched_writes_issue_one_statement_per_table(registry: Registry) -> None:
    tenants, records = fleet(tenants=3, objects_per_tenant=40)
    with registry.transaction() as transaction:
        transaction.ensure_tenants(tenants)
    registry.reset_statement_counts()

    with registry.transaction() as transaction:
        transaction.insert(records)

    # servers, connections, grants, subjects, bindings, bound servers; reads: tenants and name lookups
    assert registry.statement_counts["INSERT"] == 6
    assert registry.statement_counts["UPDATE"] == 0
    assert registry.statement_counts["SELECT"] <= 5


def test_ensure_tenants_writes_nothing_when_all_exist(registry: Registry) -> None:
    with registry.transaction() as transaction:
        transaction.ensure_tenants([tenant("a"), tenant("b")])
    registry.reset_statement_counts()

    with registry.transaction() as transaction:
        transaction.ensure_tenants([tenant("b"), tenant("a")])
        transaction.insert([])
        transaction.update([])
        transaction.delete([])
        transaction.audit([])

    assert writes(registry) == 0
    assert set(registry.fetch_state().tenants) == {"a", "b"}


def test_a_finished_transaction_cannot_be_used(registry: Registry) -> None:
    with registry.transaction() as transaction:
        pass

    with pytest.raises(RuntimeError, match="ended"):
        transaction.ensure_tenants([tenant("a")])


# -- keys, audit, resources ----------------------------------------------------------------------------------


def test_fingerprint_key_is_random_and_stable_across_reopen(registry_url: str) -> None:
    with open_registry(registry_url) as first:
        key = first.fingerprint_key()
        assert first.fingerprint_key() == key
    with open_registry(registry_url) as second:
        second.reset_statement_counts()
        assert second.fingerprint_key() == key
        assert writes(second) == 0

    assert len(key) == 32
    assert key != bytes(32)


def test_audit_entries_round_trip_newest_first(registry: Registry) -> None:
    source = SourceRef(kind="MCPServer", namespace="ns-a", name="crm")
    first = AuditEntry(action="create", table="servers", tenant="a", name="crm", actor="op", source=source)
    second = AuditEntry(
        action="update",
        table="servers",
        tenant="a",
        name="crm",
        actor="op",
        diff={"url": {"old": "x", "new": "y"}, "headers": [{"secret_ref": "ns-a/s#k"}]},
        message="rotated",
    )
    other = AuditEntry(action="delete", table="grants", tenant="b", name="g", actor="cli")
    with registry.transaction() as transaction:
        transaction.audit([first])
    with registry.transaction() as transaction:
        transaction.audit([second, other])

    everything = registry.fetch_audit()
    only_a = registry.fetch_audit(tenant="a")
    newest = registry.fetch_audit(limit=1)

    assert [row.entry for row in everything] == [other, second, first]
    assert [row.entry for row in only_a] == [second, first]
    assert [row.entry for row in newest] == [other]
    assert all(isinstance(row, AuditLogRow) and row.at.tzinfo == dt.UTC for row in everything)
    assert everything[0].at >= everything[-1].at


def test_resources_upsert_by_kind_namespace_name(registry: Registry) -> None:
    original = ResourceRecord(
        kind="MCPServer",
        namespace="ns",
        name="crm",
        tenant="acme",
        generation=1,
        spec_hash="h1",
        spec={"url": "https://a", "headers": [{"name": "X"}]},
        labels={"app": "crm"},
        annotations={},
        uid="uid-1",
    )
    grant = ResourceRecord(
        kind="MCPAccessGrant", namespace="ns", name="crm", tenant="acme", generation=3, spec_hash="g", spec={}
    )
    with registry.transaction() as transaction:
        transaction.put_resources([original, grant])
    created_at = registry.fetch_resources(kind="MCPServer")[0].created_at
    changed = dataclasses.replace(original, generation=2, spec_hash="h2", spec={"url": "https://b"}, labels={})

    with registry.transaction() as transaction:
        transaction.put_resources([changed])
        ready = {"conditions": [{"type": "Ready", "status": "True"}]}
        assert transaction.change_status("MCPServer", "ns", "crm", lambda status: status | ready)
        assert not transaction.change_status("MCPServer", "ns", "crm", lambda status: status | ready)
        assert not transaction.change_status("MCPServer", "ns", "absent", lambda status: {"ignored": True})

    [stored] = registry.fetch_resources(kind="MCPServer", namespace="ns", name="crm")
    assert stored == dataclasses.replace(
        changed, status={"conditions": [{"type": "Ready", "status": "True"}]}, created_at=created_at
    )
    assert created_at is not None and created_at.tzinfo == dt.UTC
    assert [resource.kind for resource in registry.fetch_resources(namespace="ns")] == ["MCPAccessGrant", "MCPServer"]

    with registry.transaction() as transaction:
        transaction.delete_resources([("MCPServer", "ns", "crm"), ("MCPServer", "ns", "never")])

    assert registry.fetch_resources() == [
        dataclasses.replace(grant, created_at=registry.fetch_resources()[0].created_at)
    ]


def test_status_changes_from_concurrent_writers_are_all_kept(registry: Registry) -> None:
    """Each writer merges its part into the status it reads under the row's lock: none overwrites another's."""
    resource = ResourceRecord(
        kind="MCPServer", namespace="ns", name="crm", tenant="acme", generation=1, spec_hash="h", spec={}
    )
    with registry.transaction() as transaction:
        transaction.put_resources([resource])

    def write_parts(writer: int) -> None:
        for part in range(10):
            added = {f"{writer}-{part}": 1}
            with registry.transaction() as transaction:
                transaction.change_status("MCPServer", "ns", "crm", lambda status, added=added: status | added)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write_parts, range(4)))

    [stored] = registry.fetch_resources(kind="MCPServer")
    assert stored.status == {f"{writer}-{part}": 1 for writer in range(4) for part in range(10)}


# -- probe-owned and runtime-owned data ----------------------------------------------------------------------


def test_tool_snapshots_keep_the_latest_and_the_previous_change(registry: Registry) -> None:
    write(registry, [ServerRecord(tenant="t", name="s")])
    tools_v1 = (
        ToolRecord(name="search", title="Search", description="d", input_schema={"type": "object"}, fingerprint="f1"),
    )

    def snapshot(hash_: str, minutes: int, tools: tuple[ToolRecord, ...] = tools_v1) -> ToolSnapshotRecord:
        return ToolSnapshotRecord(
            tenant="t",
            server="s",
            hash=hash_,
            tools=tools,
            taken_at=T0 + dt.timedelta(minutes=minutes),
            protocol_version="2025-06-18",
            server_info={"name": "srv", "version": "1"},
            capabilities=("tools", "resources"),
        )

    for hash_, minutes in (("h1", 0), ("h2", 1), ("h3", 2)):
        with registry.transaction() as transaction:
            transaction.put_tool_snapshot(snapshot(hash_, minutes))
    assert registry.fetch_tool_snapshots("t", "s") == [snapshot("h3", 2), snapshot("h2", 1)]

    with registry.transaction() as transaction:
        transaction.put_tool_snapshot(snapshot("h3", 5, tools=()))

    assert registry.fetch_tool_snapshots("t", "s") == [snapshot("h3", 5, tools=()), snapshot("h2", 1)]
    assert len(registry.dump()["tool_snapshots"]) == 2


def test_tool_snapshots_keep_each_tools_hints_as_sent(registry: Registry) -> None:
    write(registry, [ServerRecord(tenant="t", name="s")])
    hints = {
        "read": ToolAnnotationHints(read_only_hint=True, open_world_hint=False),
        "wipe": ToolAnnotationHints(read_only_hint=False, destructive_hint=True, idempotent_hint=True),
        "plain": ToolAnnotationHints(),
    }
    tools = tuple(ToolRecord(name=name, fingerprint=name, annotations=value) for name, value in hints.items())
    with registry.transaction() as transaction:
        transaction.put_tool_snapshot(ToolSnapshotRecord(tenant="t", server="s", hash="h", tools=tools, taken_at=T0))

    (stored,) = registry.fetch_tool_snapshots("t", "s")

    assert {tool.name: tool.annotations for tool in stored.tools} == hints
    assert [tool.read_only for tool in stored.tools] == [True, False, False]


def test_probe_state_upserts_per_server(registry: Registry) -> None:
    write(registry, [ServerRecord(tenant="t", name="s"), ServerRecord(tenant="u", name="s")])
    first = ProbeStateRecord(tenant="t", server="s", discovery={"requiresAuth": False}, probed_at=T0)
    replaced = ProbeStateRecord(
        tenant="t",
        server="s",
        last_test={"ok": False, "errorClass": "auth"},
        blocked_reason="x",
        tool_risk=("readOnlyHint of wipe: false → true",),
    )
    other = ProbeStateRecord(tenant="u", server="s")
    with registry.transaction() as transaction:
        transaction.put_probe_state(first)
        transaction.put_probe_state(other)
    with registry.transaction() as transaction:
        transaction.put_probe_state(replaced)

    assert registry.fetch_probe_states() == {("t", "s"): replaced, ("u", "s"): other}
    assert registry.fetch_probe_states(tenants=["u"]) == {("u", "s"): other}

    with pytest.raises(MissingReference, match="server 'nope'"), registry.transaction() as transaction:
        transaction.put_probe_state(ProbeStateRecord(tenant="t", server="nope"))


def test_user_tokens_are_listed_and_counted(registry: Registry) -> None:
    write(registry, full_tenant("acme") + full_tenant("beta"))
    expires = T0 + dt.timedelta(days=30)
    with registry.transaction() as transaction:
        first = transaction.insert_user_token(
            UserTokenRecord(tenant="acme", server="crm", user_id="alice", secret_ref="v/a#t", expires_at=expires)
        )
        transaction.insert_user_token(
            UserTokenRecord(
                tenant="acme",
                server="crm",
                user_id="alice",
                secret_ref="v/a2#t",
                connection="crm-alice",
                value_keys=("workspace-slug",),
            )
        )
        transaction.insert_user_token(UserTokenRecord(tenant="beta", server="wiki", user_id="bob", secret_ref="v/b#t"))

    tokens = registry.fetch_user_tokens(tenant="acme", server="crm")

    assert tokens == [
        UserTokenRecord(
            tenant="acme", server="crm", user_id="alice", secret_ref="v/a#t", expires_at=expires, row_id=first
        ),
        UserTokenRecord(
            tenant="acme",
            server="crm",
            user_id="alice",
            secret_ref="v/a2#t",
            connection="crm-alice",
            row_id=tokens[1].row_id,
            value_keys=("workspace-slug",),
        ),
    ]
    assert registry.count_user_tokens() == {("acme", "crm"): 2, ("beta", "wiki"): 1}
    assert registry.count_user_tokens(tenants=["beta"]) == {("beta", "wiki"): 1}
    assert registry.count_connected_members() == {
        ("acme", "crm", None): 1,
        ("acme", "crm", "crm-alice"): 1,
        ("beta", "wiki", None): 1,
    }
    assert registry.count_connected_members(tenants=["acme"]) == {
        ("acme", "crm", None): 1,
        ("acme", "crm", "crm-alice"): 1,
    }


def test_oauth_clients_upsert_per_issuer(registry: Registry) -> None:
    write(registry, [ServerRecord(tenant="t", name="s")])
    client = OAuthClientRecord(
        tenant="t",
        server="s",
        issuer="https://as.example.com",
        client_id="c1",
        client_secret_ref="ns/dcr#secret",
        registration_client_uri="https://as.example.com/reg/c1",
        registration_access_token_ref="ns/dcr#rat",
        token_endpoint_auth_method="client_secret_post",
        expires_at=T0,
    )
    with registry.transaction() as transaction:
        first_id = transaction.put_oauth_client(client)
    with registry.transaction() as transaction:
        second_id = transaction.put_oauth_client(dataclasses.replace(client, client_id="c2"))

    [stored] = registry.fetch_oauth_clients(tenant="t", server="s")
    assert stored == dataclasses.replace(client, client_id="c2")
    assert first_id == second_id == stored.row_id


def test_timestamps_come_back_as_aware_utc(registry: Registry) -> None:
    write(registry, [ServerRecord(tenant="t", name="s")])
    in_another_zone = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=5)))
    with registry.transaction() as transaction:
        transaction.insert_user_token(
            UserTokenRecord(tenant="t", server="s", user_id="u", secret_ref="r", expires_at=in_another_zone)
        )

    [token] = registry.fetch_user_tokens(tenant="t", server="s")
    row = registry.dump()["servers"][0]

    assert token.expires_at == in_another_zone
    assert token.expires_at is not None and token.expires_at.tzinfo == dt.UTC
    assert row["created_at"].tzinfo == dt.UTC
    assert abs(row["created_at"] - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_dump_covers_every_table(registry: Registry) -> None:
    write(registry, full_tenant("acme"))
    server_with_runtime_data(registry, "acme", "crm", connection="crm-platform")
    registry.fingerprint_key()

    dump = registry.dump()

    assert set(dump) == {
        "tenants",
        "servers",
        "connections",
        "access_grants",
        "access_grant_subjects",
        "template_bindings",
        "template_binding_servers",
        "oauth_clients",
        "tool_snapshots",
        "server_probe_state",
        "resources",
        "audit_log",
        "user_tokens",
        "registry_meta",
        "local_secrets",
        "registry_changes",
    }
    assert len(dump["servers"]) == 2 and len(dump["user_tokens"]) == 2
    assert dump["servers"][0]["headers"][1] == {
        "name": "X-Api-Key",
        "value": None,
        "secret_ref": "ns-acme/crm-key#token",
        "fingerprint": "hmac-sha256:0a1b",
    }


# -- connecting ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unreachable",
    [
        pytest.param("sqlite:///{tmp}/no/such/dir/registry.db", id="sqlite"),
        pytest.param("postgresql://postgres:hunter2-secret@127.0.0.1:1/x", id="postgresql"),
    ],
)
def test_an_unreachable_registry_is_retryable_and_masks_the_password(unreachable: str, tmp_path: object) -> None:
    url = unreachable.format(tmp=tmp_path)

    with pytest.raises(RegistryUnavailable) as raised:
        open_registry(url)

    assert isinstance(raised.value, RetryableError)
    assert "hunter2" not in str(raised.value)
    assert "unavailable" in str(raised.value)
    if "postgresql" in url:
        assert "postgresql+psycopg://postgres:***@127.0.0.1:1/x" in str(raised.value)
    assert raised.value.__cause__ is not None


def test_ping_and_identity(registry: Registry, registry_url: str) -> None:
    registry.ping()

    assert registry.dialect == ("sqlite" if registry_url.startswith("sqlite") else "postgresql")
    assert registry.manager == "mcp-reconciler"
    assert registry.url.split("://")[0] in ("sqlite", "postgresql+psycopg")


def test_many_rows_update_in_one_call(registry: Registry) -> None:
    tenants, records = fleet(tenants=2, objects_per_tenant=40)
    with registry.transaction() as transaction:
        transaction.ensure_tenants(tenants)
        transaction.insert(records)
    observed = list(registry.fetch_state().rows.values())
    changed = [dataclasses.replace(record, ownership=owned("X", "ns", record.name)) for record in observed]
    registry.reset_statement_counts()

    with registry.transaction() as transaction:
        transaction.update(changed)

    assert registry.statement_counts["UPDATE"] == 4
    assert {key: record.ownership for key, record in registry.fetch_state().rows.items()} == {
        key_of(record): record.ownership for record in changed
    }


def test_statement_counts_read_the_same_on_every_backend(registry: Registry) -> None:
    registry.reset_statement_counts()

    registry.fetch_state()
    with registry.transaction() as transaction:
        transaction.ensure_tenants([tenant("a")])

    # fetch_state's reads, the existing tenants, the aliases a new tenant would create, and its insert.
    assert registry.statement_counts == {"SELECT": 9, "INSERT": 1}


def test_a_tenant_that_would_alias_another_is_refused_and_nothing_is_written(registry: Registry) -> None:
    """A slug that is another tenant's namespace (or a namespace that is another's slug) would let one tenant's
    name open the other wherever tenants are named by slug or namespace."""
    with registry.transaction() as transaction:
        transaction.ensure_tenants([TenantRecord(slug="acme-corp", namespace="acme"), tenant("beta")])

    for new in (
        [TenantRecord(slug="acme", namespace="intruder")],
        [TenantRecord(slug="gamma", namespace="acme-corp")],
        [TenantRecord(slug="x", namespace="y"), TenantRecord(slug="y", namespace="z")],
        [TenantRecord(slug="beta-corp", namespace="ns-beta")],
    ):
        with pytest.raises(InvalidInput) as refused, registry.transaction() as transaction:
            transaction.ensure_tenants(new)
        assert refused.value.problems[0].kind == "Namespace"
    assert "it is already tenant 'beta'" in str(refused.value), "a relabelled namespace is told why"

    with registry.transaction() as transaction:
        transaction.ensure_tenants([TenantRecord(slug="acme-corp", namespace="acme-eu"), tenant("delta")])
    assert {(t.slug, t.namespace) for t in registry.fetch_state().tenants.values()} == {
        ("acme-corp", "acme"),
        ("beta", "ns-beta"),
        ("delta", "ns-delta"),
    }


def test_every_write_stamps_the_tenants_it_touched_with_the_new_change_stamp(registry: Registry) -> None:
    with registry.transaction() as transaction:
        transaction.ensure_tenants([tenant("a"), tenant("b")])
        transaction.insert(full_tenant("a") + full_tenant("b"))
    after_insert, _ = registry.fetch_applied_marker("nobody")
    assert after_insert is not None
    inserted = registry.fetch_tenant_stamps()
    assert set(inserted) == {"a", "b"} and 0 < inserted["a"] <= inserted["b"] == after_insert
    # A row of one tenant, then only a child row (grant subjects carry no tenant of their own): only "b" moves.
    rows = registry.fetch_state(tenants=["b"]).rows.values()
    server = next(row for row in rows if isinstance(row, ServerRecord))
    grant = next(row for row in rows if isinstance(row, GrantRecord) and len(row.subjects) > 1)
    edits = (
        [dataclasses.replace(server, url="https://moved.example.com/mcp")],
        [dataclasses.replace(grant, subjects=grant.subjects[:1])],
    )
    for edit in edits:
        before, _ = registry.fetch_applied_marker("nobody")
        with registry.transaction() as transaction:
            transaction.update(edit)
        moved, _ = registry.fetch_applied_marker("nobody")
        assert moved is not None and before is not None and moved > before
        assert registry.fetch_tenant_stamps() == {"a": inserted["a"], "b": moved}


def test_a_proposed_fingerprint_key_is_stored_only_on_a_fresh_registry(registry_url: str, registry: Registry) -> None:
    proposed = bytes(range(32))
    assert registry.stored_fingerprint_key() is None
    assert registry.fingerprint_key(proposed=proposed) == proposed
    again = open_registry(registry_url)
    try:
        assert again.fingerprint_key(proposed=bytes(32)) == proposed
        assert again.stored_fingerprint_key() == proposed
    finally:
        again.close()
