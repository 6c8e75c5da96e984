"""Engine integration tests run against SQLite and PostgreSQL, and real MCP servers on 127.0.0.1."""

from tests.fixtures.mcp_servers import mcp_servers, server_loop, tool_catalog
from tests.fixtures.postgres import *  # noqa: F403

__all__ = ["mcp_servers", "server_loop", "tool_catalog"]
