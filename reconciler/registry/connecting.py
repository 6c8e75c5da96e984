"""Reaching the registry database: URL rules, per-backend engine set-up, driver-error translation, statement counts.

`store.open_registry` builds its engine here, and `migrations/env.py` does the same when Alembic runs from the
command line. Everything that depends on SQLite versus PostgreSQL connection behaviour lives in this module;
the SQL itself is dialect-neutral Core in the modules `store.py` delegates to.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url

from reconciler.registry.errors import (
    DuplicateRow,
    InvalidRegistryUrl,
    NotARegistry,
    RegistryBusy,
    RegistryRejected,
    RegistryUnavailable,
)

REGISTRY_URL_ENV = "MCP_RECONCILER_REGISTRY"
_LONG_DIGIT_RUN = b"0" * 19
_DIGITS_TO_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x2E for byte in range(256))
"""Maps every ASCII digit to `0` and every other byte to `.`, so a run of 19 digits becomes `_LONG_DIGIT_RUN`."""
DEFAULT_REGISTRY_URL = "sqlite:///mcp-registry.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10
EMPTY_FILE_GRACE_SECONDS = 2.0
"""How long an empty SQLite file modified just now may stay empty: a peer creating it writes within moments."""
WRITE_TRANSACTION = "registry_write"
"""Execution option marking a connection whose transaction will write (SQLite then takes the write lock up front)."""

_TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"})
"""Not counted: only SQLite sends BEGIN as a statement, and counts should read the same on every backend."""
_POSTGRES_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg"}
_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}


def resolve_registry_url(url: str | None) -> str:
    """The URL to use: the explicit one, else `$MCP_RECONCILER_REGISTRY`, else a SQLite file in the CWD."""
    return url or os.environ.get(REGISTRY_URL_ENV) or DEFAULT_REGISTRY_URL


def parse_registry_url(url: str) -> URL:
    """Parse and normalise: `postgres://` and `postgresql://` mean psycopg 3, the only PostgreSQL driver shipped."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError as err:
        # The text may hold a password, and it did not parse, so it cannot be masked: do not echo it.
        raise InvalidRegistryUrl(
            "the registry URL is not a database URL (expected sqlite:///<file> or postgresql://...)"
        ) from err
    if parsed.drivername in _POSTGRES_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in _SQLITE_DRIVERS:
        return parsed
    raise InvalidRegistryUrl(
        f"unsupported registry database {masked_url(parsed)}: use sqlite:///<file> or postgresql://..."
    )


def check_sqlite_file(url: URL) -> None:
    """Refuse a SQLite registry path that holds something other than a database before SQLite touches it.

    SQLite would fail on a directory with a misleading "unable to open" (which reads as retryable), and would
    silently turn an empty file (what a truncation to zero leaves) into a new, empty registry. A peer process
    creating the registry right now also leaves the file empty for a moment (until it switches to WAL), so a
    freshly modified empty file is given `EMPTY_FILE_GRACE_SECONDS` to be written before it is refused.
    """
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.is_dir():
        raise NotARegistry(f"registry {masked_url(url)} is not a registry database (it is a directory)")
    if _stays_empty(path):
        raise NotARegistry(f"registry {masked_url(url)} is not a registry database (the file is empty)")


def _stays_empty(path: Path) -> bool:
    try:
        stat = path.stat() if path.is_file() else None
        if stat is None or stat.st_size:
            return False
        deadline = time.monotonic() + max(0.0, stat.st_mtime + EMPTY_FILE_GRACE_SECONDS - time.time())
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if path.stat().st_size:
                return False
        return True
    except OSError:
        return False  # gone or unreadable: SQLite reports what it cannot open


def masked_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def create_registry_engine(url: str | URL) -> Engine:
    """An engine with the connection behaviour the registry relies on (foreign keys, real transactions)."""
    parsed = parse_registry_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(
            parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, json_deserializer=load_json
        )
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
    if "application_name" not in parsed.query:
        connect_args["application_name"] = "mcp-reconciler"
    engine = sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args, json_deserializer=load_json)
    _configure_postgres(engine)
    return engine


def _configure_postgres(engine: Engine) -> None:
    """Waits for another writer's locks last as long as SQLite's busy timeout, then fail (reported as
    `RegistryBusy`) instead of hanging behind a stuck peer forever. Set once per connection, so it costs no
    round trip per transaction."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"SET lock_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()
        dbapi_connection.commit()


def load_json(text: str | bytes) -> Any:
    """JSON columns are the hot path of every resync (tens of thousands of values) and of every resolution
    (tool snapshots): orjson decodes them several times faster. It reads integers beyond 64 bits as floats,
    silently losing precision, so any text with a run of 19 digits goes to the stdlib decoder, as does
    whatever orjson refuses. JSON numbers are ASCII, so the run is looked for in the UTF-8 bytes with
    `bytes.translate`, which costs a fraction of the decoding (a regular expression cost four times it)."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if _LONG_DIGIT_RUN in raw.translate(_DIGITS_TO_ZERO):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def single_statement_reads(dialect: sa.Dialect) -> dict[str, str]:
    """Execution options for a connection that only reads, where a transaction around the reads buys nothing.

    Under PostgreSQL's READ COMMITTED (its default) every statement takes its own snapshot, inside a
    transaction or not, so wrapping reads in one only adds two round trips (BEGIN, COMMIT): a quarter of a
    resolution's, and each one a wait for the server process on a loaded host. Autocommit also never rolls
    back, which would make psycopg forget its prepared statements. SQLite keeps its transaction: there it
    costs no round trip and gives the reads one snapshot; so does PostgreSQL set to a stricter isolation.
    """
    if dialect.name == "postgresql" and dialect.default_isolation_level == "READ COMMITTED":
        return {"isolation_level": "AUTOCOMMIT"}
    return {}


