"""Runtime integration tests run against SQLite and PostgreSQL registries populated through the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.engine.inputs import DesiredInput
from reconciler.registry import Registry
from tests.fixtures.postgres import *  # noqa: F403
from tests.integration.runtime.world import populate


@pytest.fixture
def world(registry: Registry, tmp_path: Path) -> DesiredInput:
    """The registry with the whole resolution matrix applied; returns the loaded input (secrets included)."""
    return populate(registry, tmp_path / "world")
