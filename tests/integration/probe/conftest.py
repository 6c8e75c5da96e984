"""Probe integration tests run against the real local servers from `tests.fixtures.mcp_servers`."""

from __future__ import annotations

from tests.fixtures.mcp_servers import mcp_servers, server_loop, tool_catalog

__all__ = ["mcp_servers", "server_loop", "tool_catalog"]
