"""Row types the registry returns beyond the shared contract in `records.py`.

Returned by `Registry.fetch_audit` and by the OAuth-client accessors the credentials package uses for
dynamically registered clients; kept here so the contract module stays exactly what the engine plans with.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from reconciler.registry.records import AuditEntry


@dataclass(frozen=True)
class AuditLogRow:
    """An audit entry as stored: the entry plus when it was written and its row id (ids grow with time)."""

    id: int
    at: dt.datetime
    entry: AuditEntry


@dataclass(frozen=True)
class OAuthClientRecord:
    """A client registered with an authorization server for one MCP server (RFC 7591 result).

    Secret parts are references (`<namespace>/<secret>#<key>`), never values.
    """

    tenant: str
    server: str
    issuer: str
    client_id: str
    client_secret_ref: str | None = None
    registration_client_uri: str | None = None
    registration_access_token_ref: str | None = None
    token_endpoint_auth_method: str | None = None
    expires_at: dt.datetime | None = None
    created_at: dt.datetime | None = field(default=None, compare=False)
    row_id: int | None = field(default=None, compare=False)
