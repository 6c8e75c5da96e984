"""The runtime package's public names are pinned: changing them is a decision, not an accident."""

from __future__ import annotations

import reconciler.runtime


def test_the_package_exports_exactly_these_names() -> None:
    assert sorted(reconciler.runtime.__all__) == [
        "BearerTokenGate",
        "CallerDirectory",
        "CredentialScope",
        "DEFAULT_PORT",
        "ExportTarget",
        "MASK",
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
    assert all(hasattr(reconciler.runtime, name) for name in reconciler.runtime.__all__)
