"""Alembic environment for the registry: runs revisions on a connection the caller already holds.

`store.open_registry` passes its connection in `config.attributes["connection"]` (inside its own transaction
and, on PostgreSQL, under an advisory lock) and commits afterwards. Run from the `alembic` command line, it
connects to `-x url=...`, else the URL `resolve_registry_url` picks, and commits itself.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from reconciler.registry.schema import metadata


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_from_command_line() -> None:
    from reconciler.registry.connecting import create_registry_engine, resolve_registry_url

    url = context.get_x_argument(as_dictionary=True).get("url")
    engine = create_registry_engine(resolve_registry_url(url))
    try:
        with engine.connect() as connection:
            run_migrations(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("the registry migrations run online only: drop --sql")

passed_connection = context.config.attributes.get("connection")
if passed_connection is None:
    run_from_command_line()
else:
    run_migrations(passed_connection)
