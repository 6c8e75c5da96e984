"""The runtime side of the registry: which MCP servers, with which URL, headers and tools, an agent gets.

Agent runtimes call `resolve` (Python); the CLI calls `resolve_command` and `serve_mcp` (the MCP endpoint and
the Registry API v0.1); tests build the agent-facing MCP endpoint with `build_mcp_app`, both with
`build_serving_app`; the operator renders a binding's `spec.export` ConfigMap with
`export_target`, `export_document` and `build_config_map`. Everything here reads the registry and never writes
it. The public names below are pinned by a test.
"""

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
from reconciler.runtime.presenting import render_mcp_config, resolution_json, resolution_text
from reconciler.runtime.publishing import build_entry, page_entries
from reconciler.runtime.registry_api import CallerDirectory, RegistryCaller, build_registry_api, load_callers
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
    "RegistryCaller",
    "Resolution",
    "ResolvedServer",
    "ServerState",
    "UnknownTenant",
    "build_config_map",
    "build_entry",
    "build_mcp_app",
    "build_mcp_server",
    "build_registry_api",
    "build_serving_app",
    "caller_directory",
    "export_document",
    "export_target",
    "load_callers",
    "page_entries",
    "render_mcp_config",
    "resolution_json",
    "resolution_text",
    "resolve",
    "resolve_command",
    "secret_placeholder",
    "serve_mcp",
]
