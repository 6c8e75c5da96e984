"""Bringing a registry database to the schema this version expects, safely when several processes start at once.

Called by `store.open_registry` on every open, and by `mcp-reconciler migrate` (the chart's init container): an
up-to-date database costs one read of `alembic_version` and does not even import Alembic (with Mako and Pygments
it is ~11 MB of a long-running operator's memory); an empty or older one is upgraded inside one transaction. On
PostgreSQL an advisory lock serialises operators starting together; on SQLite the write transaction (BEGIN
IMMEDIATE) does the same.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from reconciler.registry.connecting import WRITE_TRANSACTION
from reconciler.registry.errors import IncompatibleRegistry, RegistryUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_PATH = Path(__file__).resolve().parent / "migrations"
HEAD_REVISION = "0011_binding_read_only"
"""The newest migration, known without loading Alembic (a test checks it against the scripts' real head)."""
VERSION_TABLE = "alembic_version"
ADVISORY_LOCK_ID = 0x6D63_7072_6567_0001
"""Arbitrary, fixed: every process migrating the same PostgreSQL database must use the same number."""
LOCK_WAIT_SECONDS = 120.0


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic settings pointing at the packaged migrations (never the working directory)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_PATH))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The head of the migration scripts, as Alembic computes it."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the packaged migrations have no head revision"
    return head


def upgrade_registry(engine: sa.Engine, *, lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> tuple[str, ...]:
    """Upgrade to the newest revision; returns the revisions applied, empty when already up to date."""
    if stored_revision(engine) == HEAD_REVISION:
        return ()
    with engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            _acquire_advisory_lock(connection, lock_wait_seconds)
        try:
            connection.execution_options(**{WRITE_TRANSACTION: True})
            applied = _upgrade_in_transaction(connection)
            connection.commit()
            return applied
        finally:
            if connection.in_transaction():
                connection.rollback()
            if postgres:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK_ID})
                connection.commit()


def stored_revision(engine: sa.Engine) -> str | None:
    """The revision recorded in the database; None when there is none yet (an empty database)."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(VERSION_TABLE):
            return None
        versions = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return versions[0] if len(versions) == 1 else None


def _upgrade_in_transaction(connection: sa.Connection) -> tuple[str, ...]:
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util.exc import CommandError

    config = alembic_config(connection)
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    current = MigrationContext.configure(connection).get_current_revision()
    if current == head:
        return ()
    try:
        pending = list(script.iterate_revisions(head, current or "base"))
    except (CommandError, RevisionError) as err:
        raise IncompatibleRegistry(
            f"the registry schema is at revision {current!r}, which this version does not know "
            f"(newest known: {head!r}); upgrade mcp-reconciler"
        ) from err
    command.upgrade(config, "head")
    return tuple(revision.revision for revision in reversed(pending))


def _acquire_advisory_lock(connection: sa.Connection, wait_seconds: float) -> None:
    """Poll rather than block, so a stuck peer turns into a retryable error instead of a hung operator."""
    deadline = time.monotonic() + wait_seconds
    while True:
        locked = connection.execute(sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID}).scalar()
        connection.commit()
        if locked:
            return
        if time.monotonic() >= deadline:
            raise RegistryUnavailable(
                f"another process has been migrating the registry for over {wait_seconds:.0f}s", delay=30.0
            )
        time.sleep(0.2)
