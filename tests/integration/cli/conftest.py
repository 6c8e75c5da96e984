"""CLI tests run the real command against real registries (SQLite and PostgreSQL), real MCP servers and a real
authorization server."""

from tests.fixtures.authorization_server import oauth_servers, oauth_servers_session
from tests.fixtures.mcp_servers import mcp_servers, server_loop
from tests.fixtures.postgres import *  # noqa: F403

__all__ = ["mcp_servers", "oauth_servers", "oauth_servers_session", "server_loop"]
