"""A resolution as text: the JSON document, the MCP client configuration a runtime mounts, and a table.

Called by `commands.resolve_command` (the CLI's `-o json|mcp-config|text`) and by the MCP endpoint. The MCP
client configuration is rendered through a Jinja2 template in a sandboxed environment, so the document a
runtime mounts is exactly the packaged template filled with plain values; nothing from the registry is ever
evaluated as template code.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from reconciler.runtime.resolution import Resolution, ResolvedServer, ServerState

MCP_CONFIG_TEMPLATE = "mcp_config.json.j2"
_COLUMNS = ("NAME", "STATE", "SCOPE", "CONNECTION", "TOOLS", "URL")


def resolution_json(resolution: Resolution) -> str:
    """`{"servers": [...]}` (plus request and notes when explained), indented."""
    return json.dumps(resolution.to_json(), indent=2, ensure_ascii=False)


def render_mcp_config(resolution: Resolution) -> str:
    """`{"mcpServers": {name: {"url", "transport", "headers", "tools", "toolSnapshot"}}}` for the ready servers,
    in binding order.

    Headers are as resolved: masked unless the resolution was made with `show_secrets`. `tools` is the effective
    tool set as exact names (the globs already expanded against `toolSnapshot`), so a runtime that mounts the
    document exposes those tools and no others; `toolSnapshot` null states that the tools are unknown.
    """
    servers = [
        {
            "name": server.name,
            "url": server.url,
            "transport": server.transport,
            "headers": dict(server.headers),
            "tools": list(server.tools),
            "tool_snapshot": server.tool_snapshot,
        }
        for server in resolution.ready
    ]
    return _mcp_config_template().render(servers=servers)


@functools.cache
def _mcp_config_template() -> Template:
    environment = ImmutableSandboxedEnvironment(
        autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=False
    )
    source = resources.files("reconciler.runtime").joinpath(MCP_CONFIG_TEMPLATE).read_text(encoding="utf-8")
    return environment.from_string(source)


def resolution_text(resolution: Resolution) -> str:
    """A table of servers; the reason, action and connect link under each one not ready; the decision chain when
    explained."""
    request = [f"tenant {resolution.tenant} (namespace {resolution.namespace})"]
    request.append(f"template {resolution.template}" if resolution.template else "no template (every server)")
    if resolution.agent:
        request.append(f"agent {resolution.agent}")
    request.append(f"member {resolution.user}" if resolution.user else "no member")
    if resolution.teams:
        request.append("teams " + ", ".join(resolution.teams))
    lines = ["Resolution for " + ", ".join(request)]
    if not resolution.servers:
        lines.append("no servers")
    else:
        rows = [_COLUMNS, *(_row(server) for server in resolution.servers)]
        widths = [max(len(row[column]) for row in rows) for column in range(len(_COLUMNS) - 1)]
        for row, server in zip(rows, [None, *resolution.servers], strict=True):
            padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
            lines.append("  ".join([*padded, row[-1]]))
            if server is None:
                continue
            if server.reason:
                lines.append(f"    why: {server.reason}")
            if server.action:
                lines.append(f"    do:  {server.action}")
            if server.connect_url:
                lines.append(f"    open: {server.connect_url}")
            if resolution.explained:
                lines.extend(f"    · {line}" for line in server.explain)
    if resolution.explained and resolution.notes:
        lines.append("notes:")
        lines.extend(f"  · {note}" for note in resolution.notes)
    return "\n".join(line.rstrip() for line in lines)


def _row(server: ResolvedServer) -> tuple[str, ...]:
    return (
        server.name,
        str(server.state),
        str(server.scope) if server.scope else "-",
        server.connection or "-",
        _tool_count(server),
        server.url,
    )


def _tool_count(server: ResolvedServer) -> str:
    """The number of tools offered; `unknown` for an offered server never probed (its tools are not listed)."""
    offered = server.state in (ServerState.READY, ServerState.NEEDS_CONNECTION, ServerState.NEEDS_REAUTHORIZATION)
    return "unknown" if offered and not server.tools_known else str(len(server.tools))