def _configure_sqlite(engine: Engine) -> None:
    """Cascades need `foreign_keys`; WAL lets runtimes read while we write; we issue BEGIN ourselves.

    The sqlite3 module's legacy mode starts transactions only at the first write, so reads before it would
    escape the transaction and two writers could deadlock upgrading their locks. Writers take the lock with
    BEGIN IMMEDIATE and wait up to the busy timeout instead.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            _switch_to_wal(cursor)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        writes = connection.get_execution_options().get(WRITE_TRANSACTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def _switch_to_wal(cursor: Any) -> None:
    """Enable WAL once per database file; retried because SQLite does not wait on the lock this switch takes.

    Two processes creating the same new database both try the switch; the loser gets "database is locked" at
    once rather than after the busy timeout, then finds the file already in WAL mode.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _driver_message(err: sa_exc.DBAPIError, url: URL) -> str:
    text = " ".join(line.strip() for line in str(err.orig).strip().splitlines() if line.strip())
    if url.password:
        text = text.replace(str(url.password), "***")
    return text or type(err.orig).__name__


def _is_unique_violation(err: sa_exc.IntegrityError) -> bool:
    if getattr(err.orig, "sqlstate", None) == "23505":
        return True
    return str(err.orig).startswith("UNIQUE constraint failed")


def _is_lock_wait_over(err: sa_exc.OperationalError) -> bool:
    """SQLite gave up after its busy timeout, or PostgreSQL after the write transaction's `lock_timeout`."""
    if getattr(err.orig, "sqlstate", None) == "55P03":
        return True
    return isinstance(err.orig, sqlite3.OperationalError) and str(err.orig) in (
        "database is locked",
        "database is busy",
    )


@contextmanager
def translated_errors(url: URL) -> Iterator[None]:
    """Turn driver exceptions into the domain tree: unreachable → retryable, refused writes → permanent."""
    try:
        yield
    except sa_exc.IntegrityError as err:
        message = _driver_message(err, url)
        if _is_unique_violation(err):
            raise DuplicateRow(f"the registry already has this row: {message}") from err
        raise RegistryRejected(f"the registry refused the write: {message}") from err
    except sa_exc.DataError as err:
        raise RegistryRejected(f"the registry refused a value: {_driver_message(err, url)}") from err
    except sa_exc.OperationalError as err:
        if _is_lock_wait_over(err):
            raise RegistryBusy(
                f"registry {masked_url(url)} is busy: another process has been writing to it for over "
                f"{SQLITE_BUSY_TIMEOUT_MS // 1000}s; nothing was written, run again when it has finished"
            ) from err
        raise RegistryUnavailable(f"registry {masked_url(url)} is unavailable: {_driver_message(err, url)}") from err
    except sa_exc.InterfaceError as err:
        raise RegistryUnavailable(f"registry {masked_url(url)} is unavailable: {_driver_message(err, url)}") from err
    except (sa_exc.DisconnectionError, sa_exc.TimeoutError) as err:
        raise RegistryUnavailable(f"registry {masked_url(url)} is unavailable: {type(err).__name__}") from err
    except sa_exc.DatabaseError as err:
        # What is left of SQLite's DatabaseError once the subclasses above are taken: "file is not a database",
        # "database disk image is malformed". Other drivers' errors stay as they are: they are bugs to see.
        if type(err.orig) is not sqlite3.DatabaseError:
            raise
        raise NotARegistry(
            f"registry {masked_url(url)} is not a registry database ({_driver_message(err, url)})"
        ) from err


class StatementCounter:
    """Counts executed statements by leading verb (SELECT, INSERT, ...): one per execute() call.

    An executemany, or an INSERT that SQLAlchemy splits into several multi-row batches, runs under one
    execution context and counts once, so counts measure the statements the code asked for, not driver
    detail. Transaction control (BEGIN ...) is left out.
    """

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._last_context: weakref.ref[Any] | None = None

    def attach(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._on_cursor_execute)

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def _on_cursor_execute(
        self,
        _connection: sa.Connection,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        context: Any,
        _executemany: bool,
    ) -> None:
        with self._lock:
            if context is not None:
                if self._last_context is not None and self._last_context() is context:
                    return
                self._last_context = weakref.ref(context)
            words = statement.split(None, 1)
            verb = words[0].upper() if words else ""
            if verb not in _TRANSACTION_CONTROL:
                self._counts[verb] += 1
