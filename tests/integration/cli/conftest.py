"""CLI tests run the real command against real registries (SQLite and PostgreSQL)."""

from tests.fixtures.postgres import *  # noqa: F403
