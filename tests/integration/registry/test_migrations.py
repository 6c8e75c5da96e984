"""Migrations: the migrated database is exactly `schema.py`, runs once, from anywhere, and refuses the future."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import main as alembic_main
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from reconciler.registry import IncompatibleRegistry, RegistryUnavailable, open_registry
from reconciler.registry.connecting import create_registry_engine
from reconciler.registry.migrating import (
    ADVISORY_LOCK_ID,
    HEAD_REVISION,
    MIGRATIONS_PATH,
    alembic_config,
    head_revision,
    upgrade_registry,
)
from reconciler.registry.records import ServerRecord, TenantRecord
from reconciler.registry.schema import metadata

THREAD_JOIN_SECONDS = 60
REPO = Path(__file__).resolve().parents[3]


def all_revisions() -> tuple[str, ...]:
    """Every packaged revision, oldest first: what a fresh database applies."""
    script = ScriptDirectory.from_config(alembic_config())
    return tuple(reversed([revision.revision for revision in script.walk_revisions("base", "heads")]))


def differences(url: str, target: sa.MetaData) -> list[object]:
    engine = create_registry_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, target))
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    engine = create_registry_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def test_the_migrated_schema_is_exactly_schema_py(registry_url: str) -> None:
    open_registry(registry_url).close()

    assert differences(registry_url, metadata) == []


def test_the_comparison_does_notice_a_drift(registry_url: str) -> None:
    open_registry(registry_url).close()
    drifted = sa.MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["servers"].append_column(sa.Column("icon_url", sa.Text(), nullable=True))
    sa.Index("ix_connections_secret_ref", drifted.tables["connections"].c.secret_ref)

    found = differences(registry_url, drifted)

    assert {entry[0] for entry in found if isinstance(entry, tuple)} == {"add_column", "add_index"}


def test_reopening_an_up_to_date_registry_runs_no_migration(registry_url: str) -> None:
    with open_registry(registry_url) as first:
        assert first.applied_migrations == all_revisions()
        with first.transaction() as transaction:
            transaction.ensure_tenants([TenantRecord("t", "ns-t")])
            transaction.insert([ServerRecord(tenant="t", name="kept")])

    with open_registry(registry_url) as second:
        assert second.applied_migrations == ()
        assert set(second.fetch_state().rows) == {("servers", "t", "kept")}
    assert current_revision(registry_url) == head_revision()


def test_migrations_are_found_from_any_working_directory(
    registry_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    with open_registry(registry_url) as registry:
        assert registry.applied_migrations == all_revisions()

    assert MIGRATIONS_PATH.is_absolute()
    assert (MIGRATIONS_PATH / "versions" / "0001_initial.py").is_file()
    assert list(elsewhere.iterdir()) == []


def test_an_older_database_is_upgraded_on_open(registry_url: str) -> None:
    open_registry(registry_url).close()
    engine = create_registry_engine(registry_url)
    try:
        with engine.connect() as connection:
            command.downgrade(alembic_config(connection), "base")
            connection.commit()
    finally:
        engine.dispose()
    assert current_revision(registry_url) is None

    with open_registry(registry_url) as registry:
        assert registry.applied_migrations == all_revisions()

    assert differences(registry_url, metadata) == []


def test_a_database_at_the_first_revision_is_upgraded_with_its_rows_kept(registry_url: str) -> None:
    first = all_revisions()[0]
    engine = create_registry_engine(registry_url)
    try:
        with engine.connect() as connection:
            command.upgrade(alembic_config(connection), first)
            connection.commit()
    finally:
        engine.dispose()
    assert current_revision(registry_url) == first
    with open_registry(registry_url) as registry:
        assert registry.applied_migrations == all_revisions()[1:]
        with registry.transaction() as transaction:
            transaction.ensure_tenants([TenantRecord(slug="t", namespace="t")])
            transaction.insert([ServerRecord(tenant="t", name="s", url="https://s.example.com/mcp")])
    assert differences(registry_url, metadata) == []


def test_the_alembic_command_line_uses_the_same_environment(registry_url: str) -> None:
    ini = MIGRATIONS_PATH / "alembic.ini"

    alembic_main(argv=["-c", str(ini), "-x", f"url={registry_url}", "upgrade", "head"])

    assert current_revision(registry_url) == head_revision()
    with open_registry(registry_url) as registry:
        assert registry.applied_migrations == ()


def test_a_database_from_a_newer_version_is_refused(registry_url: str) -> None:
    open_registry(registry_url).close()
    engine = create_registry_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    finally:
        engine.dispose()

    with pytest.raises(IncompatibleRegistry, match="9999_future"):
        open_registry(registry_url)


def test_processes_opening_a_fresh_database_together_migrate_it_once(registry_url: str) -> None:
    start = threading.Barrier(3, timeout=THREAD_JOIN_SECONDS)
    applied: list[tuple[str, ...]] = []
    failures: list[BaseException] = []

    def open_concurrently() -> None:
        try:
            start.wait()
            with open_registry(registry_url) as registry:
                applied.append(registry.applied_migrations)
        except BaseException as err:  # reported below, in the test's thread
            failures.append(err)

    threads = [threading.Thread(target=open_concurrently) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_JOIN_SECONDS)

    assert failures == []
    assert sorted(applied) == [(), (), all_revisions()]
    assert differences(registry_url, metadata) == []


@pytest.mark.postgres
def test_a_migration_held_up_by_a_peer_gives_up_as_retryable(postgres_schema_url: str) -> None:
    holder = create_registry_engine(postgres_schema_url)
    engine = create_registry_engine(postgres_schema_url)
    try:
        with holder.connect() as connection:
            assert connection.execute(sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID}).scalar()

            with pytest.raises(RegistryUnavailable, match="migrating"):
                upgrade_registry(engine, lock_wait_seconds=0.5)

            connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK_ID})
        assert upgrade_registry(engine) == all_revisions()
    finally:
        engine.dispose()
        holder.dispose()


def test_the_head_known_without_alembic_is_the_scripts_head() -> None:
    assert head_revision() == HEAD_REVISION, "a new migration must also update migrating.HEAD_REVISION"


def test_opening_an_up_to_date_registry_does_not_load_alembic(registry_url: str) -> None:
    """A long-running operator should not carry Alembic (with Mako and Pygments, ~11 MB) once the schema is current."""
    open_registry(registry_url).close()
    code = (
        "import sys; from reconciler.registry import open_registry\n"
        f"registry = open_registry({registry_url!r}); registry.close()\n"
        "print(registry.applied_migrations, sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120, cwd=REPO
    ).stdout
    assert output.strip() == "() []"
