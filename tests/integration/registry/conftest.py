"""Registry contract suite: every test here runs against SQLite and PostgreSQL through the shared fixtures."""

from tests.fixtures.postgres import *  # noqa: F403
