"""Registry rows as MCP Registry API (v0.1) `server.json` entries, and the pure paging of a listing.

`registry_api.py` reads the catalog (`Registry.fetch_catalog`), decides who may see what, and calls
`build_entry` / `removed_entry` and `page_entries` here; `mcp-reconciler import` reads such entries back. No I/O.

An entry is the published `server.json` shape (`remotes` with `type`, `url` and headers marked `isSecret` /
`isRequired`, never a value) plus, under the response's `_meta`, the official lifecycle block and our live
facts under `LIVE_META_KEY`: the tool snapshot (count, hash, names), health, last probe and discovered auth.
The registry keeps one version per server: `1.0.<seconds since the epoch of its last change>`, so a change
publishes a newer version and `latest` is always that one. A disabled server (`spec.enabled: false`: registered
but not offered to agents) is published `deprecated`, with a status message saying so, so that a registry that
imported it hears about it (`mcp-reconciler upstream`); only the platform token lists it, since no grant offers it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.api.serverjson import LIVE_META_KEY, OFFICIAL_META_KEY, SCHEMA_URL
from reconciler.registry.catalog import CatalogRow, RemovedServer

DEFAULT_NAME_PREFIX = "local.mcp-reconciler"
DEFAULT_LIMIT = 30
MAX_LIMIT = 100
MAX_DESCRIPTION = 100
MAX_TITLE = 100
REMOTE_TRANSPORTS = ("streamable-http", "sse")
"""Transports `server.json` can describe; a WebSocket server is published without `remotes`."""
PUBLIC_AUTH_SETTINGS = ("scheme", "headerName", "pkce", "scopes", "authUrl", "tokenUrl", "resource", "audience")
"""Auth settings safe to publish: never the `*Ref`/`*Fingerprint` columns or client ids."""
REMOVED_DESCRIPTION = "Removed from this registry."
DISABLED_MESSAGE = "Disabled in {namespace}: registered but not offered to agents."


class InvalidQuery(ValueError):
    """A query parameter the API cannot honour (answered with 400 and this message)."""


@dataclass(frozen=True)
class Query:
    """The listing's query parameters, parsed."""

    cursor: str | None = None
    limit: int = DEFAULT_LIMIT
    search: str | None = None
    updated_since: dt.datetime | None = None
    version: str | None = None
    include_deleted: bool = False


def parse_query(params: Mapping[str, str]) -> Query:
    """`GET /v0.1/servers` parameters → `Query`; `InvalidQuery` names the parameter that is wrong."""
    limit = DEFAULT_LIMIT
    if params.get("limit"):
        try:
            limit = int(params["limit"])
        except ValueError:
            raise InvalidQuery(f"limit must be an integer, got {params['limit']!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidQuery(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    since = None
    if params.get("updated_since"):
        since = parse_timestamp(params["updated_since"], name="updated_since")
    cursor = params.get("cursor") or None
    if cursor is not None:
        decode_cursor(cursor)
    return Query(
        cursor=cursor,
        limit=limit,
        search=params.get("search") or None,
        updated_since=since,
        version=params.get("version") or None,
        include_deleted=parse_flag(params.get("include_deleted"), name="include_deleted"),
    )


def parse_flag(value: str | None, *, name: str) -> bool:
    if value is None or value == "":
        return False
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise InvalidQuery(f"{name} must be true or false, got {value!r}")


def parse_timestamp(value: str, *, name: str) -> dt.datetime:
    """An RFC 3339 date-time with an offset (`Z` or `±hh:mm`), as an aware UTC datetime."""
    try:
        parsed = dt.datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise InvalidQuery(f"{name} must be an RFC 3339 date-time, got {value!r}") from None
    if parsed.tzinfo is None:
        raise InvalidQuery(f"{name} needs a time zone offset (e.g. Z), got {value!r}")
    return parsed.astimezone(dt.UTC)


def registry_name(row_tenant: str, server: str, *, prefix: str = DEFAULT_NAME_PREFIX) -> str:
    """`<prefix>.<tenant>/<server>`: reverse-DNS namespace per tenant, the server's own name after the slash."""
    return f"{prefix}.{row_tenant}/{server}"


def version_of(changed_at: dt.datetime) -> str:
    return f"1.0.{int(changed_at.timestamp())}"


def timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def entry_updated_at(row: CatalogRow) -> dt.datetime:
    """The row's last change, or a newer tool snapshot: new tools are news to a gallery too."""
    if row.snapshot is not None and row.snapshot.taken_at > row.updated_at:
        return row.snapshot.taken_at
    return row.updated_at


def build_entry(row: CatalogRow, *, prefix: str = DEFAULT_NAME_PREFIX) -> dict[str, Any]:
    """One server as a v0.1 `ServerResponse`: `server` (the server.json) and `_meta` (lifecycle, live facts)."""
    server, namespace = row.server, row.tenant.namespace
    updated = entry_updated_at(row)
    detail: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "name": registry_name(row.tenant.slug, server.name, prefix=prefix),
        "description": _clip(server.description or f"MCP server {server.name} of {namespace}", MAX_DESCRIPTION),
        "version": version_of(updated),
    }
    if server.display_name:
        detail["title"] = _clip(server.display_name, MAX_TITLE)
    if server.transport in REMOTE_TRANSPORTS:
        remote: dict[str, Any] = {"type": server.transport, "url": server.url}
        headers = _headers(row)
        if headers:
            remote["headers"] = headers
        detail["remotes"] = [remote]
    official: dict[str, Any] = {"status": "active"}
    if not server.enabled:
        official = {
            "status": "deprecated",
            "statusMessage": DISABLED_MESSAGE.format(namespace=namespace),
            "statusChangedAt": timestamp(row.updated_at),
        }
    official.update(publishedAt=timestamp(row.published_at), updatedAt=timestamp(updated), isLatest=True)
    return {"server": detail, "_meta": {OFFICIAL_META_KEY: official, LIVE_META_KEY: _live_facts(row)}}


