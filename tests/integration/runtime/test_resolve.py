"""`resolve` against real registries (SQLite and PostgreSQL) populated from real manifests through the engine.

Table-driven over callers: each row says, per offered server, the state, credential scope, connection,
headers (masked) and tools that caller must get. The same table runs on both backends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.inputs import DesiredInput, StaticSecrets
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.manifests import load_folder
from reconciler.registry import Registry
from reconciler.registry.records import UserTokenRecord
from reconciler.runtime import (
    MASK,
    UnknownTenant,
    export_document,
    render_mcp_config,
    resolution_json,
    resolve,
    resolve_command,
)
from tests.integration.cli.test_commands import run
from tests.integration.runtime.world import MANIFESTS, NAMESPACE, SECRET_VALUES, TEMPLATE, TENANT

EXAMPLES = Path(__file__).parents[3] / "examples"
TOKEN = f"Token {MASK}"
BEARER = f"Bearer {MASK}"

Expected = dict[str, tuple[str, str | None, str | None, dict[str, str], list[str]]]
"""server → (state, scope, connection, headers, tools)."""

ALICE_TUTOR: Expected = {
    "drive": ("ready", "user", "drive-alice", {"X-Client": "server", "X-Trace": MASK, "Authorization": BEARER},
              ["list_files", "read_file"]),
    "catalog": ("ready", "featured", None, {"Authorization": BEARER}, []),
    "search": ("ready", "server", None, {"X-API-Key": MASK}, []),
    "notion": ("ready", "platform", "notion-members", {"Authorization": BEARER}, []),
    "pinned": ("ready", "server", None, {}, ["lookup"]),
    "unapproved": ("blocked", None, None, {}, []),
    "quarantined": ("blocked", None, None, {}, []),
    "crm": ("ready", "user", None, {"Authorization": BEARER}, []),
    "gradebook": ("ready", "server", None, {}, []),
}  # fmt: skip
BOB_ENGINEERING: Expected = {
    "drive": ("ready", "platform", "drive-platform",
              {"X-Trace": MASK, "x-client": "connection", "Authorization": TOKEN}, ["list_files", "read_file"]),
    "notion": ("needs_connection", "platform", "notion-members", {}, []),
    "linear": ("ready", "platform", "linear-shared", {"Authorization": BEARER}, ["list_issues"]),
    "pinned": ("ready", "server", None, {}, ["lookup"]),
    "unapproved": ("blocked", None, None, {}, []),
    "quarantined": ("blocked", None, None, {}, []),
    "bobs-only": ("ready", "server", None, {}, []),
    "crm": ("needs_connection", "user", None, {}, []),
}  # fmt: skip
AGENT_ONLY: Expected = {
    "drive": ("ready", "agent", "drive-tutor", {"X-Client": "server", "X-Trace": MASK, "Authorization": BEARER},
              ["list_files", "read_file"]),
    "notion": ("needs_connection", "platform", "notion-members", {}, []),
    "pinned": ("ready", "server", None, {}, ["lookup"]),
    "unapproved": ("blocked", None, None, {}, []),
    "quarantined": ("blocked", None, None, {}, []),
    "crm": ("needs_connection", "user", None, {}, []),
    "gradebook": ("ready", "server", None, {}, []),
}  # fmt: skip

CALLERS: dict[str, tuple[dict[str, Any], Expected]] = {
    "member-with-team-and-agent": ({"user": "alice", "teams": ["support"], "agent": "tutor"}, ALICE_TUTOR),
    "member-of-another-team": ({"user": "bob", "teams": ["engineering"]}, BOB_ENGINEERING),
    "agent-without-member": ({"agent": "tutor"}, AGENT_ONLY),
}


def summary(document: dict[str, Any]) -> Expected:
    return {
        server["name"]: (server["state"], server["scope"], server["connection"], server["headers"], server["tools"])
        for server in document["servers"]
    }


@pytest.mark.parametrize(("caller", "expected"), CALLERS.values(), ids=CALLERS.keys())
def test_resolution_matrix(registry: Registry, world: DesiredInput, caller: dict[str, Any], expected: Expected) -> None:
    resolution = resolve(registry, NAMESPACE, template=TEMPLATE, **caller)

    assert summary(resolution.to_json()) == expected
    assert list(summary(resolution.to_json())) == list(expected), "binding order is kept"


def test_explain_adds_forbidden_servers_with_why_and_notes(registry: Registry, world: DesiredInput) -> None:
    resolution = resolve(registry, NAMESPACE, template=TEMPLATE, user="bob", teams=["engineering"], explain=True)

    states = {server.name: str(server.state) for server in resolution.servers}
    assert states["catalog"] == states["search"] == "forbidden"
    assert resolution.server("search").reason == "no grant names member bob, team engineering or the organization"
    assert resolution.server("search").headers == {} and resolution.server("search").tools == ()
    assert resolution.notes == (
        "retired: disabled (spec.enabled: false), not offered",
        "gradebook: binding assistant-tutor assigns it to agent tutor only, and no agent was given",
    )
    assert resolution.server("linear").explain == (
        "binding: assistant offers linear",
        "grant: linear-engineering names Team engineering on connection linear-shared"
        " (access through linear-shared only)",
        "tools: 1 of 2 from snapshot sha256:linear-1 after binding allow=['list_*'] deny=[]",
        "connection: linear-shared — the platform's (shared)",
        "header Authorization: connection linear-shared (secret acme-prod/creds#linear, scheme Bearer)",
        "state: ready",
    )
    assert resolution.server("notion").action == (
        "connect your notion account (authorize it once); the runtime stores your token"
    )


def test_show_secrets_renders_the_real_headers(registry: Registry, world: DesiredInput) -> None:
    resolution = resolve(
        registry, TENANT, template=TEMPLATE, user="bob", teams=["engineering"], secrets=world.secrets, show_secrets=True
    )

    assert resolution.server("drive").headers == {
        "X-Trace": SECRET_VALUES["trace"],
        "x-client": "connection",
        "Authorization": f"Token {SECRET_VALUES['platform']}",
    }
    config = json.loads(render_mcp_config(resolution))
    assert config["mcpServers"]["linear"] == {
        "url": "https://linear.example.com/mcp",
        "transport": "streamable-http",
        "headers": {"Authorization": f"Bearer {SECRET_VALUES['linear']}"},
        "tools": ["list_issues"],
        "toolSnapshot": "sha256:linear-1",
    }
    assert set(config["mcpServers"]) == {"drive", "linear", "pinned", "bobs-only"}


@pytest.mark.parametrize("with_secrets", [False, True])
def test_masked_output_never_holds_a_secret_value(registry: Registry, world: DesiredInput, with_secrets: bool) -> None:
    for caller, _expected in CALLERS.values():
        resolution = resolve(
            registry,
            NAMESPACE,
            template=TEMPLATE,
            explain=True,
            secrets=world.secrets if with_secrets else None,
            **caller,
        )
        text = resolution_json(resolution) + render_mcp_config(resolution)
        leaked = [name for name, value in SECRET_VALUES.items() if value in text]
        assert leaked == []


def test_an_unreadable_secret_blocks_its_server_by_reference(registry: Registry, world: DesiredInput) -> None:
    secrets = StaticSecrets({(NAMESPACE, "creds"): {k: v for k, v in SECRET_VALUES.items() if k != "linear"}})

    resolution = resolve(registry, NAMESPACE, template=TEMPLATE, user="bob", teams=["engineering"], secrets=secrets)

    linear = resolution.server("linear")
    assert (str(linear.state), linear.reason, linear.headers) == (
        "blocked",
        "secret acme-prod/creds#linear could not be read",
        {},
    )
    assert str(resolution.server("drive").state) == "ready"


def test_show_secrets_needs_a_secret_source(registry: Registry, world: DesiredInput) -> None:
    with pytest.raises(ValueError, match="secret source"):
        resolve(registry, NAMESPACE, template=TEMPLATE, show_secrets=True)


def test_tenant_by_slug_or_namespace_and_unknown_tenant(registry: Registry, world: DesiredInput) -> None:
    by_slug = resolve(registry, TENANT, template=TEMPLATE, user="alice", teams=["support"])
    by_namespace = resolve(registry, NAMESPACE, template=TEMPLATE, user="alice", teams=["support"])

    assert by_slug == by_namespace
    assert (by_slug.tenant, by_slug.namespace) == (TENANT, NAMESPACE)
    with pytest.raises(UnknownTenant, match="nowhere"):
        resolve(registry, "nowhere")


def test_a_server_assigned_to_one_agent_reaches_that_agent_only(registry: Registry, world: DesiredInput) -> None:
    tutor = resolve(registry, NAMESPACE, template=TEMPLATE, agent="tutor", explain=True)
    grader = resolve(registry, NAMESPACE, template=TEMPLATE, agent="grader", explain=True)

    assert tutor.server("gradebook").state == "ready"
    assert tutor.server("gradebook").explain[0] == (
        "binding: assistant-tutor offers gradebook to agent tutor (assigned directly)"
    )
    assert "gradebook" not in [server.name for server in grader.servers]
    assert "gradebook: binding assistant-tutor assigns it to agent tutor only, not agent grader" in grader.notes


def test_assignment_to_an_agent_through_the_cli_export_and_removal(
    registry: Registry, registry_url: str, world: DesiredInput, tmp_path: Path
) -> None:
    code, out, err = run(
        "resolve", "-n", NAMESPACE, "--template", TEMPLATE, "--agent", "tutor", "--explain", "-o", "text",
        "--registry", registry_url,
    )  # fmt: skip
    assert code == 0, err
    assert "    · binding: assistant-tutor offers gradebook to agent tutor (assigned directly)" in out.splitlines()
    assert "gradebook" not in json.loads(export_document(registry, NAMESPACE, TEMPLATE))["mcpServers"], (
        "the exported document is for no particular agent"
    )

    binding = MANIFESTS.index("kind: MCPTemplateBinding\nmetadata: {name: assistant-tutor")
    start = MANIFESTS.rindex("---", 0, binding)
    end = MANIFESTS.index("---", binding)
    folder = tmp_path / "detached"
    folder.mkdir()
    (folder / "world.yaml").write_text(MANIFESTS[:start] + MANIFESTS[end:])
    reconcile(load_folder(folder), registry, settings=EngineSettings())

    detached = resolve(registry, NAMESPACE, template=TEMPLATE, agent="tutor", explain=True)
    assert "gradebook" not in [server.name for server in detached.servers], "removing the binding detaches it"
    assert not any("gradebook" in note for note in detached.notes)


def test_the_connectors_example_assigns_the_warehouse_to_one_teammate(registry: Registry) -> None:
    reconcile(load_folder(EXAMPLES / "03-connectors"), registry, settings=EngineSettings())

    def offered(agent: str) -> list[str]:
        resolution = resolve(registry, "globex", template="analyst", agent=agent, teams=["analytics"])
        return [server.name for server in resolution.servers]

    assert offered("forecaster") == ["warehouse", "jira"], "bindings in name order: analyst-forecaster first"
    assert offered("summarizer") == ["jira"]


def test_unknown_template_gets_no_servers_and_says_why(registry: Registry, world: DesiredInput) -> None:
    resolution = resolve(registry, NAMESPACE, template="nobody-binds-this", user="alice", explain=True)

    assert resolution.servers == ()
    assert resolution.notes == (f"no MCPTemplateBinding in tenant {TENANT} binds template nobody-binds-this",)


def test_without_template_every_tenant_server_is_considered(registry: Registry, world: DesiredInput) -> None:
    resolution = resolve(registry, NAMESPACE, user="bob", teams=["engineering"], namespace_tools=True)

    assert [server.name for server in resolution.servers] == [
        "bobs-only",
        "crm",
        "drive",
        "gradebook",
        "linear",
        "notion",
        "pinned",
        "quarantined",
        "unapproved",
    ]
    assert resolution.server("linear").tools == ("mcp:linear:list_issues", "mcp:linear:create_issue")


def test_mcp_config_can_name_tools_by_connection(registry_url: str, world: DesiredInput) -> None:
    """OpenWork's naming, behind an explicit option: the connection the member goes through names the tools."""
    base = ("resolve", "-n", NAMESPACE, "--user", "bob", "--team", "engineering", "-o", "mcp-config")
    code, out, err = run(*base, "--namespace-tools=connection", "--registry", registry_url, "--no-refresh")
    assert code == 0, err
    linear = json.loads(out)["mcpServers"]["linear"]
    assert linear["tools"] == ["mcp:linear-shared:list_issues", "mcp:linear-shared:create_issue"]

    code, out, err = run(*base, "--namespace-tools", "--registry", registry_url, "--no-refresh")
    assert code == 0, err
    assert json.loads(out)["mcpServers"]["linear"]["tools"] == ["mcp:linear:list_issues", "mcp:linear:create_issue"]
    code, out, err = run(*base, "--registry", registry_url, "--no-refresh")
    assert code == 0, err
    assert json.loads(out)["mcpServers"]["linear"]["tools"] == ["list_issues", "create_issue"], "plain by default"


