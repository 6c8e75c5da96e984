"""Errors the registry raises, rooted in the engine's two domain roots so drivers need no SQL knowledge.

    PermanentError
    ├── InvalidRegistryUrl      the URL is not a database the registry supports
    ├── IncompatibleRegistry    the database schema is newer than this version knows
    ├── NotARegistry            the SQLite file is corrupt, truncated, empty, or a directory
    └── RegistryRejected        the database refused a write (constraint or value)
        └── DuplicateRow        a row with the same natural key already exists
    RetryableError
    ├── RegistryUnavailable     cannot connect, connection lost, database locked
    │   └── RegistryBusy        another writer held the write lock past our bounded wait
    └── ConcurrentChange        a row changed underneath a write; observe again and re-plan

Missing references raise the engine's `MissingReference`. Driver exceptions are always chained with
`raise ... from`, and messages carry the URL with its password masked, never parameters.
"""

from __future__ import annotations

from reconciler.errors import PermanentError, RetryableError


class InvalidRegistryUrl(PermanentError):
    """The registry URL cannot be used (unparsable or an unsupported database)."""

    reason = "InvalidRegistryUrl"


class IncompatibleRegistry(PermanentError):
    """The database was migrated by a newer version; running older code against it would corrupt it."""

    reason = "IncompatibleRegistry"


class NotARegistry(PermanentError):
    """The registry file cannot hold a registry: not a SQLite database, damaged, empty, or a directory.

    Retrying cannot help and writing into it would be worse, so this is permanent and nothing is created.
    """

    reason = "NotARegistry"


class RegistryRejected(PermanentError):
    """The database refused a write; the same write will fail again."""

    reason = "RegistryRejected"


class DuplicateRow(RegistryRejected):
    """A row with the same natural key exists, or the batch names the same key twice."""

    reason = "Conflict"


class RegistryUnavailable(RetryableError):
    """The database cannot be reached right now."""


class ConcurrentChange(RetryableError):
    """A row the write relied on was changed or removed by someone else since it was observed."""


class RegistryBusy(RegistryUnavailable):
    """Another process held the registry's write lock for longer than the bounded wait, or kept changing the rows
    a run had planned against: the run wrote nothing and can simply be repeated."""
