"""Engine integration tests run against SQLite and PostgreSQL through the shared registry fixtures."""

from tests.fixtures.postgres import *  # noqa: F403