def test_newest_member_token_wins_and_tokens_are_per_member(registry: Registry, world: DesiredInput) -> None:
    with registry.transaction() as tx:
        tx.insert_user_token(
            UserTokenRecord(tenant=TENANT, server="notion", user_id="bob", secret_ref=f"{NAMESPACE}/creds#linear",
                            connection="notion-members")
        )  # fmt: skip
    bob = resolve(registry, NAMESPACE, template=TEMPLATE, user="bob", secrets=StaticSecrets(
        {(NAMESPACE, "creds"): SECRET_VALUES}), show_secrets=True)  # fmt: skip
    carol = resolve(registry, NAMESPACE, template=TEMPLATE, user="carol")

    assert bob.server("notion").headers == {"Authorization": f"Bearer {SECRET_VALUES['linear']}"}
    assert str(carol.server("notion").state) == "needs_connection"


def test_statements_per_resolve_do_not_grow_with_the_template(registry: Registry, world: DesiredInput) -> None:
    counts = {}
    for template in ("small", TEMPLATE, None):
        for user in ("alice", None):
            registry.reset_statement_counts()
            resolve(registry, NAMESPACE, template=template, user=user, teams=["support"])
            counts[(template, user)] = dict(registry.statement_counts)

    assert {key: value for key, value in counts.items() if key[1] == "alice"} == {
        ("small", "alice"): {"SELECT": 5},
        (TEMPLATE, "alice"): {"SELECT": 5},
        (None, "alice"): {"SELECT": 5},
    }
    # Without a member too: the organization's connection tokens are read by the same query.
    assert {counts[(template, None)]["SELECT"] for template in ("small", TEMPLATE, None)} == {5}


