"""The probe step's decisions: which servers to probe, and what a result records and how it reads in status.

Called by `steps/probe.py` (which servers are due), `steps/report.py` (results → records and status) and
`server_testing.py`. The decisions are pure (the status a probe leaves is built by `engine.statuses.probes`); the
network I/O happens in `steps/probe.py`'s `probe_pass` (and `crediting.prepare_credentials` for OAuth). A server
is probed when its row changed, when it was never probed, when its last probe is older than its probe interval
(`spec.discovery.interval`, stretched by the `ttlMs` a 2026-07-28 server gave its tool list: `probe_interval`),
when its minted token is due for refresh, or when
forced; otherwise the stored results are reported again unchanged, so an idle resync writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler.api import MCPConnection, MCPServer
from reconciler.api.times import format_time, parse_time
from reconciler.credentials import (
    CredentialFailure,
    PreparedCredentials,
    ResolvedHeaders,
    add_connection_credential,
    add_server_credential,
    add_stored_headers,
)
from reconciler.credentials.tokens import DEFAULT_REFRESH_AT
from reconciler.engine.desired import DesiredObject
from reconciler.engine.inputs import SecretSource
from reconciler.engine.planning import Action, Verb
from reconciler.engine.statuses.probes import changes_text
from reconciler.errors import ErrorClass, one_line
from reconciler.probe import HINTS, ProbeSettings, ProbeTarget, diff_tool_risk, diff_tools
from reconciler.registry.records import (
    AuditEntry,
    ConnectionRecord,
    ProbeStateRecord,
    ServerRecord,
    SourceRef,
    ToolSnapshotRecord,
)

if TYPE_CHECKING:
    from reconciler.probe import ProbeResult

logger = logging.getLogger(__name__)

MAX_TTL_SECONDS = 24 * 60 * 60
"""Longest wait a server's `ttlMs` can buy (the SDK's own cap on a cached list, `mcp.client.caching.MAX_TTL_MS`):
a server that claims its list is fresh for a year is still probed, and its health checked, once a day."""
AWAITING_AUTHORIZATION = "awaiting user authorization"
OAUTH_TYPES = ("oauthClientCredentials", "oauthAuthorizationCode")


@dataclass(frozen=True)
class ProbeOptions:
    """How the reconcile loop probes: the probe's own settings, and whether to ignore freshness."""

    settings: ProbeSettings
    force: bool = False
    forced: frozenset[SourceRef] = frozenset()
    """Objects to probe whatever their snapshot's age (the operator's `reconcile-requested-at`)."""
    on_result: Callable[[int, int], None] | None = None
    """Progress callback: (servers done, servers to probe)."""
    client_max_age: dt.timedelta | None = None
    """Re-register dynamically registered clients older than this (besides when their secret expires)."""
    public_url: str | None = None
    """Where the reconciler is reachable (`--public-url`): its OAuth callback and CIMD client id."""


@dataclass(frozen=True)
class ProbeJob:
    obj: DesiredObject
    target: ProbeTarget


def needs_probe(
    obj: DesiredObject,
    action: Action,
    state: ProbeStateRecord | None,
    *,
    now: dt.datetime,
    force: bool,
) -> bool:
    """Pure: is a fresh probe due for this server?"""
    resource = obj.resource
    if not isinstance(resource, MCPServer) or not isinstance(obj.record, ServerRecord):
        return False
    if action.verb is Verb.CONFLICT or obj.observe_only:
        return False  # rows we may not write carry no probe state of ours
    if action.verb is Verb.NOOP and action.observed is None:
        return False
    if force:
        return True
    if not resource.spec.discovery.enabled:
        return False
    if state is None or state.probed_at is None or action.writes:
        return True
    age = (now - state.probed_at).total_seconds()
    return age >= probe_interval(obj.record.discovery_interval_seconds, state) or token_refresh_due(state, now=now)


