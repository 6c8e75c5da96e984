"""The registry's own record types: what the engine writes and what it reads back.

Deliberately not the CR models, so the database schema and the CRDs evolve apart. The engine builds
desired records from resources; `Registry.fetch_state` returns observed records of the same types, and
`content()` is what both sides compare. Secret values never appear here: only references
(`<namespace>/<secret>#<key>`) and keyed fingerprints.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Self, TypeVar, overload

import orjson

from reconciler.records import ToolRecord as ToolRecord  # re-exported: its home before it moved down
from reconciler.records import UserTokenRecord as UserTokenRecord  # re-exported: the credentials package refreshes
from reconciler.registry.managers import DEFAULT_MANAGER as DEFAULT_MANAGER  # re-exported: its home before managers.py

FINGERPRINT_KEY_BYTES = 32
"""Length of the random key that fingerprints secrets (stored hex-encoded in `registry_meta`)."""

Table = Literal["servers", "connections", "grants", "bindings"]
TABLES: tuple[Table, ...] = ("servers", "connections", "grants", "bindings")
# Kind of the resource that produces rows in each table.
KIND_OF_TABLE: dict[Table, str] = {
    "servers": "MCPServer",
    "connections": "MCPConnection",
    "grants": "MCPAccessGrant",
    "bindings": "MCPTemplateBinding",
}
TABLE_OF_KIND: dict[str, Table] = {kind: table for table, kind in KIND_OF_TABLE.items()}


@dataclass(frozen=True)
class SourceRef:
    """The object that manages a row."""

    kind: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Ownership:
    """Who manages a row; `manager is None` means a row somebody created by hand (never touched)."""

    manager: str | None = None
    source: SourceRef | None = None
    spec_hash: str | None = None
    deletion_policy: Literal["Delete", "Orphan"] = "Delete"


@dataclass(frozen=True)
class HeaderRecord:
    """A header as stored: a literal value or a secret reference + fingerprint."""

    name: str
    value: str | None = None
    secret_ref: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class MemberHeaderRecord:
    """A header of a per-member connection whose value is the member's stored value under `key`."""

    name: str
    key: str


T = TypeVar("T")


class computed_once(Generic[T]):
    """`functools.cached_property` without the lock its first read takes on Python 3.11 (a cold apply reads several
    on each of 10,000 objects): the value goes into the instance's `__dict__` (also of a frozen dataclass), where
    later reads find it before this descriptor. Computing it twice in a race is harmless for the pure values it
    serves."""

    def __init__(self, compute: Callable[[Any], T]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...
    def __get__(self, instance: object | None, owner: type | None = None) -> T | Self:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


@dataclass(frozen=True)
class RecordBase:
    tenant: str
    name: str
    ownership: Ownership = field(default=Ownership(), compare=False)
    row_id: int | None = field(default=None, compare=False)

    def content(self) -> dict[str, Any]:
        """The spec-derived columns, as plain JSON-able data (what planning compares and hashes).

        Built once per record and shared by the hash, planning and the audit row: read it, never change it.
        """
        return self._content

    def content_hash(self) -> str:
        return self._hash

    def owned(self, ownership: Ownership) -> Self:
        """The same row under `ownership`; its content and hash, which ownership is no part of, carry over."""
        return self._copy_with("ownership", ownership)

    def with_row_id(self, row_id: int | None) -> Self:
        """The same row with the id of the row it rewrites; its content and hash carry over."""
        return self._copy_with("row_id", row_id)

    def _copy_with(self, name: str, value: object) -> Self:
        """A shallow copy with one field that is no part of the content changed, cached content and hash included.

        What `dataclasses.replace` gives, without running the frozen `__init__` again (a cold apply copies
        10,000 records to own them): records have no `__post_init__`, and every field sits in `__dict__`.
        """
        copy = object.__new__(type(self))
        attributes = copy.__dict__
        attributes.update(self.__dict__)
        attributes[name] = value
        return copy

    @computed_once
    def _content(self) -> dict[str, Any]:
        # Records are immutable, so their content is built once per instance: a cold apply of 10,000 rows would
        # otherwise build it twice, once to hash and once for the audit row.
        return self._build_content()

    @computed_once
    def _hash(self) -> str:
        # Likewise the hash (10,000 rows per resync).
        return content_hash(self.content())

    def _build_content(self) -> dict[str, Any]:
        values = self.__dict__  # every field sits there (frozen dataclasses without slots)
        scalars = _SCALARS
        return {
            name: value if type(value) in scalars else _plain(value)
            for name in _content_fields(self.__class__.__name__, type(self))
            for value in (values[name],)
        }


_CONTENT_FIELDS: dict[str, tuple[str, ...]] = {}


def _content_fields(name: str, record_type: type) -> tuple[str, ...]:
    found = _CONTENT_FIELDS.get(name)
    if found is None:
        found = _CONTENT_FIELDS[name] = _compute_content_fields(record_type)
    return found


def _compute_content_fields(record_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record_type) if f.name not in ("ownership", "row_id"))


