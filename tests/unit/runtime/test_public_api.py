"""The runtime package's public names are pinned: changing them is a decision, not an accident."""

from __future__ import annotations

import reconciler.runtime


def test_the_package_exports_exactly_these_names() -> None:
    assert sorted(reconciler.runtime.__all__) == [
        "BearerTokenGate",
        "CredentialScope",
        "DEFAULT_PORT",
        "ExportTarget",
        "MASK",
        "ManifestPlanner",
        "MemberCoverage",
        "Resolution",
        "ResolvedServer",
        "ServerState",
        "UnknownTenant",
        "build_config_map",
        "build_mcp_app",
        "build_mcp_server",
        "export_document",
        "export_target",
        "fetch_member_coverage",
        "render_mcp_config",
        "resolution_json",
        "resolution_text",
        "resolve",
        "resolve_command",
        "secret_placeholder",
        "serve_mcp",
    ]
    assert all(hasattr(reconciler.runtime, name) for name in reconciler.runtime.__all__)
