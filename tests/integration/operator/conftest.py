"""Operator integration tests: the reconcile loop with the API server faked at our seam, a real SQLite registry
and real MCP servers on 127.0.0.1."""

from tests.fixtures.mcp_servers import mcp_servers, server_loop

__all__ = ["mcp_servers", "server_loop"]
