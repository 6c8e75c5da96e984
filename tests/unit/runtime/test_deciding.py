"""The resolution decision, table-driven: (server, connections, grants, tokens, pin state, caller) → state,
credential scope, connection and credential header. Pure: no registry, no secrets."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

import pytest

from reconciler.registry.lookups import BoundServerRow, GrantMatch, ResolutionInputs
from reconciler.registry.records import (
    ConnectionRecord,
    GrantSubjectRecord,
    HeaderRecord,
    MemberHeaderRecord,
    ServerRecord,
    TenantRecord,
    UserTokenRecord,
)
from reconciler.runtime.deciding import Caller, ServerDecision, decide
from reconciler.runtime.resolution import CredentialScope, ServerState, ToolNamespace

TENANT = TenantRecord(slug="acme", namespace="acme-ns")
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
"""When every decision here is made: tokens expiring later are valid, earlier ones expired."""
APPROVED = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
ALICE = Caller(user="alice", teams=("support",))
ALICE_AS_TUTOR = Caller(agent="tutor", user="alice", teams=("support",))
R, N, B, F = ServerState.READY, ServerState.NEEDS_CONNECTION, ServerState.BLOCKED, ServerState.FORBIDDEN
USER, AGENT, PLATFORM = CredentialScope.USER, CredentialScope.AGENT, CredentialScope.PLATFORM
FEATURED, SERVER = CredentialScope.FEATURED, CredentialScope.SERVER


def server(name: str = "crm", **fields: object) -> ServerRecord:
    return ServerRecord(tenant="acme", name=name, url=f"https://{name}.example/mcp", row_id=1, **fields)  # type: ignore[arg-type]


def bearer_server(**fields: object) -> ServerRecord:
    return server(auth_type="bearer", auth={"secretRef": "acme-ns/crm#token", "scheme": "Token"}, **fields)


_row_ids = iter(range(100, 100_000))


def conn(
    name: str,
    scope: str = "platform",
    subject: str | None = None,
    *,
    mode: str = "shared",
    active: bool = True,
    scheme: str | None = None,
    secret: bool = True,
    for_server: str = "crm",
    row_id: int | None = None,
    headers: tuple[HeaderRecord, ...] = (),
) -> ConnectionRecord:
    return ConnectionRecord(
        tenant="acme",
        name=name,
        server=for_server,
        scope=scope,
        subject=subject,
        credential_mode=mode,
        secret_ref=f"acme-ns/{name}#token" if secret and mode == "shared" else None,
        authorization_scheme=scheme,
        active=active,
        headers=headers,
        row_id=row_id if row_id is not None else next(_row_ids),
    )


def org(*, on_server: str | None = "crm", on_connection: str | None = None, grant: str = "g-org") -> GrantMatch:
    target_server = None if on_connection else on_server
    return GrantMatch(grant, GrantSubjectRecord("Organization"), target_server, on_connection)


def member(name: str = "alice", *, on_connection: str | None = None) -> GrantMatch:
    return GrantMatch("g-member", GrantSubjectRecord("Member", name), None if on_connection else "crm", on_connection)


def team(name: str = "support") -> GrantMatch:
    return GrantMatch("g-team", GrantSubjectRecord("Team", name), "crm", None)


def token(connection: str | None = None, *, user: str = "alice", server_name: str = "crm") -> UserTokenRecord:
    return UserTokenRecord(
        tenant="acme", server=server_name, user_id=user, secret_ref=f"acme-ns/{user}-token#t", connection=connection
    )


@dataclass(frozen=True)
class Case:
    server: ServerRecord = field(default_factory=server)
    connections: tuple[ConnectionRecord, ...] = ()
    grants: tuple[GrantMatch, ...] = (org(),)
    tokens: tuple[UserTokenRecord, ...] = ()
    caller: Caller = ALICE
    pinned: str | None = None
    snapshot: str | None = APPROVED
    blocked_reason: str | None = None
    read_only: bool = False
    """The binding admits read-only tools only; of the tools `read` and `write`, `read` says it is read-only."""
    tool_risk: tuple[str, ...] = ()
    # expected
    state: ServerState = R
    tools: tuple[str, ...] | None = None
    """The tools the decision carries, when the case is about them."""
    scope: CredentialScope | None = None
    connection: str | None = None
    credential: str | None = None
    """`<header name>=<secret ref>` of the credential header, or None for no credential header."""


def decide_one(case: Case) -> ServerDecision:
    row = BoundServerRow(
        server=case.server,
        binding="b",
        pinned_connection=case.pinned,
        pinned_connection_server=next(
            (c.server for c in case.connections if c.name == case.pinned), "elsewhere" if case.pinned else None
        ),
        snapshot_hash=case.snapshot,
        tool_names=("read", "write"),
        read_only_tools=frozenset({"read"}),
        tools_read_only=case.read_only,
        tool_risk=case.tool_risk,
        blocked_reason=case.blocked_reason,
    )
    inputs = ResolutionInputs(
        tenant=TENANT,
        bound=(row,),
        connections=case.connections,
        grants=case.grants,
        tokens=case.tokens,
        bindings=("b",),
    )
    decisions = decide(inputs, caller=case.caller, template="t", namespace_tools=False, now=NOW)
    assert len(decisions.servers) == 1
    return decisions.servers[0]


def credential_of(decision: ServerDecision) -> str | None:
    """The credential header as `<name>=<secret ref>` (the cases use only these two credential header names)."""
    found = [h for h in decision.headers if h.name in ("Authorization", "X-Key")]
    return None if not found else f"{found[-1].name}={found[-1].secret_ref}"


PINNED = server(tool_policy="Pin", approved_hash=APPROVED)
PLATFORM_SHARED = conn("platform-shared", row_id=10)
ALICE_OWN = conn("alice-own", "user", "alice", row_id=20)
TUTOR = conn("tutor", "agent", "tutor", row_id=30)

CASES = {
    # grants: explicit only, to the member, a team, the organization, a server or a connection
    "grant/none": Case(grants=(), connections=(PLATFORM_SHARED,), state=F),
    "grant/member": Case(
        grants=(member(),),
        connections=(PLATFORM_SHARED,),
        scope=PLATFORM,
        connection="platform-shared",
        credential="Authorization=acme-ns/platform-shared#token",
    ),
    "grant/team": Case(
        grants=(team(),),
        connections=(PLATFORM_SHARED,),
        scope=PLATFORM,
        connection="platform-shared",
        credential="Authorization=acme-ns/platform-shared#token",
    ),
    "grant/organization": Case(
        connections=(PLATFORM_SHARED,),
        scope=PLATFORM,
        connection="platform-shared",
        credential="Authorization=acme-ns/platform-shared#token",
    ),
    "grant/on-connection-restricts-to-it": Case(
        grants=(org(on_connection="platform-shared"),),
        connections=(PLATFORM_SHARED, ALICE_OWN),
        scope=PLATFORM,
        connection="platform-shared",
        credential="Authorization=acme-ns/platform-shared#token",
    ),
    "grant/on-inactive-connection-only": Case(
        grants=(org(on_connection="old"),), connections=(conn("old", active=False),), state=N
    ),
    "grant/on-connection-no-server-fallback": Case(
        server=bearer_server(featured=True),
        grants=(org(on_connection="old"),),
        connections=(conn("old", active=False),),
        state=N,
    ),
    "grant/pinned-but-granted-elsewhere": Case(
        grants=(org(on_connection="alice-own"),),
        connections=(PLATFORM_SHARED, ALICE_OWN),
        pinned="platform-shared",
        state=F,
    ),
    "grant/pinned-and-granted-on-it": Case(
        grants=(org(on_connection="platform-shared"),),
        connections=(PLATFORM_SHARED,),
        pinned="platform-shared",
        scope=PLATFORM,
        connection="platform-shared",
        credential="Authorization=acme-ns/platform-shared#token",
    ),
    # scopes: user > agent > platform, inactive skipped, newest user connection first
    "scope/user-beats-agent-and-platform": Case(
        connections=(PLATFORM_SHARED, ALICE_OWN, TUTOR),
        caller=ALICE_AS_TUTOR,
        scope=USER,
        connection="alice-own",
        credential="Authorization=acme-ns/alice-own#token",
    ),
    "scope/newest-user-connection": Case(
        connections=(ALICE_OWN, conn("alice-newer", "user", "alice", row_id=21)),
        scope=USER,
        connection="alice-newer",
        credential="Authorization=acme-ns/alice-newer#token",
    ),
    "scope/agent-when-no-user-connection": Case(
        connections=(PLATFORM_SHARED, conn("bob-own", "user", "bob"), TUTOR),
        caller=ALICE_AS_TUTOR,
        scope=AGENT,
        connection="tutor",
        credential="Authorization=acme-ns/tutor#token",
    ),
    "scope/platform-when-agent-differs": Case(
        connections=(PLATFORM_SHARED, conn("other-agent", "agent", "grader")),
        caller=ALICE_AS_TUTOR,
        scope=PLATFORM,
        connection="platform-shared",
        credential="Authorization=acme-ns/platform-shared#token",
    ),
    "scope/inactive-user-connection-skipped": Case(
        connections=(PLATFORM_SHARED, conn("alice-off", "user", "alice", active=False)),
        scope=PLATFORM,
        connection="platform-shared",
        credential="Authorization=acme-ns/platform-shared#token",
    ),
    "scope/no-member-no-user-connection": Case(
        connections=(PLATFORM_SHARED, ALICE_OWN),
        caller=Caller(agent="tutor"),
        scope=PLATFORM,
        connection="platform-shared",
        credential="Authorization=acme-ns/platform-shared#token",
    ),
    "scope/member-own-server-token": Case(
        connections=(PLATFORM_SHARED,),
        tokens=(token(),),
        scope=USER,
        connection=None,
        credential="Authorization=acme-ns/alice-token#t",
    ),
    "scope/only-someone-elses-connection": Case(connections=(conn("bob-own", "user", "bob"),), state=N),
    # credential modes: shared, perMember with and without the member's token
    "mode/per-member-with-token": Case(
        connections=(conn("members", mode="perMember"),),
        tokens=(token("members"),),
        scope=PLATFORM,
        connection="members",
        credential="Authorization=acme-ns/alice-token#t",
    ),
    "mode/per-member-without-token": Case(
        connections=(conn("members", mode="perMember"),),
        tokens=(token("members", user="bob"),),
        state=N,
        scope=PLATFORM,
        connection="members",
    ),
    "mode/per-member-without-member": Case(
        connections=(conn("members", mode="perMember"),),
        caller=Caller(agent="tutor"),
        state=N,
        scope=PLATFORM,
        connection="members",
    ),
    "mode/usable-shared-before-unconnected-per-member": Case(
        connections=(PLATFORM_SHARED, conn("members", mode="perMember", row_id=11)),
        scope=PLATFORM,
        connection="platform-shared",
        credential="Authorization=acme-ns/platform-shared#token",
    ),
    "mode/newest-usable-platform": Case(
        connections=(PLATFORM_SHARED, conn("members", mode="perMember", row_id=11)),
        tokens=(token("members"),),
        scope=PLATFORM,
        connection="members",
        credential="Authorization=acme-ns/alice-token#t",
    ),
    "mode/shared-without-secret-sends-no-credential": Case(
        connections=(conn("headers-only", secret=False),), scope=PLATFORM, connection="headers-only"
    ),
    # pin states: Pin needs the latest snapshot to be the approved one; a blocked probe state always blocks
    "pin/track": Case(snapshot=OTHER, server=server(featured=True), scope=FEATURED),
    "pin/approved": Case(server=server(tool_policy="Pin", approved_hash=APPROVED, featured=True), scope=FEATURED),
    "pin/unapproved": Case(server=server(tool_policy="Pin", approved_hash=APPROVED), snapshot=OTHER, state=B),
    "pin/no-snapshot": Case(server=server(tool_policy="Pin", approved_hash=APPROVED), snapshot=None, state=B),
    "pin/no-approved-hash": Case(server=server(tool_policy="Pin"), state=B),
    "pin/blocked-probe-state": Case(blocked_reason="tool snapshot not approved", state=B),
    "pin/forbidden-wins-over-blocked": Case(
        server=server(tool_policy="Pin", approved_hash=APPROVED), snapshot=OTHER, grants=(), state=F
    ),
    # the server's own credential: a featured server's fallback, or a server without connections
    "fallback/featured-bearer": Case(
        server=bearer_server(featured=True), scope=FEATURED, credential="Authorization=acme-ns/crm#token"
    ),
    "fallback/featured-after-inapplicable-connections": Case(
        server=bearer_server(featured=True),
        connections=(conn("grader", "agent", "grader"),),
        caller=ALICE_AS_TUTOR,
        scope=FEATURED,
        credential="Authorization=acme-ns/crm#token",
    ),
    "fallback/server-without-connections": Case(
        server=bearer_server(), scope=SERVER, credential="Authorization=acme-ns/crm#token"
    ),
    "fallback/not-featured-with-inapplicable-connections": Case(
        server=bearer_server(), connections=(conn("grader", "agent", "grader"),), caller=ALICE_AS_TUTOR, state=N
    ),
    "fallback/not-featured-with-inactive-connection": Case(
        server=bearer_server(), connections=(conn("old", active=False),), state=N
    ),
    "fallback/featured-api-key": Case(
        server=server(featured=True, auth_type="apiKey", auth={"secretRef": "acme-ns/key#k", "headerName": "X-Key"}),
        scope=FEATURED,
        credential="X-Key=acme-ns/key#k",
    ),
    "fallback/featured-without-auth": Case(server=server(featured=True), scope=FEATURED),
    "fallback/authorization-code-without-token": Case(
        server=server(auth_type="oauthAuthorizationCode"), state=N, scope=USER
    ),
    "fallback/authorization-code-with-token": Case(
        server=server(auth_type="oauthAuthorizationCode"),
        tokens=(token(),),
        scope=USER,
        credential="Authorization=acme-ns/alice-token#t",
    ),
    # OpenWork's organization-level connection: for a member without their own token; the member's own wins
    "fallback/authorization-code-organization-token": Case(
        server=server(auth_type="oauthAuthorizationCode"),
        tokens=(token(user="@organization"),),
        scope=PLATFORM,
        credential="Authorization=acme-ns/@organization-token#t",
    ),
    "fallback/authorization-code-own-token-before-the-organizations": Case(
        server=server(auth_type="oauthAuthorizationCode"),
        tokens=(token(user="@organization"), token()),
        scope=USER,
        credential="Authorization=acme-ns/alice-token#t",
    ),
    "fallback/authorization-code-expired-organization-token": Case(
        server=server(auth_type="oauthAuthorizationCode"),
        tokens=(dataclasses.replace(token(user="@organization"), expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)),),
        state=ServerState.NEEDS_REAUTHORIZATION,
    ),
    # the token the reconciler minted, by its sealed reference (resolving checks it exists and has not expired)
    "fallback/client-credentials-minted-token": Case(
        server=server(auth_type="oauthClientCredentials"),
        scope=SERVER,
        credential="Authorization=local:acme/crm#oauth-access-token",
    ),
    # a binding's pinned connection wins, but is never stretched to someone it is not for
    "pinned/wins-over-user-connection": Case(
        connections=(PLATFORM_SHARED, ALICE_OWN),
        pinned="platform-shared",
        scope=PLATFORM,
        connection="platform-shared",
        credential="Authorization=acme-ns/platform-shared#token",
    ),
    "pinned/inactive": Case(connections=(conn("old", active=False), PLATFORM_SHARED), pinned="old", state=B),
    "pinned/another-members-connection": Case(connections=(conn("bob-own", "user", "bob"),), pinned="bob-own", state=B),
    "pinned/the-agents-connection": Case(
        connections=(TUTOR,),
        pinned="tutor",
        caller=ALICE_AS_TUTOR,
        scope=AGENT,
        connection="tutor",
        credential="Authorization=acme-ns/tutor#token",
    ),
    "pinned/per-member-without-token": Case(
        connections=(conn("members", mode="perMember"),),
        pinned="members",
        state=N,
        scope=PLATFORM,
        connection="members",
    ),
    "pinned/another-servers-connection": Case(connections=(), pinned="elsewhere-conn", state=B),
    # tools.readOnly: honoured for a pinned, approved server; from any other server no tool, and still ready
    "read-only/pinned-and-approved": Case(server=PINNED, read_only=True, scope=SERVER, tools=("read",)),
    "read-only/tracked-server-admits-none": Case(read_only=True, scope=SERVER, tools=()),
    "read-only/standing-risk-change-admits-none": Case(
        server=PINNED, read_only=True, tool_risk=("readOnlyHint of write: false → true",), scope=SERVER, tools=()
    ),
    "read-only/pinned-not-approved-is-blocked-anyway": Case(
        server=PINNED, read_only=True, snapshot=OTHER, state=B, tools=()
    ),
    "read-only/never-probed": Case(server=PINNED, read_only=True, snapshot=None, state=B, tools=()),
    "read-only/off-a-tracked-server-keeps-every-tool": Case(scope=SERVER, tools=("read", "write")),
    "read-only/a-standing-risk-change-alone-blocks-nothing": Case(
        tool_risk=("x renamed to y with an identical description and input schema",),
        scope=SERVER,
        tools=("read", "write"),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decision_matrix(case: Case) -> None:
    decision = decide_one(case)

    assert decision.state is case.state, decision.explain
    if case.state is R or case.state is N:
        assert decision.scope == case.scope, decision.explain
        assert decision.connection == case.connection, decision.explain
    if case.state is R:
        assert credential_of(decision) == case.credential, decision.headers
    else:
        assert decision.headers == ()
        assert decision.reason and decision.action
    assert decision.explain[-1] == f"state: {case.state}"
    if case.tools is not None:
        assert decision.tools == case.tools, decision.explain


def test_needs_connection_says_what_the_member_must_do() -> None:
    decision = decide_one(Case(connections=(conn("members", mode="perMember"),), state=N))

    assert decision.reason == "member alice has not connected their own account to crm through connection members"
    assert decision.action is not None and "connect your crm account" in decision.action
    assert decision.tools == ("read", "write"), "the member sees what connecting would give them"


def test_forbidden_names_everyone_a_grant_could_have_named() -> None:
    decision = decide_one(Case(grants=(), state=F))

    assert decision.reason == "no grant names member alice, team support or the organization"
    assert decision.tools == ()


def test_explanation_is_the_chain_binding_grant_connection_state() -> None:
    decision = decide_one(
        Case(connections=(PLATFORM_SHARED, conn("alice-off", "user", "alice", active=False)), grants=(team(),))
    )

    assert decision.explain == (
        "binding: b offers crm",
        "grant: g-team names Team support on server crm",
        f"tools: 2 of 2 from snapshot {APPROVED}",
        "connection: skipped alice-off (inactive)",
        "connection: platform-shared — the platform's (shared)",
        "header Authorization: connection platform-shared (secret acme-ns/platform-shared#token, scheme Bearer)",
        "state: ready",
    )


def test_headers_server_then_connection_by_name_then_credential() -> None:
    crm = server(
        headers=(
            HeaderRecord("X-Client", value="server"),
            HeaderRecord("X-Region", value="eu"),
            HeaderRecord("authorization", value="Basic stale"),
        )
    )
    connection = conn(
        "platform-shared",
        scheme="Token",
        headers=(HeaderRecord("x-client", value="connection"), HeaderRecord("X-Extra", secret_ref="acme-ns/extra#x")),
    )

    decision = decide_one(Case(server=crm, connections=(connection,)))

    by_name = {header.name: header for header in decision.headers}
    assert list(by_name) == ["X-Region", "x-client", "X-Extra", "Authorization"]
    assert by_name["x-client"].value == "connection"
    assert by_name["X-Extra"].secret_ref == "acme-ns/extra#x"
    assert (by_name["Authorization"].prefix, by_name["Authorization"].secret_ref) == (
        "Token",
        "acme-ns/platform-shared#token",
    )


@pytest.mark.parametrize(
    ("server_filter", "binding_filter", "namespace", "expected"),
    [
        (((), ()), ((), ()), False, ("list_issues", "get_issue", "create_issue", "delete_issue")),
        ((("*_issue*",), ()), ((), ("delete_*",)), False, ("list_issues", "get_issue", "create_issue")),
        (((), ("create_*",)), (("list_*", "create_*"), ()), False, ("list_issues",)),
        (((), ("delete_*",)), (("get_*",), ()), True, ("mcp:crm:get_issue",)),
    ],
)
def test_tools_pass_the_server_filter_then_the_bindings(
    server_filter: tuple[tuple[str, ...], tuple[str, ...]],
    binding_filter: tuple[tuple[str, ...], tuple[str, ...]],
    namespace: bool,
    expected: tuple[str, ...],
) -> None:
    row = BoundServerRow(
        server=server(tools_allow=server_filter[0], tools_deny=server_filter[1]),
        binding="b",
        tools_allow=binding_filter[0],
        tools_deny=binding_filter[1],
        snapshot_hash=APPROVED,
        tool_names=("list_issues", "get_issue", "create_issue", "delete_issue"),
    )
    inputs = ResolutionInputs(tenant=TENANT, bound=(row,), grants=(org(),), bindings=("b",))

    (decision,) = decide(inputs, caller=ALICE, template="t", namespace_tools=namespace, now=NOW).servers

    assert decision.tools == expected


@pytest.mark.parametrize(
    ("case", "tools", "snapshot"),
    [
        (Case(), ("read", "write"), APPROVED),
        (Case(snapshot=None), (), None),
        (Case(connections=(conn("members", mode="perMember"),), state=N), ("read", "write"), APPROVED),
        (Case(connections=(conn("members", mode="perMember"),), snapshot=None, state=N), (), None),
        (Case(grants=(), state=F), (), None),
        (Case(blocked_reason="tool snapshot not approved", state=B), (), None),
    ],
    ids=["ready", "ready/never-probed", "needs-connection", "needs-connection/never-probed", "forbidden", "blocked"],
)
def test_tools_carry_the_snapshot_they_were_expanded_from(
    case: Case, tools: tuple[str, ...], snapshot: str | None
) -> None:
    decision = decide_one(case)

    assert decision.state is case.state
    assert (decision.tools, decision.tool_snapshot) == (tools, snapshot)
    resolved = decision.resolved({})
    assert resolved.tools_known is (snapshot is not None)
    if case.snapshot is None and case.state in (R, N):
        assert any(line.startswith("tools: unknown") for line in decision.explain), "stated, never silent"


@pytest.mark.parametrize(
    ("agents", "caller", "offered", "note"),
    [
        ((), ALICE, True, None),
        (("tutor",), ALICE_AS_TUTOR, True, None),
        (("grader", "tutor"), Caller(agent="tutor"), True, None),
        (("tutor",), Caller(agent="grader"), False, "crm: binding b assigns it to agent tutor only, not agent grader"),
        (("tutor",), ALICE, False, "crm: binding b assigns it to agent tutor only, and no agent was given"),
    ],
    ids=["every-agent", "assigned-to-the-caller", "one-of-two", "another-agent", "no-agent"],
)
def test_a_binding_can_assign_servers_to_agents(
    agents: tuple[str, ...], caller: Caller, offered: bool, note: str | None
) -> None:
    rows = (BoundServerRow(server=server(), binding="b", binding_agents=agents, snapshot_hash=APPROVED),)
    inputs = ResolutionInputs(tenant=TENANT, bound=rows, grants=(org(),), bindings=("b",))

    decisions = decide(inputs, caller=caller, template="t", namespace_tools=False, now=NOW)

    assert [d.server.name for d in decisions.servers] == (["crm"] if offered else [])
    assert decisions.notes == (() if note is None else (note,))
    if offered and agents:
        assert (
            decisions.servers[0].explain[0] == f"binding: b offers crm to agent {', '.join(agents)} (assigned directly)"
        )


def test_an_agent_binding_does_not_shadow_a_later_binding_for_everyone() -> None:
    rows = (
        BoundServerRow(server=server(), binding="a-tutor", binding_agents=("tutor",)),
        BoundServerRow(server=server(), binding="b-all"),
    )
    inputs = ResolutionInputs(tenant=TENANT, bound=rows, grants=(org(),), bindings=("a-tutor", "b-all"))

    (decision,) = decide(inputs, caller=Caller(agent="grader"), template="t", namespace_tools=False, now=NOW).servers

    assert decision.explain[0] == "binding: b-all offers crm"


PLATFORM_TENANT = TenantRecord(slug="platform", namespace="platform-ns")


def platform_server(name: str = "search", **fields: object) -> ServerRecord:
    auth = {"secretRef": f"platform-ns/{name}#token"}
    defaults: dict[str, object] = {"featured": True, "auth_type": "bearer", "auth": auth}
    return ServerRecord(
        tenant="platform", name=name, url=f"https://{name}.platform/mcp", row_id=9, **{**defaults, **fields}
    )  # type: ignore[arg-type]


def platform_org(name: str = "search") -> GrantMatch:
    return GrantMatch("g-platform", GrantSubjectRecord("Organization"), name, None)


@pytest.mark.parametrize(
    ("platform_row", "grants", "state", "credential"),
    [
        (platform_server(), (platform_org(),), R, "Authorization=platform-ns/search#token"),
        (platform_server(), (), F, None),
        (platform_server(), (GrantMatch("g-team", GrantSubjectRecord("Team", "support"), "search", None),), F, None),
        (platform_server(featured=False), (platform_org(),), None, None),
        (platform_server(enabled=False), (platform_org(),), None, None),
        (platform_server("crm"), (platform_org("crm"),), None, None),
        (platform_server(auth_type="oauthClientCredentials", auth={}), (platform_org(),), R,
         "Authorization=local:platform/search#oauth-access-token"),
    ],
    ids=["featured-granted", "no-grant", "team-grant-is-the-platforms", "not-featured", "disabled", "name-taken",
         "client-credentials"],
)  # fmt: skip
def test_the_platforms_featured_servers_come_last(
    platform_row: ServerRecord, grants: tuple[GrantMatch, ...], state: ServerState | None, credential: str | None
) -> None:
    own = BoundServerRow(server=server(), binding="b", snapshot_hash=APPROVED)
    inputs = ResolutionInputs(tenant=TENANT, bound=(own,), grants=(org(),), bindings=("b",))
    platform = ResolutionInputs(
        tenant=PLATFORM_TENANT, bound=(BoundServerRow(server=platform_row, snapshot_hash=APPROVED),), grants=grants
    )

    decisions = decide(inputs, caller=ALICE, template="t", namespace_tools=False, now=NOW, platform=platform)

    assert decisions.servers[0].server.tenant == "acme"
    offered = decisions.servers[1:]
    if state is None:
        assert offered == ()
        return
    (decision,) = offered
    assert (decision.state, decision.server.tenant) == (state, "platform")
    if state is R:
        assert decision.scope is FEATURED and credential_of(decision) == credential
    assert decision.explain[0].startswith("binding: featured by the platform tenant platform (namespace platform-ns)")


def test_the_platform_tenant_itself_gets_no_second_copy() -> None:
    platform = ResolutionInputs(
        tenant=PLATFORM_TENANT, bound=(BoundServerRow(server=platform_server()),), grants=(platform_org(),)
    )

    decisions = decide(platform, caller=ALICE, template=None, namespace_tools=False, now=NOW, platform=platform)

    assert [decision.server.name for decision in decisions.servers] == ["search"]
    assert decisions.servers[0].explain[0].startswith("binding: no template asked for")


SLUG = (MemberHeaderRecord("x-workspace-slug", "workspace-slug"),)


@pytest.mark.parametrize(
    ("value_keys", "member_headers", "state", "headers"),
    [
        (("workspace-slug",), SLUG, R, {"x-workspace-slug": "acme-ns/alice-token#workspace-slug"}),
        (("workspace-slug", "region"), SLUG, R, {"x-workspace-slug": "acme-ns/alice-token#workspace-slug"}),
        ((), SLUG, N, {}),
        (("region",), SLUG, N, {}),
        ((), (), R, {}),
    ],
    ids=["stored", "stored-with-more", "nothing-stored", "another-key", "no-member-headers"],
)
def test_per_member_header_values(
    value_keys: tuple[str, ...],
    member_headers: tuple[MemberHeaderRecord, ...],
    state: ServerState,
    headers: dict[str, str],
) -> None:
    members = dataclasses.replace(conn("members", mode="perMember"), member_headers=member_headers)
    stored = dataclasses.replace(token("members"), value_keys=value_keys)

    decision = decide_one(Case(connections=(members,), tokens=(stored,), state=state))

    assert decision.state is state, decision.explain
    found = {h.name: h.secret_ref for h in decision.headers if h.name != "Authorization"}
    assert found == headers
    if state is N:
        assert decision.reason == (
            "member alice has not stored workspace-slug for connection members (sent as x-workspace-slug)"
        )


def test_disabled_twice_bound_and_unbound_servers_leave_notes() -> None:
    rows = (
        BoundServerRow(server=server("crm"), binding="a"),
        BoundServerRow(server=server("off", enabled=False), binding="a"),
        BoundServerRow(server=server("crm"), binding="b", pinned_connection="x"),
    )
    grants = (org(), org(on_server="off"))
    inputs = ResolutionInputs(tenant=TENANT, bound=rows, grants=grants, bindings=("a", "b"))

    decisions = decide(inputs, caller=ALICE, template="t", namespace_tools=False, now=NOW)

    assert [d.server.name for d in decisions.servers] == ["crm"]
    assert decisions.notes == (
        "off: disabled (spec.enabled: false), not offered",
        "crm: also bound by binding b; binding a listed it first and wins",
    )
    unbound = decide(ResolutionInputs(tenant=TENANT), caller=ALICE, template="t", namespace_tools=False, now=NOW)
    assert unbound.notes == ("no MCPTemplateBinding in tenant acme binds template t",)


@pytest.mark.parametrize(
    ("case", "why"),
    [
        (Case(read_only=True), "crm is not pinned (spec.tools.policy: Track)"),
        (
            Case(server=PINNED, read_only=True, tool_risk=("readOnlyHint of write: false → true",)),
            "crm's tools changed risk since the last probe (readOnlyHint of write: false → true)",
        ),
    ],
    ids=["tracked", "risk-changed"],
)
def test_read_only_says_why_it_admits_nothing(case: Case, why: str) -> None:
    decision = decide_one(case)

    (line,) = [line for line in decision.explain if line.startswith("tools:")]
    assert line.startswith(f"tools: none — binding b admits read-only tools only and {why}")
    assert "annotations from untrusted servers must not be trusted (MCP specification)" in line


def test_read_only_from_a_pinned_server_names_the_filter() -> None:
    decision = decide_one(Case(server=PINNED, read_only=True))

    (line,) = [line for line in decision.explain if line.startswith("tools:")]
    assert line.startswith(f"tools: 1 of 2 from snapshot {APPROVED} after ")
    assert line.endswith("binding readOnly (the pinned, approved snapshot's readOnlyHint)")


@pytest.mark.parametrize(
    ("case", "namespace", "tools"),
    [
        (Case(connections=(PLATFORM_SHARED,)), False, ("read", "write")),
        (Case(connections=(PLATFORM_SHARED,)), True, ("mcp:crm:read", "mcp:crm:write")),
        (Case(connections=(PLATFORM_SHARED,)), "server", ("mcp:crm:read", "mcp:crm:write")),
        (
            Case(connections=(PLATFORM_SHARED,)),
            "connection",
            ("mcp:platform-shared:read", "mcp:platform-shared:write"),
        ),
        (Case(connections=(PLATFORM_SHARED, ALICE_OWN)), "connection", ("mcp:alice-own:read", "mcp:alice-own:write")),
        (Case(), "connection", ("mcp:crm:read", "mcp:crm:write")),
        (
            Case(connections=(conn("members", mode="perMember"),), state=N),
            "connection",
            ("mcp:members:read", "mcp:members:write"),
        ),
        (Case(server=PINNED, read_only=True), "connection", ("mcp:crm:read",)),
    ],
    ids=[
        "plain",
        "true-is-by-server",
        "by-server",
        "by-connection",
        "by-the-members-own-connection",
        "own-credential-keeps-the-servers-name",
        "needs-connection",
        "after-read-only",
    ],
)
def test_namespaced_tool_names_by_server_or_by_connection(
    case: Case, namespace: bool | ToolNamespace, tools: tuple[str, ...]
) -> None:
    row = BoundServerRow(
        server=case.server,
        binding="b",
        snapshot_hash=case.snapshot,
        tool_names=("read", "write"),
        read_only_tools=frozenset({"read"}),
        tools_read_only=case.read_only,
    )
    inputs = ResolutionInputs(
        tenant=TENANT, bound=(row,), connections=case.connections, grants=case.grants, bindings=("b",)
    )

    (decision,) = decide(inputs, caller=ALICE, template="t", namespace_tools=namespace, now=NOW).servers

    assert decision.state is case.state
    assert decision.tools == tools
