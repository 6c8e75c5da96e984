"""`open_registry_if_present`: Test Connection before save must not create a registry. Absent (no SQLite file, or
a database without the registry's schema) gives None and leaves nothing behind; a registry that exists opens."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from reconciler.registry import open_registry, open_registry_if_present
from reconciler.registry.connecting import create_registry_engine


def tables(registry_url: str) -> list[str]:
    engine = create_registry_engine(registry_url)
    try:
        with engine.connect() as connection:
            return sa.inspect(connection).get_table_names()
    finally:
        engine.dispose()


def test_an_absent_registry_is_not_created(registry_url: str) -> None:
    database = sa.make_url(registry_url).database
    assert open_registry_if_present(registry_url) is None
    if registry_url.startswith("sqlite"):
        assert database is not None and not Path(database).exists()
    else:
        assert tables(registry_url) == []


def test_a_registry_that_exists_is_opened(registry_url: str) -> None:
    open_registry(registry_url).close()
    registry = open_registry_if_present(registry_url, manager="someone")
    assert registry is not None
    with registry:
        assert registry.fetch_resources(kind="MCPServer") == []