def test_resolve_command_prints_json_mcp_config_and_text(
    registry_url: str, registry: Registry, world: DesiredInput
) -> None:
    code, text = resolve_command(
        registry_url=registry_url, namespace_or_tenant=NAMESPACE, template=TEMPLATE, user="bob", teams=["engineering"]
    )
    assert code == 0
    assert summary(json.loads(text)) == BOB_ENGINEERING

    code, config = resolve_command(
        registry_url=registry_url,
        namespace_or_tenant=NAMESPACE,
        template=TEMPLATE,
        user="bob",
        teams=["engineering"],
        output="mcp-config",
        show_secrets=True,
        secrets=world.secrets,
        explain=True,
    )
    assert json.loads(config)["mcpServers"]["drive"]["headers"]["Authorization"] == f"Token {SECRET_VALUES['platform']}"

    code, table = resolve_command(
        registry_url=registry_url,
        namespace_or_tenant=NAMESPACE,
        template=TEMPLATE,
        user="bob",
        output="text",
        explain=True,
    )
    lines = table.splitlines()
    assert lines[0] == f"Resolution for tenant {TENANT} (namespace {NAMESPACE}), template {TEMPLATE}, member bob"
    assert any(line.startswith("search ") and "forbidden" in line for line in lines)
    assert "    · state: forbidden" in lines