@functools.cache
def _field_names(record_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record_type))


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """JSON-able copy of a value: nested records become dicts, tuples become lists (no deep copies)."""
    kind = type(value)
    if kind in _SCALARS:  # most values: one set lookup instead of the isinstance chain below
        return value
    if kind is tuple:  # the next most: tuples of strings or of nested records
        return [item if type(item) in _SCALARS else _plain(item) for item in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}
    return value


@dataclass(frozen=True)
class ServerRecord(RecordBase):
    display_name: str | None = None
    description: str | None = None
    url: str = ""
    transport: str = "streamable-http"
    enabled: bool = True
    featured: bool = False
    headers: tuple[HeaderRecord, ...] = ()
    auth_type: str = "none"
    auth: dict[str, Any] = field(default_factory=dict)
    """Non-secret auth settings plus `*Ref`/`*Fingerprint` keys for secret parts."""
    owner_kind: str | None = None
    owner_name: str | None = None
    tool_policy: str = "Track"
    approved_hash: str | None = None
    tools_allow: tuple[str, ...] = ()
    tools_deny: tuple[str, ...] = ()
    allow_private: bool = False
    discovery_enabled: bool = True
    discovery_interval_seconds: int = 3600
    discovery_connection: str | None = None


@dataclass(frozen=True)
class ConnectionRecord(RecordBase):
    server: str = ""
    """Name of the server row (same tenant)."""
    scope: str = "platform"
    subject: str | None = None
    credential_mode: str = "shared"
    secret_ref: str | None = None
    fingerprint: str | None = None
    authorization_scheme: str | None = None
    headers: tuple[HeaderRecord, ...] = ()
    active: bool = True
    use_for_discovery: bool = False
    member_headers: tuple[MemberHeaderRecord, ...] = ()
    """Per-member connections: headers whose values are each member's stored values (by key)."""

    def _build_content(self) -> dict[str, Any]:
        # Without member headers a connection hashes as it did before they existed, so upgrading rewrites none.
        content = super()._build_content()
        if not self.member_headers:
            del content["member_headers"]
        return content


@dataclass(frozen=True)
class GrantSubjectRecord:
    kind: str
    name: str | None = None


@dataclass(frozen=True)
class GrantRecord(RecordBase):
    target_server: str | None = None
    target_connection: str | None = None
    subjects: tuple[GrantSubjectRecord, ...] = ()


@dataclass(frozen=True)
class BoundServerRecord:
    server: str
    connection: str | None = None
    tools_allow: tuple[str, ...] = ()
    tools_deny: tuple[str, ...] = ()
    tools_read_only: bool = False
    """Admit only read-only tools (the binding's `tools.readOnly` or the server entry's); pinned servers only."""


@dataclass(frozen=True)
class BindingRecord(RecordBase):
    template: str = ""
    servers: tuple[BoundServerRecord, ...] = ()
    agents: tuple[str, ...] = ()
    """The template's agents the servers are assigned to; empty: every agent of the template."""

    def _build_content(self) -> dict[str, Any]:
        # A binding for every agent hashes as it did before bindings could name agents, so upgrading rewrites none.
        content = super()._build_content()
        if not self.agents:
            del content["agents"]
        # Likewise a server entry without readOnly hashes as it did before readOnly existed.
        for server in content["servers"]:
            if not server["tools_read_only"]:
                del server["tools_read_only"]
        return content


Record = ServerRecord | ConnectionRecord | GrantRecord | BindingRecord
RECORD_TYPES: dict[Table, type[RecordBase]] = {
    "servers": ServerRecord,
    "connections": ConnectionRecord,
    "grants": GrantRecord,
    "bindings": BindingRecord,
}


_TABLE_OF_TYPE: dict[type, Table] = {record_type: table for table, record_type in RECORD_TYPES.items()}


def table_of(record: RecordBase) -> Table:
    table = _TABLE_OF_TYPE.get(type(record))
    if table is None:
        raise TypeError(f"not a registry record: {type(record).__name__}")
    return table


RowKey = tuple[Table, str, str]
"""(table, tenant slug, name): the natural key of every managed row."""


def key_of(record: RecordBase) -> RowKey:
    return (table_of(record), record.tenant, record.name)


