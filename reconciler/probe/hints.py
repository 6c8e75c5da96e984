"""What to check next, per error class: the hint a probe result, a status and the CLI print under a failure.

`classification.py` attaches them to probe results; the engine's statuses read them back for stored results. A
module of its own because it needs nothing else of the probe: building a status (and `plan`) never imports the
mcp SDK or the HTTP client to find a hint.
"""

from __future__ import annotations

from typing import Final

HINTS: Final[dict[str, str]] = {
    "transport": "check the URL, the transport and that the server is reachable",
    "tls": "check the server's certificate, and that the URL's scheme matches the port (https vs http)",
    "auth": "check the credentials and the auth type; the discovery result shows what the server expects",
    "insufficient_scope": (
        "the token lacks scopes the server named: have it issued with them; for OAuth, add them to spec.auth.scopes"
    ),
    "downstream": "the server is reachable but failed the request; check the server's own logs",
    "timeout": "the server did not answer in time; check that it is up and not overloaded",
    "protocol": "the URL answers, but not as an MCP server; check the path and the transport",
    "blocked": "private and internal addresses need spec.network.allowPrivate and --allow-private-networks",
    "internal": "a fault in the reconciler itself; other servers were probed normally; please report this message",
}
