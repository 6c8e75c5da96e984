"""Runtime integration tests run against SQLite and PostgreSQL registries populated through the engine, some
with the tool snapshots of real local MCP servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.engine.inputs import DesiredInput
from reconciler.registry import Registry
from tests.fixtures.mcp_servers import mcp_servers, server_loop, tool_catalog
from tests.fixtures.postgres import *  # noqa: F403
from tests.integration.runtime.world import populate

__all__ = ["mcp_servers", "server_loop", "tool_catalog", "world"]


@pytest.fixture
def world(registry: Registry, tmp_path: Path) -> DesiredInput:
    """The registry with the whole resolution matrix applied; returns the loaded input (secrets included)."""
    return populate(registry, tmp_path / "world")
