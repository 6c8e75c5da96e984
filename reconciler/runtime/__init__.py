"""The runtime side of the registry: which MCP servers, with which URL, headers and tools, an agent gets.

Agent runtimes call `resolve` (Python); the CLI calls `resolve_command` and `serve_mcp` (the MCP endpoint and
the Registry API v0.1); tests build the agent-facing MCP endpoint with `build_mcp_app`, both with
`build_serving_app`; the operator renders a binding's `spec.export` ConfigMap with
`export_target`, `export_document` and `build_config_map`; `fetch_member_coverage` says which per-member
credentials no member has connected yet. Everything here reads the registry and writes only what the runtime
owns: members' tokens (`store_member_tokens`, and `resolve(..., renew_tokens=True)` with a `TokenRenewal`, default
`default_renewal`, refreshing the due ones). The public names below are pinned by a test.

The names load lazily, so `get` (which asks only `membership`) does not import the endpoint's mcp SDK and uvicorn.
"""

from typing import TYPE_CHECKING

from reconciler.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from reconciler.runtime.commands import caller_directory, resolve_command
    from reconciler.runtime.endpoint import (
        DEFAULT_PORT,
        BearerTokenGate,
        ManifestPlanner,
        build_mcp_app,
        build_mcp_server,
        build_serving_app,
        serve_mcp,
    )
    from reconciler.runtime.exporting import (
        ExportTarget,
        build_config_map,
        export_document,
        export_target,
        secret_placeholder,
    )
    from reconciler.runtime.membership import MemberCoverage, fetch_member_coverage
    from reconciler.runtime.presenting import render_mcp_config, resolution_json, resolution_text
    from reconciler.runtime.publishing import build_entry, page_entries
    from reconciler.runtime.registry_api import CallerDirectory, RegistryCaller, build_registry_api, load_callers
    from reconciler.runtime.renewing import TokenRenewal, default_renewal, store_member_tokens
    from reconciler.runtime.resolution import MASK, CredentialScope, Resolution, ResolvedServer, ServerState
    from reconciler.runtime.resolving import UnknownTenant, resolve

__all__ = [
    "DEFAULT_PORT",
    "MASK",
    "BearerTokenGate",
    "CallerDirectory",
    "CredentialScope",
    "ExportTarget",
    "ManifestPlanner",
    "MemberCoverage",
    "RegistryCaller",
    "Resolution",
    "ResolvedServer",
    "ServerState",
    "TokenRenewal",
    "UnknownTenant",
    "build_config_map",
    "build_entry",
    "build_mcp_app",
    "build_mcp_server",
    "build_registry_api",
    "build_serving_app",
    "caller_directory",
    "default_renewal",
    "export_document",
    "export_target",
    "fetch_member_coverage",
    "load_callers",
    "page_entries",
    "render_mcp_config",
    "resolution_json",
    "resolution_text",
    "resolve",
    "resolve_command",
    "secret_placeholder",
    "serve_mcp",
    "store_member_tokens",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "commands": ["caller_directory", "resolve_command"],
        "endpoint": [
            "DEFAULT_PORT",
            "BearerTokenGate",
            "ManifestPlanner",
            "build_mcp_app",
            "build_mcp_server",
            "build_serving_app",
            "serve_mcp",
        ],
        "exporting": ["ExportTarget", "build_config_map", "export_document", "export_target", "secret_placeholder"],
        "membership": ["MemberCoverage", "fetch_member_coverage"],
        "presenting": ["render_mcp_config", "resolution_json", "resolution_text"],
        "publishing": ["build_entry", "page_entries"],
        "renewing": ["TokenRenewal", "default_renewal", "store_member_tokens"],
        "registry_api": ["CallerDirectory", "RegistryCaller", "build_registry_api", "load_callers"],
        "resolution": ["MASK", "CredentialScope", "Resolution", "ResolvedServer", "ServerState"],
        "resolving": ["UnknownTenant", "resolve"],
    },
)