@pytest.mark.parametrize(
    ("example", "namespace", "template", "caller", "expected"),
    [
        ("02-tenant-servers", "acme-prod", "support-agent", {"user": "bob", "teams": ["sales"]},
         {"internal-search": ("ready", "server"), "twenty-crm": ("needs_connection", "user")}),
        ("02-tenant-servers", "acme-prod", "support-agent", {"user": "eve", "teams": ["engineering"]},
         {"internal-search": ("ready", "server"), "plane": ("needs_connection", "platform")}),
        ("04-scoped-connections", "mentor-ai", "physics-tutor", {"user": "alice", "agent": "physics-tutor"},
         {"google-drive": ("ready", "user"), "course-catalog": ("ready", "featured")}),
        ("04-scoped-connections", "mentor-ai", "physics-tutor", {"user": "bob", "agent": "physics-tutor"},
         {"google-drive": ("ready", "agent"), "course-catalog": ("ready", "featured")}),
        ("04-scoped-connections", "mentor-ai", "physics-tutor", {"user": "bob"},
         {"google-drive": ("ready", "platform"), "course-catalog": ("ready", "featured")}),
        ("05-org-connections", "openwork", "workspace-agent", {"user": "jordan"},
         {"notion": ("needs_connection", "platform"), "linear": ("ready", "platform")}),
        ("05-org-connections", "openwork", "workspace-agent", {"user": "sam", "teams": ["design"]},
         {"notion": ("needs_connection", "platform")}),
        ("05-org-connections", "openwork", "research-agent", {"user": "jordan"},
         {"linear": ("ready", "platform")}),
    ],
)  # fmt: skip
def test_examples_resolve_as_their_readmes_describe(
    registry: Registry,
    example: str,
    namespace: str,
    template: str,
    caller: dict[str, Any],
    expected: dict[str, tuple[str, str]],
) -> None:
    reconcile(load_folder(EXAMPLES / example), registry, settings=EngineSettings())

    resolution = resolve(registry, namespace, template=template, **caller)

    assert {s.name: (str(s.state), str(s.scope)) for s in resolution.servers} == expected


def test_the_org_connections_example_has_a_read_only_agent_that_trusts_no_unpinned_server(registry: Registry) -> None:
    report = reconcile(load_folder(EXAMPLES / "05-org-connections"), registry, settings=EngineSettings())
    binding = next(r.status for r in report.results if r.obj.resource.metadata.name == "research-agent")
    ready = next(c for c in binding["conditions"] if c["type"] == "Ready")

    assert ready["status"] == "True"
    assert ready["message"].startswith(
        "readOnly admits no tools from linear (not pinned (spec.tools.policy: Track)): annotations from untrusted "
        "servers must not be trusted (MCP specification)"
    )
    (linear,) = resolve(registry, "openwork", template="research-agent", user="jordan").servers
    assert linear.tools == ()