def probe_interval(interval_seconds: float, state: ProbeStateRecord | None) -> float:
    """Pure: seconds from a server's last probe to its next one.

    `spec.discovery.interval` is the floor. A 2026-07-28 server's `ttlMs` on its last successful listing says how
    long that list stays fresh; a longer one stretches the wait (up to `MAX_TTL_SECONDS`), because probing a list
    the server vouches for cannot find a change. A shorter one does not shorten it: `ttlMs: 0`, the SDK's default
    ("immediately stale"), would otherwise mean a probe on every resync across a whole fleet. A failed probe
    records no `ttlMs`, so a failing server is retried at the interval.
    """
    ttl_ms = state.list_ttl_ms if state is not None else None
    if ttl_ms is None:
        return interval_seconds
    return max(interval_seconds, min(ttl_ms / 1000, MAX_TTL_SECONDS))


def token_refresh_due(
    state: ProbeStateRecord | None, *, now: dt.datetime, refresh_at: float = DEFAULT_REFRESH_AT
) -> bool:
    """Pure: the shared token the reconciler minted for this server has reached its refresh point (a fraction of
    its lifetime, counted from the probe that last used it). Runtimes read that token from the store, so it is
    minted again before it expires, whether or not the tool snapshot is due."""
    if state is None or state.probed_at is None or not state.last_test:
        return False
    credentials = state.last_test.get("credentials")
    expires = parse_time(credentials.get("expiresAt")) if isinstance(credentials, Mapping) else None
    if expires is None:
        return False
    lifetime = max(0.0, (expires - state.probed_at).total_seconds())
    return now >= state.probed_at + dt.timedelta(seconds=lifetime * refresh_at)


def build_target(
    obj: DesiredObject,
    *,
    connections: Mapping[tuple[str, str], ConnectionRecord],
    secrets: SecretSource,
) -> ProbeTarget:
    """The probe request for one server, with its credential headers resolved from the secret source."""
    record = obj.record
    assert isinstance(record, ServerRecord)
    resolved = ResolvedHeaders()
    add_stored_headers(resolved, record.headers, secrets)
    has_credential = record.auth_type in ("none", "bearer", "apiKey")
    add_server_credential(resolved, record.auth_type, record.auth, secrets)
    if record.discovery_connection is not None:
        connection = connections.get((record.tenant, record.discovery_connection))
        if connection is not None:
            add_stored_headers(resolved, connection.headers, secrets)
            add_connection_credential(resolved, connection.secret_ref, connection.authorization_scheme, secrets)
            has_credential = connection.secret_ref is not None or has_credential
    # Without a usable credential (missing Secret, or OAuth the reconciler cannot complete) only discover.
    can_list = has_credential and not resolved.missing
    return ProbeTarget(
        tenant=record.tenant,
        server=record.name,
        url=record.url,
        transport=record.transport,  # type: ignore[arg-type]
        headers=resolved.headers,
        allow_private=record.allow_private,
        discover_auth=True,
        list_tools=can_list,
    )


def credential_outcome(
    obj: DesiredObject,
    result: ProbeResult,
    prepared: PreparedCredentials | CredentialFailure | None,
) -> ProbeResult:
    """Pure: a probe's result as Test Connection and status report it, with the credentials step counted in.

    Without its credential the server is of no use, whatever an anonymous probe saw: a credential the spec
    configures that could not be obtained (an OAuth error such as `invalid_client`, no registration endpoint for
    DCR, a missing Secret) fails the test with class `auth` and the cause in the message. A server that answered
    while its credential waits on a person (authorization code, no member token yet) is reachable, and says so.
    """
    if isinstance(prepared, CredentialFailure):
        error_class: ErrorClass = "internal" if prepared.error_class == "internal" else "auth"
        message = f"credentials: {prepared.message}"
        if not result.ok:
            message += f"; the server itself: {result.error_class} error: {result.message}"
        return dataclasses.replace(
            result, ok=False, error_class=error_class, message=one_line(message), hint=HINTS[error_class]
        )
    if not result.ok or result.tools is not None:
        return result
    if isinstance(prepared, PreparedCredentials) and prepared.list_tools is False:
        members = prepared.connected_members or 0
        said = (
            AWAITING_AUTHORIZATION if members == 0 else f"{members} member(s) authorized; tools are listed with theirs"
        )
        return dataclasses.replace(result, message=said)
    if obj.missing_secrets:
        missing = ", ".join(f"{item.reference} ({item.field})" for item in obj.missing_secrets)
        return dataclasses.replace(
            result, ok=False, error_class="auth", message=f"Secret key not found: {missing}", hint=HINTS["auth"]
        )
    return result


