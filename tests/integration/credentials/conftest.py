"""Credentials integration tests: real registries (SQLite and PostgreSQL), a real authorization server and MCP
servers protected by it, all on 127.0.0.1."""

from __future__ import annotations

from tests.fixtures.authorization_server import oauth_servers, oauth_servers_session, server_loop
from tests.fixtures.postgres import *  # noqa: F403

__all__ = ["oauth_servers", "oauth_servers_session", "server_loop"]