def content_hash(data: Any) -> str:
    """A stable hash of JSON-able data (canonical JSON: sorted keys, no whitespace).

    orjson and the stdlib agree on canonical output for the values records hold; the stdlib serialises
    what orjson refuses (integers beyond 64 bits), so the hash never depends on which one ran.
    """
    try:
        encoded = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        encoded = json.dumps(data, sort_keys=True, separators=(",", ":"), default=list, ensure_ascii=False).encode()
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


@dataclass(frozen=True)
class TenantRecord:
    slug: str
    namespace: str


@dataclass
class ObservedState:
    """Rows read from the registry, keyed by their natural key."""

    rows: dict[RowKey, Record] = field(default_factory=dict)
    tenants: dict[str, TenantRecord] = field(default_factory=dict)

    def get(self, key: RowKey) -> Record | None:
        return self.rows.get(key)


@dataclass(frozen=True)
class RowSelection:
    """The rows a pass over a few objects reads, instead of every row of their tenants (`Registry.fetch_state`).

    The rows of `keys` (what the pass writes and what that references), every server row of a tenant with one of
    `server_urls` (planning refuses a second app-owned server at one URL and warns of hand-made duplicates), and
    every server row of the keys' tenants whose auth type is one of `server_auth_types` (the keyId-conflict check
    looks at every key the tenant's JWKS publishes). The engine builds it (`engine.planning.rows_consulted`), so
    what is read follows what planning consults; the registry only reads it."""

    keys: frozenset[RowKey]
    server_urls: frozenset[tuple[str, str]] = frozenset()
    """(tenant, url)."""
    server_auth_types: frozenset[str] = frozenset()

    @property
    def tenants(self) -> frozenset[str]:
        return frozenset(tenant for _, tenant, _ in self.keys) | frozenset(tenant for tenant, _ in self.server_urls)


@dataclass(frozen=True)
class AuditEntry:
    """One audit-log row. `diff` is already masked by the caller: secret parts appear as references only."""

    action: str
    table: str
    tenant: str
    name: str
    actor: str
    diff: dict[str, Any] = field(default_factory=dict)
    source: SourceRef | None = None
    message: str = ""


@dataclass(frozen=True)
class ResourceRecord:
    """A resource as last applied from a folder (CLI mode): what `get -o yaml` prints."""

    kind: str
    namespace: str
    name: str
    tenant: str
    generation: int
    spec_hash: str
    spec: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    uid: str | None = None
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class MemberTokenTally:
    """One server's member tokens counted at a moment (`Registry.tally_member_tokens`): counts only, no member."""

    connected: int = 0
    """Token rows (one per member, and per per-member connection)."""
    expiring: int = 0
    """Not expired yet, but expiring before the horizon the caller gave."""
    needs_reauthorization: int = 0
    """Expired with no refresh token."""
    without_refresh_token: int = 0
    """No refresh token stored."""


@dataclass(frozen=True)
class RefreshableMemberToken:
    """A member token that has a refresh token, with what refreshing it needs from its server's row."""

    token: UserTokenRecord
    server_url: str
    allow_private: bool
    server_auth: dict[str, Any] = field(default_factory=dict)
    """The server row's `auth`: its pre-registered client, whose secret authenticates the refresh."""


@dataclass(frozen=True)
class ToolSnapshotRecord:
    """A server's tool list at one moment, with what the handshake told us."""

    tenant: str
    server: str
    hash: str
    tools: tuple[ToolRecord, ...]
    taken_at: dt.datetime
    protocol_version: str | None = None
    server_info: dict[str, Any] = field(default_factory=dict)
    capabilities: tuple[str, ...] = ()
    cache_scope: str | None = None
    """The server's `cacheScope` for this list (2026-07-28): `private` means it is the probing identity's view.
    None when the server sent no hint."""
    ttl_ms: int | None = None
    """The server's `ttlMs` for this list: how long it said the list stays fresh. None when it sent no hint."""


@dataclass(frozen=True)
class ProbeStateRecord:
    """Probe-owned facts about a server row (not part of the spec content, never planned)."""

    tenant: str
    server: str
    discovery: dict[str, Any] | None = None
    last_test: dict[str, Any] | None = None
    blocked_reason: str | None = None
    """Set when runtimes must not use the server (e.g. an unapproved pinned tool snapshot)."""
    probed_at: dt.datetime | None = None
    list_ttl_ms: int | None = None
    """The `ttlMs` of the tool list this probe fetched; None when the probe failed or the server gave no hint.
    It stretches the wait before the next probe (see `engine.probing.probe_interval`)."""
    tool_risk: tuple[str, ...] = ()
    """High-severity tool changes (`ToolRiskChanged`) standing since the probe that found them, until a later
    listing finds none; a probe that lists nothing keeps them. Read-only bindings trust no hint meanwhile."""
