"""The operator's narrowed read (`fetch_state(only=...)`) against the full read of the same tenants: over a varied
state (app-owned and hand-made servers sharing URLs, another manager's rows, client-assertion keys published in two
tenants, connections, grants and bindings naming rows outside the selection), planning any input that prunes
nothing from the narrowed read gives exactly the plan it gives from the full read."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from reconciler.engine.planning import PlanOptions, plan_changes, rows_consulted
from reconciler.registry import Registry
from reconciler.registry.reading import MAX_SELECTED_KEYS
from reconciler.registry.records import (
    DEFAULT_MANAGER,
    BindingRecord,
    BoundServerRecord,
    ConnectionRecord,
    GrantRecord,
    GrantSubjectRecord,
    Ownership,
    ProbeStateRecord,
    Record,
    RowKey,
    RowSelection,
    ServerRecord,
    SourceRef,
    key_of,
)
from tests.integration.registry.samples import full_tenant, owned, tenant

CRM_URL = "https://crm.example.com/mcp"
TICKETS_URL = "https://tickets.example.com/mcp"


def signer(slug: str, name: str, *, kid: str, key: str, managed: bool = True) -> ServerRecord:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": key, "kid": kid}
    return ServerRecord(
        tenant=slug,
        name=name,
        ownership=owned("MCPServer", f"ns-{slug}", name) if managed else Ownership(),
        url=f"https://{name}.example.com/mcp",
        auth_type="oauthClientCredentials",
        auth={
            "tokenUrl": "https://as.example.com/token",
            "clientAssertion": {"keyId": kid},
            "clientAssertionPublicKey": jwk,
        },
    )


def app_server(slug: str, name: str, url: str, *, manager: str = DEFAULT_MANAGER) -> ServerRecord:
    ownership = dataclasses.replace(owned("MCPServer", f"ns-{slug}", name), manager=manager)
    return ServerRecord(tenant=slug, name=name, ownership=ownership, url=url, owner_kind="App", owner_name="tix")


def stored_state() -> list[Record]:
    acme = [
        *full_tenant("acme"),  # crm is app-owned at CRM_URL, wiki hand-made
        ServerRecord(tenant="acme", name="crm-copy", url=CRM_URL),  # a hand-made duplicate of an app-owned server
        app_server("acme", "tickets", TICKETS_URL, manager="someone-else"),
        signer("acme", "signer-a", kid="k1", key="A"),
        signer("acme", "signer-hand", kid="k2", key="B", managed=False),
        *(
            ServerRecord(tenant="acme", name=f"filler-{index}", url=f"https://f{index}.example.com/mcp")
            for index in range(12)
        ),
    ]
    beta = [
        *full_tenant("beta"),
        signer("beta", "signer-a", kid="k1", key="C"),
        app_server("beta", "tickets", TICKETS_URL),
    ]
    return acme + beta


def changed(record: Record, **fields: Any) -> Record:
    return dataclasses.replace(record, row_id=None, **fields)


def by_name(records: Sequence[Record], slug: str, name: str, kind: type[Record] = ServerRecord) -> Record:
    return next(r for r in records if isinstance(r, kind) and r.tenant == slug and r.name == name)


def inputs() -> dict[str, list[Record]]:
    """Inputs of operator passes: rows unchanged, changed, new, and each refusal and warning planning can raise."""
    rows = stored_state()
    crm = by_name(rows, "acme", "crm")
    wiki = by_name(rows, "acme", "wiki")
    platform = by_name(rows, "acme", "crm-platform", ConnectionRecord)
    return {
        "unchanged": [changed(crm), changed(platform)],
        "changed": [changed(crm, description="new"), changed(wiki, display_name="Wiki")],
        "a second app-owned server at the URL": [app_server("acme", "crm-two", CRM_URL)],
        "another manager's app at the URL": [app_server("acme", "tix", TICKETS_URL)],
        "a hand-made duplicate warned of": [changed(crm, owner_name="renamed")],
        "a keyId naming another key": [signer("acme", "signer-b", kid="k1", key="D")],
        "a keyId a hand-made row publishes": [signer("acme", "signer-c", kid="k2", key="E")],
        "the very key another row publishes": [signer("acme", "signer-d", kid="k2", key="B")],
        "the incumbent keeps its key": [changed(by_name(rows, "acme", "signer-a"), description="kept")],
        "references to rows not in the input": [
            ConnectionRecord(
                tenant="acme", name="new-conn", ownership=owned("MCPConnection", "ns-acme", "new-conn"), server="wiki"
            ),
            GrantRecord(
                tenant="acme",
                name="crm-sales",
                ownership=owned("MCPAccessGrant", "ns-acme", "crm-sales"),
                target_connection="crm-platform",
                subjects=(GrantSubjectRecord(kind="team", name="sales"),),
            ),
            BindingRecord(
                tenant="acme",
                name="support-agent",
                ownership=owned("MCPTemplateBinding", "ns-acme", "support-agent"),
                template="support",
                servers=(BoundServerRecord(server="wiki"), BoundServerRecord(server="crm", connection="crm-platform")),
            ),
        ],
        "two tenants at once": [
            signer("acme", "signer-e", kid="k1", key="C"),
            signer("beta", "signer-e", kid="k1", key="C"),
            app_server("beta", "tix", TICKETS_URL),
            changed(by_name(rows, "beta", "crm"), description="beta"),
        ],
        "a new tenant": [
            ServerRecord(tenant="gamma", name="crm", url=CRM_URL, ownership=owned("MCPServer", "ns-gamma", "crm"))
        ],
    }


@pytest.mark.parametrize("case", list(inputs()))
def test_a_narrowed_read_plans_exactly_as_the_full_read_of_its_tenants(registry: Registry, case: str) -> None:
    stored = stored_state()
    with registry.transaction() as transaction:
        transaction.ensure_tenants({tenant(record.tenant) for record in stored})
        transaction.insert(stored)
    records = inputs()[case]
    desired = [(record, _source(record)) for record in records]
    options = PlanOptions(manager=DEFAULT_MANAGER, prune=False)
    selection = rows_consulted(records)

    full = registry.fetch_state(tenants={record.tenant for record in records})
    narrowed = registry.fetch_state(only=selection)

    assert plan_changes(desired, narrowed, options=options) == plan_changes(desired, full, options=options)
    assert narrowed.rows.items() <= full.rows.items(), "every row read is read whole and unchanged"
    assert len(narrowed.rows) < max(len(full.rows), 1) or not full.rows, "the narrowed read reads less"
    for key in selection.keys:  # the report step's reads of the bound servers, and every row of the input
        assert narrowed.get(key) == full.get(key)


def test_rows_named_by_rows_read_keep_their_names(registry: Registry) -> None:
    """A connection, grant or binding read without the rows it names still names them (a second query by id)."""
    stored = full_tenant("acme")
    with registry.transaction() as transaction:
        transaction.ensure_tenants([tenant("acme")])
        transaction.insert(stored)
    keys: list[RowKey] = [
        ("connections", "acme", "crm-platform"),
        ("grants", "acme", "crm-sales"),
        ("bindings", "acme", "support-agent"),
    ]
    narrowed = registry.fetch_state(only=RowSelection(keys=frozenset(keys)))

    assert set(narrowed.rows) == set(keys)
    for key in keys:
        assert narrowed.rows[key] == next(record for record in stored if key_of(record) == key)


def test_a_narrowed_read_queries_only_the_tables_it_selects_from(registry: Registry) -> None:
    """A pass over servers alone reads the tenants and the servers: two statements, not one per table (and one more
    for the name of a discovery connection it names)."""
    stored = full_tenant("acme")
    with registry.transaction() as transaction:
        transaction.ensure_tenants([tenant("acme")])
        transaction.insert(stored)
    for name, statements in (("wiki", 2), ("crm", 3)):
        server = next(record for record in stored if key_of(record) == ("servers", "acme", name))
        registry.reset_statement_counts()

        narrowed = registry.fetch_state(only=rows_consulted([server]))

        assert narrowed.get(key_of(server)) == server
        assert dict(registry.statement_counts) == {"SELECT": statements}, name


def test_a_narrowed_probe_state_read_gives_the_states_of_the_servers_asked_for_as_the_full_read_does(
    registry: Registry,
) -> None:
    """A pass over a few objects reads the probe states of the servers it read, not of their whole tenants."""
    stored = [*full_tenant("acme"), *full_tenant("globex")]
    with registry.transaction() as transaction:
        transaction.ensure_tenants([tenant("acme"), tenant("globex")])
        transaction.insert(stored)
        for slug in ("acme", "globex"):
            for server in ("crm", "wiki"):
                transaction.put_probe_state(
                    ProbeStateRecord(tenant=slug, server=server, last_test={"ok": server == "crm", "of": slug})
                )
    full = registry.fetch_probe_states(tenants=["acme", "globex"])
    assert len(full) == 4

    asked = {("acme", "crm"), ("globex", "wiki"), ("acme", "absent")}
    narrowed = registry.fetch_probe_states(tenants=["acme", "globex"], servers=asked)
    assert narrowed == {key: full[key] for key in asked if key in full}, "the same name in another tenant stays out"
    assert registry.fetch_probe_states(tenants=["acme"], servers={("globex", "wiki")}) == {}, "tenants still bound"
    assert registry.fetch_probe_states(tenants=["acme"], servers=set()) == {}
    many = {("acme", f"s{index}") for index in range(MAX_SELECTED_KEYS)} | {("acme", "crm")}
    assert registry.fetch_probe_states(tenants=["acme"], servers=many) == {
        key: state for key, state in full.items() if key[0] == "acme"
    }, "past the bound a read takes the tenants whole (one statement's parameters stay small)"


def _source(record: Record) -> SourceRef:
    kind = {ServerRecord: "MCPServer", ConnectionRecord: "MCPConnection", GrantRecord: "MCPAccessGrant"}.get(
        type(record), "MCPTemplateBinding"
    )
    return record.ownership.source or SourceRef(kind, f"ns-{record.tenant}", record.name)
