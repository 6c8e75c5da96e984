"""CLI tests run the real command against real registries (SQLite and PostgreSQL) and real MCP servers."""

from tests.fixtures.mcp_servers import mcp_servers, server_loop
from tests.fixtures.postgres import *  # noqa: F403

__all__ = ["mcp_servers", "server_loop"]