def progress_reporter(options: ProbeOptions, total: int) -> Callable[[ProbeTarget, ProbeResult], None]:
    """Turn the caller's (done, total) progress callback into the probe's per-result callback."""
    done = 0
    report = options.on_result

    def progress(target: ProbeTarget, result: ProbeResult) -> None:
        nonlocal done
        done += 1
        if report is not None:
            report(done, total)

    return progress


@dataclass(frozen=True)
class RecordedProbe:
    """What one probe adds to the registry."""

    state: ProbeStateRecord
    snapshot: ToolSnapshotRecord | None
    audit: AuditEntry | None


def record_probe(
    obj: DesiredObject,
    result: ProbeResult,
    *,
    previous: Sequence[ToolSnapshotRecord],
    actor: str,
    credentials: tuple[Mapping[str, Any] | None, Any] = (None, None),
    standing_risk: Sequence[str] = (),
) -> RecordedProbe:
    """Pure: the snapshot, probe state and audit entry a probe result turns into. A fault in turning one result
    into records is recorded as that server's `internal` failure, so the run goes on for the others.

    `standing_risk` is the high-severity tool changes the last probe state holds: a probe that lists no tools
    keeps them (a server cannot clear a flipped hint by failing a probe); a listing replaces them."""
    try:
        return _record_probe(
            obj, result, previous=previous, actor=actor, credentials=credentials, standing_risk=standing_risk
        )
    except Exception as exc:
        record = obj.record
        assert isinstance(record, ServerRecord)
        logger.error(
            "recording the probe of %s/%s failed inside the reconciler (%s)\n%s",
            record.tenant,
            record.name,
            type(exc).__name__,
            "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
        )
        message = one_line(f"internal error while recording the probe: {type(exc).__name__}: {exc}")
        # Built here, not by `_record_probe` again: the fault may lie in this very server's data.
        last_test = {"ok": False, "errorClass": "internal", "message": message, "hint": HINTS["internal"]}
        last_test |= {"latencyMs": result.latency_ms, "at": format_time(result.at), "toolChanges": {}}
        state = ProbeStateRecord(
            tenant=record.tenant,
            server=record.name,
            discovery=None,
            last_test=last_test,
            probed_at=result.at,
            tool_risk=tuple(standing_risk),
        )
        return RecordedProbe(state=state, snapshot=None, audit=None)


