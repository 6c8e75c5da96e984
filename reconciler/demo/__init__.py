"""Local MCP servers that ship with the product for the demo, built with the mcp SDK and served on 127.0.0.1.

The CLI demo calls `start_demo_servers()`, applies an example folder pointing at the yielded URLs, prints the
table and stops them; the test suite reuses the same servers and the `ServerLoop` host.
"""

from __future__ import annotations

from reconciler.demo.servers import (
    DEMO_BEARER_TOKEN,
    DEMO_PORTS,
    DEMO_SCOPE,
    DemoServers,
    authorization_server_metadata_app,
    build_events_server,
    build_secure_server,
    build_tools_server,
    host_demo_servers,
    start_demo_servers,
)
from reconciler.demo.serving import ServerLoop, bind_local_socket

__all__ = [
    "DEMO_BEARER_TOKEN",
    "DEMO_PORTS",
    "DEMO_SCOPE",
    "DemoServers",
    "ServerLoop",
    "authorization_server_metadata_app",
    "bind_local_socket",
    "build_events_server",
    "build_secure_server",
    "build_tools_server",
    "host_demo_servers",
    "start_demo_servers",
]
