"""Row types the registry returns beyond the shared contract in `records.py`.

Returned by `Registry.fetch_audit` and by the OAuth-client accessors the credentials package uses for
dynamically registered clients; kept here so the contract module stays exactly what the engine plans with.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reconciler.records import OAuthClientRecord
from reconciler.registry.records import AuditEntry

__all__ = ["AuditLogRow", "OAuthClientRecord"]


@dataclass(frozen=True)
class AuditLogRow:
    """An audit entry as stored: the entry plus when it was written and its row id (ids grow with time)."""

    id: int
    at: dt.datetime
    entry: AuditEntry
