"""CLI tests run the real command against real registries (SQLite and PostgreSQL), real MCP servers and a real
authorization server. The bad-input corpus's figures are printed in the terminal summary."""

import pytest

from tests.fixtures.authorization_server import oauth_servers, oauth_servers_session
from tests.fixtures.mcp_servers import mcp_servers, server_loop
from tests.fixtures.postgres import *  # noqa: F403
from tests.integration.cli.figures import CORPUS_FIGURES

__all__ = ["mcp_servers", "oauth_servers", "oauth_servers_session", "server_loop"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    figures = config.stash.get(CORPUS_FIGURES, None)
    if figures is not None:
        terminalreporter.write_sep("-", figures.line())