def removed_entry(removed: RemovedServer, *, prefix: str = DEFAULT_NAME_PREFIX) -> dict[str, Any]:
    """A server whose row is gone, as a `deleted` entry: its name and when, nothing else survives."""
    return {
        "server": {
            "$schema": SCHEMA_URL,
            "name": registry_name(removed.tenant, removed.name, prefix=prefix),
            "description": REMOVED_DESCRIPTION,
            "version": version_of(removed.removed_at),
        },
        "_meta": {
            OFFICIAL_META_KEY: {
                "status": "deleted",
                "statusMessage": "The server was removed from the registry.",
                "statusChangedAt": timestamp(removed.removed_at),
                "updatedAt": timestamp(removed.removed_at),
                "isLatest": True,
            }
        },
    }


def _headers(row: CatalogRow) -> list[dict[str, Any]]:
    """Headers a client must send, by name only: the server's own and the one its auth type implies."""
    server = row.server
    headers = [
        {"name": header.name, "isRequired": True, "isSecret": header.secret_ref is not None}
        for header in server.headers
    ]
    if server.auth_type == "bearer":
        scheme = server.auth.get("scheme", "Bearer")
        headers.append(
            {
                "name": "Authorization",
                "description": f"{scheme} token",
                "isRequired": True,
                "isSecret": True,
            }
        )
    elif server.auth_type == "apiKey":
        name = str(server.auth.get("headerName", "X-API-Key"))
        headers.append({"name": name, "description": "API key", "isRequired": True, "isSecret": True})
    return headers


def _live_facts(row: CatalogRow) -> dict[str, Any]:
    server, snapshot, probe = row.server, row.snapshot, row.probe
    last_test = dict(probe.last_test or {}) if probe else {}
    auth: dict[str, Any] = {"type": server.auth_type}
    auth.update({key: server.auth[key] for key in PUBLIC_AUTH_SETTINGS if key in server.auth})
    discovery = dict(probe.discovery or {}) if probe else {}
    return {
        "tenant": row.tenant.slug,
        "namespace": row.tenant.namespace,
        "server": server.name,
        "transport": server.transport,
        "featured": server.featured,
        "enabled": server.enabled,
        "tools": None
        if snapshot is None
        else {
            "count": len(snapshot.tools),
            "hash": snapshot.hash,
            "names": [tool.name for tool in snapshot.tools],
            "takenAt": timestamp(snapshot.taken_at),
        },
        "health": {
            "ok": last_test.get("ok") if last_test else None,
            "errorClass": last_test.get("errorClass"),
            "latencyMs": last_test.get("latencyMs"),
            "testedAt": last_test.get("at"),
            "blockedReason": probe.blocked_reason if probe else None,
        },
        "lastProbe": timestamp(probe.probed_at) if probe and probe.probed_at else None,
        "auth": {**auth, "discovered": _discovered(discovery) if discovery else None},
    }


def _discovered(discovery: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("requiresAuth", "recommendedAuthMode", "authorizationServers", "scopesSupported", "resource")
    return {key: discovery[key] for key in keys if key in discovery}


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# -- listing -----------------------------------------------------------------------------------------------------


def entry_name(entry: Mapping[str, Any]) -> str:
    return str(entry["server"]["name"])


def entry_status(entry: Mapping[str, Any]) -> str:
    return str(entry["_meta"][OFFICIAL_META_KEY]["status"])


def page_entries(entries: Sequence[dict[str, Any]], query: Query) -> dict[str, Any]:
    """One page of a listing: filtered, ordered by name, cut after `cursor` and at `limit` (a v0.1 `ServerList`).

    `updated_since` keeps entries updated after it and, as the API says, implies deleted ones are included.
    """
    with_deleted = query.include_deleted or query.updated_since is not None
    chosen = sorted(
        (
            entry
            for entry in entries
            if (with_deleted or entry_status(entry) != "deleted")
            and (query.search is None or query.search.lower() in entry_name(entry).lower())
            and (query.version in (None, "latest") or entry["server"]["version"] == query.version)
            and (query.updated_since is None or _updated_at(entry) > query.updated_since)
        ),
        key=entry_name,
    )
    if query.cursor is not None:
        after = decode_cursor(query.cursor)
        chosen = [entry for entry in chosen if entry_name(entry) > after]
    page = chosen[: query.limit]
    metadata: dict[str, Any] = {"count": len(page)}
    if len(chosen) > len(page):
        metadata["nextCursor"] = encode_cursor(entry_name(page[-1]))
    return {"servers": page, "metadata": metadata}


def _updated_at(entry: Mapping[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(entry["_meta"][OFFICIAL_META_KEY]["updatedAt"])


def encode_cursor(name: str) -> str:
    """Opaque to clients: the last name served, so a page boundary survives inserts and deletes."""
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidQuery(f"cursor {cursor!r} was not issued by this registry") from None
