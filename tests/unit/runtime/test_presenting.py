"""A resolution printed: the documented JSON shape, the MCP client configuration (a sandboxed Jinja2 template)
and the text table."""

from __future__ import annotations

import dataclasses
import json

from reconciler.runtime import (
    CredentialScope,
    Resolution,
    ResolvedServer,
    ServerState,
    render_mcp_config,
    resolution_json,
    resolution_text,
)


def resolution(*servers: ResolvedServer, explained: bool = False, notes: tuple[str, ...] = ()) -> Resolution:
    return Resolution(
        tenant="acme",
        namespace="acme-prod",
        template="support",
        agent=None,
        user="bob",
        teams=("sales",),
        servers=servers,
        explained=explained,
        notes=notes,
    )


READY = ResolvedServer(
    name="crm",
    url="https://crm.example/mcp",
    transport="streamable-http",
    state=ServerState.READY,
    connection="crm-platform",
    scope=CredentialScope.PLATFORM,
    headers={"Authorization": "Token ***", "x-client": "mentor-ui"},
    tools=("list_issues",),
    tool_snapshot="sha256:" + "c" * 64,
    explain=("binding: support offers crm", "state: ready"),
)
WAITING = ResolvedServer(
    name="notion",
    url="https://notion.example/mcp",
    transport="sse",
    state=ServerState.NEEDS_CONNECTION,
    connection="notion-members",
    scope=CredentialScope.PLATFORM,
    reason="member bob has not connected their own account to notion",
    action="connect your Notion account",
)


def test_json_has_the_documented_shape() -> None:
    document = json.loads(resolution_json(resolution(READY, WAITING)))

    assert list(document) == ["servers"]
    assert document["servers"][0] == {
        "name": "crm",
        "url": "https://crm.example/mcp",
        "transport": "streamable-http",
        "connection": "crm-platform",
        "scope": "platform",
        "state": "ready",
        "headers": {"Authorization": "Token ***", "x-client": "mentor-ui"},
        "tools": ["list_issues"],
        "toolSnapshot": "sha256:" + "c" * 64,
        "reason": None,
        "action": None,
    }
    assert document["servers"][1]["state"] == "needs_connection"
    assert document["servers"][1]["toolSnapshot"] is None, "never probed: the tools are stated unknown"


def test_explained_json_carries_the_chain_the_request_and_notes() -> None:
    document = json.loads(resolution_json(resolution(READY, explained=True, notes=("off: disabled",))))

    assert document["servers"][0]["explain"] == ["binding: support offers crm", "state: ready"]
    assert document["request"]["user"] == "bob"
    assert document["notes"] == ["off: disabled"]


def test_mcp_config_lists_ready_servers_only() -> None:
    config = json.loads(render_mcp_config(resolution(READY, WAITING)))

    assert config == {
        "mcpServers": {
            "crm": {
                "url": "https://crm.example/mcp",
                "transport": "streamable-http",
                "headers": {"Authorization": "Token ***", "x-client": "mentor-ui"},
                "tools": ["list_issues"],
                "toolSnapshot": "sha256:" + "c" * 64,
            }
        }
    }


def test_mcp_config_carries_the_effective_tools_and_states_unknown_ones() -> None:
    unprobed = ResolvedServer(name="fresh", url="https://fresh.example/mcp", transport="sse", state=ServerState.READY)
    filtered_out = ResolvedServer(
        name="locked",
        url="https://locked.example/mcp",
        transport="sse",
        state=ServerState.READY,
        tool_snapshot="sha256:" + "d" * 64,
    )

    config = json.loads(render_mcp_config(resolution(READY, unprobed, filtered_out)))["mcpServers"]

    assert (config["crm"]["tools"], config["crm"]["toolSnapshot"]) == (["list_issues"], "sha256:" + "c" * 64)
    assert (config["fresh"]["tools"], config["fresh"]["toolSnapshot"]) == ([], None), "unknown, never unfiltered"
    assert (config["locked"]["tools"], config["locked"]["toolSnapshot"]) == ([], "sha256:" + "d" * 64)


def test_mcp_config_values_cannot_break_out_of_their_strings() -> None:
    hostile = ResolvedServer(
        name='a"b{{ 7*7 }}',
        url='https://x.example/mcp?q="},"evil":{"url":"x',
        transport="sse",
        state=ServerState.READY,
        headers={"X-Quote": '"\n</script>{% raw %}'},
    )

    config = json.loads(render_mcp_config(resolution(hostile, READY)))

    assert list(config["mcpServers"]) == ['a"b{{ 7*7 }}', "crm"]
    assert config["mcpServers"]['a"b{{ 7*7 }}']["headers"] == {"X-Quote": '"\n</script>{% raw %}'}


def test_mcp_config_without_ready_servers_is_still_a_document() -> None:
    assert json.loads(render_mcp_config(resolution(WAITING))) == {"mcpServers": {}}


def test_text_shows_a_table_with_why_and_what_to_do() -> None:
    text = resolution_text(resolution(READY, WAITING))

    assert text.splitlines() == [
        "Resolution for tenant acme (namespace acme-prod), template support, member bob, teams sales",
        "NAME    STATE             SCOPE     CONNECTION      TOOLS    URL",
        "crm     ready             platform  crm-platform    1        https://crm.example/mcp",
        "notion  needs_connection  platform  notion-members  unknown  https://notion.example/mcp",
        "    why: member bob has not connected their own account to notion",
        "    do:  connect your Notion account",
    ]


def test_a_connect_link_is_shown_where_the_member_can_act() -> None:
    link = "https://mcp.acme.example/oauth/connect?link=v1.e30.mac"
    linked = dataclasses.replace(WAITING, connect_url=link)

    assert resolution_text(resolution(READY, linked)).splitlines()[-1] == f"    open: {link}"
    document = json.loads(resolution_json(resolution(READY, linked)))
    assert document["servers"][1]["connectUrl"] == link
    assert "connectUrl" not in document["servers"][0], "no link, no key: the documented shape is unchanged"


def test_text_explained_lists_the_decisions_and_notes() -> None:
    text = resolution_text(resolution(READY, explained=True, notes=("off: disabled",)))

    assert "    · binding: support offers crm" in text.splitlines()
    assert text.splitlines()[-2:] == ["notes:", "  · off: disabled"]