def _record_probe(
    obj: DesiredObject,
    result: ProbeResult,
    *,
    previous: Sequence[ToolSnapshotRecord],
    actor: str,
    credentials: tuple[Mapping[str, Any] | None, Any] = (None, None),
    standing_risk: Sequence[str] = (),
) -> RecordedProbe:
    record = obj.record
    assert isinstance(record, ServerRecord) and isinstance(obj.resource, MCPServer)
    snapshot = None
    changes: dict[str, list[str]] = {}
    tool_risk = tuple(standing_risk)
    if result.ok and result.tools is not None and result.snapshot_hash is not None:
        snapshot = ToolSnapshotRecord(
            tenant=record.tenant,
            server=record.name,
            hash=result.snapshot_hash,
            tools=tuple(result.tools),
            taken_at=result.at,
            protocol_version=result.protocol_version,
            server_info=dict(result.server_info),
            capabilities=tuple(result.capabilities),
            cache_scope=result.cache_scope,
            ttl_ms=result.ttl_ms,
        )
        if previous and previous[0].hash != result.snapshot_hash:
            diff = diff_tools(previous[0].tools, result.tools)
            changes = {"added": diff.added, "removed": diff.removed, "changed": diff.changed}
        # Annotations are outside the hash, so the risk check runs on every listing, changed hash or not.
        risk = diff_tool_risk(previous[0].tools, result.tools) if previous else []
        if risk:
            changes = {**changes, "risk": risk}
        tool_risk = tuple(risk)
    discovery: dict[str, Any] | None = None
    if result.discovery is not None:
        # Only a probe's result gets here: the fast path and a dry run, which import this module for what is due,
        # do not pay for the discovery module's mcp SDK and HTTP client.
        from reconciler.probe import fill_auth_fields

        discovery = dict(result.discovery.as_status())
        auth_spec = obj.resource.spec.auth.model_dump(mode="json", by_alias=True, exclude_none=True)
        _, filled = fill_auth_fields(auth_spec, result.discovery)
        discovery["filledFields"] = filled
        discovery["discoveredAt"] = format_time(result.at)
    last_test: dict[str, Any] = {
        "ok": result.ok,
        "errorClass": result.error_class,
        "message": result.message,
        **({"hint": result.hint} if result.hint and not result.ok else {}),
        **({"challengedScopes": list(result.challenged_scopes)} if result.error_class == "insufficient_scope" else {}),
        "latencyMs": result.latency_ms,
        "at": format_time(result.at),
        "toolChanges": changes,
    }
    facts, failure = credentials
    if facts:
        last_test["credentials"] = dict(facts)
    if failure is not None:
        last_test["credentialFailure"] = {"reason": failure.reason, "message": failure.message}
    latest_hash = snapshot.hash if snapshot else (previous[0].hash if previous else None)
    blocked = None
    if record.tool_policy == "Pin" and latest_hash is not None and latest_hash != record.approved_hash:
        blocked = f"tool snapshot {latest_hash} is not approved: set spec.tools.approvedHash to it"
    state = ProbeStateRecord(
        tenant=record.tenant,
        server=record.name,
        discovery=discovery,
        last_test=last_test,
        blocked_reason=blocked,
        probed_at=result.at,
        list_ttl_ms=result.ttl_ms if snapshot is not None else None,
        tool_risk=tool_risk,
    )
    audit = None
    if changes and any(changes.values()):
        audit = AuditEntry(
            action="tool-risk-changed" if changes.get("risk") else "tools-changed",
            table="servers",
            tenant=record.tenant,
            name=record.name,
            actor=actor,
            diff={"tools": changes, "hash": {"before": previous[0].hash, "after": result.snapshot_hash}},
            source=obj.source,
            message=changes_text(changes),
        )
    return RecordedProbe(state=state, snapshot=snapshot, audit=audit)


def next_probe_at(obj: DesiredObject, state: ProbeStateRecord | None) -> dt.datetime | None:
    """Pure: when the schedule has the next probe of a server (None when it is not probed on a schedule)."""
    resource, record = obj.resource, obj.record
    if state is None or state.probed_at is None or not isinstance(record, ServerRecord):
        return None
    if not isinstance(resource, MCPServer) or not resource.spec.discovery.enabled:
        return None
    return state.probed_at + dt.timedelta(seconds=probe_interval(record.discovery_interval_seconds, state))


def connection_records(objects: Iterable[DesiredObject]) -> dict[tuple[str, str], ConnectionRecord]:
    return {
        (obj.record.tenant, obj.record.name): obj.record
        for obj in objects
        if isinstance(obj.resource, MCPConnection) and isinstance(obj.record, ConnectionRecord)
    }
