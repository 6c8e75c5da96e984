"""The MCP client side of the reconciler: auth discovery, tool snapshots across all pages, error classification, the
SSRF guard and the websocket transport.

The engine and the CLI import from here only; the submodules are the probe's own layout. This package never touches
the registry database or the cluster: it takes `ProbeTarget`s (with already-resolved headers) and returns
`ProbeResult`s, and its pure helpers (`snapshot_hash`, `diff_tools`, `diff_tool_risk`, `filter_tool_names`,
`fill_auth_fields`) serve planning and status building. It is also the HTTP behind the credentials package's
authorization-server port (`ProbeAuthServer`) and the probe that verifies a rotated credential
(`verify_credential`, `credential_verifier`), both handed to the credentials package by the engine.

The names load lazily, so the pure helpers come without the mcp SDK and httpx2.
"""

from typing import TYPE_CHECKING

from reconciler.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from reconciler.probe.authserver import ProbeAuthServer
    from reconciler.probe.classification import ErrorClass
    from reconciler.probe.discovery import AuthDiscovery, fill_auth_fields
    from reconciler.probe.hints import HINTS
    from reconciler.probe.probing import ProbeResult, probe_many, probe_many_sync, probe_server
    from reconciler.probe.risk import diff_tool_risk
    from reconciler.probe.settings import ProbeSettings, ProbeTarget, Transport
    from reconciler.probe.ssrf import BlockedDestination, Resolver, address_problem, system_resolver
    from reconciler.probe.tool_lists import diff_tools, filter_tool_names, snapshot_hash, tool_fingerprint
    from reconciler.probe.transports import ProbeHttp
    from reconciler.probe.verifying import credential_verifier, verify_credential

__all__ = [
    "HINTS",
    "AuthDiscovery",
    "BlockedDestination",
    "ErrorClass",
    "ProbeAuthServer",
    "ProbeHttp",
    "ProbeResult",
    "ProbeSettings",
    "ProbeTarget",
    "Resolver",
    "Transport",
    "address_problem",
    "credential_verifier",
    "diff_tool_risk",
    "diff_tools",
    "fill_auth_fields",
    "filter_tool_names",
    "probe_many",
    "probe_many_sync",
    "probe_server",
    "snapshot_hash",
    "system_resolver",
    "tool_fingerprint",
    "verify_credential",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "authserver": ["ProbeAuthServer"],
        "classification": ["ErrorClass"],
        "hints": ["HINTS"],
        "discovery": ["AuthDiscovery", "fill_auth_fields"],
        "tool_lists": ["diff_tools", "filter_tool_names", "snapshot_hash", "tool_fingerprint"],
        "risk": ["diff_tool_risk"],
        "probing": ["ProbeResult", "probe_many", "probe_many_sync", "probe_server"],
        "settings": ["ProbeSettings", "ProbeTarget", "Transport"],
        "ssrf": ["BlockedDestination", "Resolver", "address_problem", "system_resolver"],
        "transports": ["ProbeHttp"],
        "verifying": ["credential_verifier", "verify_credential"],
    },
)
