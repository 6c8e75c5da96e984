"""The runtime's read path (`Registry.fetch_resolution_inputs`) against SQLite and PostgreSQL (the contract style).

The rows a resolution decides from are read by position and their JSON decoded by hand, with a SQLite-only plan
hint in the grant lookup (`reconciler.registry.lookups`); so every field is pinned here against the records that
were written, through globs, templates, denials, per-member connections and tokens, and the statements a resolve
issues are pinned as constant however many servers, connections and grants the registry holds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from reconciler.records import ORGANIZATION_MEMBER, ToolAnnotationHints, ToolRecord
from reconciler.registry import Registry
from reconciler.registry.lookups import BoundServerRow, GrantMatch, ResolutionInputs
from reconciler.registry.records import (
    BindingRecord,
    BoundServerRecord,
    ConnectionRecord,
    GrantRecord,
    GrantSubjectRecord,
    HeaderRecord,
    MemberHeaderRecord,
    ProbeStateRecord,
    Record,
    ServerRecord,
    TenantRecord,
    ToolSnapshotRecord,
    UserTokenRecord,
)
from reconciler.runtime import resolve

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
APPROVED = "sha256:" + "c" * 64
TENANT = TenantRecord(slug="acme", namespace="ns-acme")

CRM = ServerRecord(
    tenant="acme",
    name="crm",
    display_name="Twenty CRM",
    url="https://crm.example.com/mcp",
    headers=(
        HeaderRecord(name="X-Org", value="acme"),
        HeaderRecord(name="X-Api-Key", secret_ref="ns-acme/crm-key#token", fingerprint="hmac-sha256:0a1b"),
    ),
    auth_type="bearer",
    auth={"secretRef": "ns-acme/crm-auth#token", "scheme": "Bearer", "extra": {"big": 10**20, "f": 1.5}},
    tool_policy="Pin",
    approved_hash=APPROVED,
    tools_allow=("list_*", "get_*", "delete_*"),
    tools_deny=("*_secret", "delete_[a-m]*"),
)
DOCS = ServerRecord(tenant="acme", name="docs", url="https://docs.example.com/mcp", featured=True)
OPS = ServerRecord(tenant="acme", name="ops", url="https://ops.example.com/mcp", tools_deny=("*",))
CRM_SHARED = ConnectionRecord(
    tenant="acme",
    name="crm-shared",
    server="crm",
    secret_ref="ns-acme/crm-conn#token",
    fingerprint="hmac-sha256:77",
    authorization_scheme="Token",
    headers=(HeaderRecord(name="X-Client", value="reads"),),
)
CRM_MEMBERS = ConnectionRecord(
    tenant="acme",
    name="crm-members",
    server="crm",
    credential_mode="perMember",
    member_headers=(MemberHeaderRecord("X-Workspace", "workspace"),),
)
DOCS_BOB = ConnectionRecord(
    tenant="acme",
    name="docs-bob",
    server="docs",
    scope="user",
    subject="bob",
    secret_ref="ns-acme/bob#docs",
    active=False,
)
ORGANIZATION = GrantSubjectRecord("Organization")
SUPPORT = GrantSubjectRecord("Team", "support")
BOB = GrantSubjectRecord("Member", "bob")
SALES = GrantSubjectRecord("Team", "sales")
ALICE = GrantSubjectRecord("Member", "alice")
GRANTS = (
    GrantRecord(tenant="acme", name="everyone-docs", target_server="docs", subjects=(ORGANIZATION,)),
    GrantRecord(tenant="acme", name="bob-crm", target_connection="crm-shared", subjects=(BOB,)),
    GrantRecord(tenant="acme", name="teams-ops", target_server="ops", subjects=(SALES, SUPPORT)),
    GrantRecord(tenant="acme", name="alice-crm", target_server="crm", subjects=(ALICE,)),
)
ASSISTANT = BindingRecord(
    tenant="acme",
    name="assistant",
    template="assistant",
    agents=("writer",),
    servers=(
        BoundServerRecord("crm", connection="crm-shared", tools_allow=("list_*", "get_*"), tools_read_only=True),
        BoundServerRecord("docs", tools_deny=("delete_*",)),
    ),
)
OTHER = [  # another tenant with the same names: none of its rows may reach acme's resolution
    ServerRecord(tenant="other", name="crm", url="https://crm.other.example.com/mcp"),
    GrantRecord(tenant="other", name="bob-crm", target_server="crm", subjects=(BOB, ORGANIZATION)),
]
CRM_TOOLS = (
    ToolRecord(name="list_deals", annotations=ToolAnnotationHints(read_only_hint=True)),
    ToolRecord(name="get_deal", annotations=ToolAnnotationHints(read_only_hint=False)),
    ToolRecord(name="get_secret"),
    ToolRecord(name="delete_deal"),
    ToolRecord(name="delete_old"),
    ToolRecord(name="update_deal"),
)
TOKENS = (
    UserTokenRecord(tenant="acme", server="crm", user_id="bob", secret_ref="local:acme/bob#access",
                    connection="crm-members", expires_at=T0, value_keys=("workspace",), scopes=("a", "b"),
                    refresh_token_ref="local:acme/bob#refresh", issued_at=T0 - dt.timedelta(hours=1),
                    client_id="client", issuer="https://as.example.com"),
    UserTokenRecord(tenant="acme", server="crm", user_id=ORGANIZATION_MEMBER, secret_ref="local:acme/org#access",
                    connection="crm-members"),
    UserTokenRecord(tenant="acme", server="crm", user_id="carol", secret_ref="local:acme/carol#access",
                    connection="crm-members"),
)  # fmt: skip


@pytest.fixture
def acme(registry: Registry) -> Registry:
    write_acme(registry)
    return registry


def write_acme(registry: Registry) -> None:
    records: list[Record] = [CRM, DOCS, OPS, CRM_SHARED, CRM_MEMBERS, DOCS_BOB, *GRANTS, ASSISTANT, *OTHER]
    with registry.transaction() as tx:
        tx.ensure_tenants([TENANT, TenantRecord(slug="other", namespace="ns-other")])
        tx.insert(records)
        tx.put_tool_snapshot(
            ToolSnapshotRecord(tenant="acme", server="crm", hash=APPROVED, tools=CRM_TOOLS, taken_at=T0)
        )
        tx.put_probe_state(ProbeStateRecord(tenant="acme", server="crm", tool_risk=("delete_deal became destructive",)))
        tx.put_probe_state(ProbeStateRecord(tenant="acme", server="ops", blocked_reason="quarantined"))
        for token in TOKENS:
            tx.insert_user_token(token)


def without_row_ids(inputs: ResolutionInputs | None) -> ResolutionInputs:
    """Records compare without their row ids already; tokens are plain records and carry theirs."""
    assert inputs is not None
    return dataclasses.replace(inputs, tokens=tuple(dataclasses.replace(token, row_id=None) for token in inputs.tokens))


def test_template_rows_are_read_field_for_field(acme: Registry) -> None:
    inputs = acme.fetch_resolution_inputs("ns-acme", template="assistant", user="bob", teams=["support", "support"])

    assert without_row_ids(inputs) == ResolutionInputs(
        tenant=TENANT,
        bound=(
            BoundServerRow(
                server=CRM,
                binding="assistant",
                binding_agents=("writer",),
                pinned_connection="crm-shared",
                pinned_connection_server="crm",
                tools_allow=("list_*", "get_*"),
                tools_read_only=True,
                snapshot_hash=APPROVED,
                tool_names=tuple(tool.name for tool in CRM_TOOLS),
                read_only_tools=frozenset({"list_deals"}),
                tool_risk=("delete_deal became destructive",),
            ),
            BoundServerRow(server=DOCS, binding="assistant", binding_agents=("writer",), tools_deny=("delete_*",)),
        ),
        connections=(CRM_SHARED, CRM_MEMBERS, DOCS_BOB),
        grants=(
            GrantMatch(grant="bob-crm", subject=BOB, target_connection="crm-shared"),
            GrantMatch(grant="everyone-docs", subject=ORGANIZATION, target_server="docs"),
        ),
        tokens=TOKENS[:2],
        bindings=("assistant",),
    )
    crm = inputs.bound[0].server if inputs is not None else None
    assert crm is not None and crm.auth["extra"]["big"] == 10**20, "integers beyond 64 bits are read exactly"


def test_whole_tenant_rows_name_the_caller_only(acme: Registry) -> None:
    inputs = acme.fetch_resolution_inputs("acme", template=None, user=None, teams=["support"])

    assert without_row_ids(inputs) == ResolutionInputs(
        tenant=TENANT,
        bound=(
            BoundServerRow(
                server=CRM,
                snapshot_hash=APPROVED,
                tool_names=tuple(tool.name for tool in CRM_TOOLS),
                read_only_tools=frozenset({"list_deals"}),
                tool_risk=("delete_deal became destructive",),
            ),
            BoundServerRow(server=DOCS),
            BoundServerRow(server=OPS, blocked_reason="quarantined"),
        ),
        connections=(CRM_SHARED, CRM_MEMBERS, DOCS_BOB),
        grants=(
            GrantMatch(grant="everyone-docs", subject=ORGANIZATION, target_server="docs"),
            GrantMatch(grant="teams-ops", subject=SUPPORT, target_server="ops"),
        ),
        tokens=TOKENS[1:2],
    )


def states(registry: Registry, **call: object) -> dict[str, tuple[str, tuple[str, ...]]]:
    resolution = resolve(registry, "ns-acme", explain=True, **call)  # type: ignore[arg-type]
    return {server.name: (str(server.state), server.tools) for server in resolution.servers}


def test_resolutions_apply_globs_templates_and_denials(acme: Registry) -> None:
    # crm: the binding admits read-only tools only, and the probe's standing tool risk voids the hints: no tools.
    assert states(acme, template="assistant", agent="writer", user="bob") == {
        "crm": ("ready", ()),
        "docs": ("ready", ()),
    }
    assert states(acme, template="assistant", agent="reader", user="bob") == {}, "the binding names other agents"
    assert states(acme, user="carol", teams=["support"]) == {
        "crm": ("forbidden", ()),
        "docs": ("ready", ()),
        "ops": ("blocked", ()),
    }
    # Without a template, the server's globs alone: allow list_*, get_*, delete_*; deny *_secret, delete_[a-m]*.
    assert states(acme, user="bob") == {
        "crm": ("ready", ("list_deals", "get_deal", "delete_old")),
        "docs": ("ready", ()),
        "ops": ("forbidden", ()),
    }


def test_statements_per_resolve_stay_constant_as_the_registry_grows(acme: Registry) -> None:
    def counted() -> list[dict[str, int]]:
        counts = []
        for template in ("assistant", None):
            for user, teams in (("bob", ["support", "sales"]), (None, [])):
                acme.reset_statement_counts()
                acme.fetch_resolution_inputs("ns-acme", template=template, user=user, teams=teams)
                counts.append(dict(acme.statement_counts))
        return counts

    before = counted()
    answers = [states(acme, template="assistant", agent="writer", user="bob"), states(acme, user="bob")]
    more: list[Record] = []
    for index in range(60):
        server = f"extra-{index:02d}"
        more.append(ServerRecord(tenant="acme", name=server, url=f"https://{server}.example.com/mcp"))
        more.append(ConnectionRecord(tenant="acme", name=f"{server}-shared", server=server, secret_ref="ns-acme/x#y"))
        more += [
            GrantRecord(tenant="acme", name=f"{server}-{kind}", target_server=server, subjects=(subject,))
            for kind, subject in (("org", ORGANIZATION), ("bob", BOB), ("support", SUPPORT))
        ]
        more.append(GrantRecord(tenant="acme", name=f"{server}-conn", target_connection=f"{server}-shared",
                                subjects=(BOB, SUPPORT)))  # fmt: skip
    more.append(
        BindingRecord(tenant="acme", name="wide", template="assistant", servers=tuple(
            BoundServerRecord(f"extra-{index:02d}") for index in range(0, 60, 2)))
    )  # fmt: skip
    with acme.transaction() as tx:
        tx.insert(more)

    assert counted() == before == [{"SELECT": 5}] * 4
    grown = acme.fetch_resolution_inputs("ns-acme", template="assistant", user="bob", teams=["support"])
    assert grown is not None and len(grown.bound) == 32 and len(grown.grants) == 2 + 30 * 3 + 30 * 2
    assert states(acme, template="assistant", agent="writer", user="bob")["crm"] == answers[0]["crm"]
    assert {name: states(acme, user="bob")[name] for name in answers[1]} == answers[1]
