"""Upstream lifecycle: servers imported from a Registry API, checked against that registry's `updated_since`.

`mcp-reconciler import --from` records the registry, the name and the version in annotations
(`mcp.reconciler.dev/upstream-*`). `upstream_refs` finds those servers among loaded objects; `UpstreamWatcher`
asks each registry what changed since its last check (one bounded, SSRF-guarded listing per registry, through
`reconciler.probe.registry_client`), and `plan_upstream_findings` (pure) turns the answers into findings:
`UpstreamDeprecated` or `UpstreamDeleted` with the publisher's status message, `UpstreamActive` otherwise.
The CLI's `upstream` command runs one check; a long-running driver calls `UpstreamWatcher.check` at an interval.
A registry that cannot be reached leaves its servers' last findings as they were and is reported as an error.

A finding becomes the server's `Upstream` condition (`upstream_condition`, `with_upstream`): the operator patches it
into the status subresource, the CLI into the copies `apply` keeps in the registry (`record_findings`). Either
writes only when the condition changed, and a pass keeps the condition while the object names its registry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any

from reconciler.api.conditions import ConditionType
from reconciler.api.serverjson import OFFICIAL_META_KEY
from reconciler.engine.statuses import conditions as cond
from reconciler.engine.statuses.lifecycle import Status, replace_condition
from reconciler.errors import ReconcilerError
from reconciler.registry.records import SourceRef

if TYPE_CHECKING:
    from reconciler.registry import Registry

UPSTREAM_REGISTRY = "mcp.reconciler.dev/upstream-registry"
UPSTREAM_NAME = "mcp.reconciler.dev/upstream-name"
UPSTREAM_VERSION = "mcp.reconciler.dev/upstream-version"
DEFAULT_INTERVAL_SECONDS = 3600.0


class UpstreamReason(StrEnum):
    ACTIVE = "UpstreamActive"
    DEPRECATED = "UpstreamDeprecated"
    DELETED = "UpstreamDeleted"


@dataclass(frozen=True)
class UpstreamRef:
    """One server that came from a registry."""

    source: SourceRef
    registry: str
    name: str
    version: str | None = None


@dataclass(frozen=True)
class UpstreamFinding:
    ref: UpstreamRef
    reason: UpstreamReason
    message: str
    latest_version: str | None = None


def records_upstream(annotations: Mapping[str, str] | None) -> bool:
    """Whether an object names the registry it was imported from (and so owns an `Upstream` condition)."""
    marks = annotations or {}
    return bool(marks.get(UPSTREAM_REGISTRY) and marks.get(UPSTREAM_NAME))


def upstream_condition(finding: UpstreamFinding) -> cond.ConditionDict:
    """The `Upstream` condition one finding stands for; pure."""
    if finding.reason is UpstreamReason.DELETED:
        return cond.upstream_deleted(finding.message)
    if finding.reason is UpstreamReason.DEPRECATED:
        return cond.upstream_deprecated(finding.message)
    return cond.upstream_active(finding.message)


def with_upstream(previous: Mapping[str, Any] | None, condition: cond.ConditionDict, *, now: dt.datetime) -> Status:
    """`previous` with its `Upstream` condition set to `condition`; everything else, times included, kept. Pure: a
    status equal to `previous` means there is nothing to write."""
    return replace_condition(previous, condition, now=now)


def kept_upstream(
    previous: Mapping[str, Any] | None, annotations: Mapping[str, str] | None
) -> list[cond.ConditionDict]:
    """What a pass keeps of the upstream check's work: the `Upstream` condition, while the object still names its
    registry (a pass states every other condition afresh; this one only the check can know)."""
    if not records_upstream(annotations):
        return []
    found = cond.find((previous or {}).get("conditions"), ConditionType.UPSTREAM)
    return [cond.bare(found)] if found is not None else []


def record_findings(registry: Registry, findings: Sequence[UpstreamFinding], *, now: dt.datetime) -> int:
    """The CLI's half: each finding as the `Upstream` condition of the copy `apply` stored; returns how many copies
    were written. A copy already saying the same is left alone, and a server `apply` never stored is skipped. The
    condition is merged into the status read in the same transaction, so an `apply` running meanwhile keeps what
    it wrote."""
    written = 0
    for finding in findings:
        source = finding.ref.source
        change = partial(with_upstream, condition=upstream_condition(finding), now=now)
        with registry.transaction() as transaction:
            written += transaction.change_status(source.kind, source.namespace, source.name, change)
    return written


def upstream_refs(objects: Iterable[tuple[SourceRef, Mapping[str, str]]]) -> list[UpstreamRef]:
    """(source, annotations) of loaded MCPServers → the ones that record an upstream registry."""
    refs = []
    for source, marks in objects:
        registry, name = marks.get(UPSTREAM_REGISTRY), marks.get(UPSTREAM_NAME)
        if source.kind == "MCPServer" and registry and name:
            refs.append(UpstreamRef(source, registry, name, marks.get(UPSTREAM_VERSION)))
    return sorted(refs, key=lambda ref: (ref.registry, ref.name, ref.source.namespace, ref.source.name))


def plan_upstream_findings(refs: Sequence[UpstreamRef], changed: Sequence[Any]) -> list[UpstreamFinding]:
    """Findings for `refs` from one registry's changed entries (raw `ServerResponse` JSON); pure.

    A ref with no entry is reported active: the registry listed nothing about it (the watcher keeps every entry
    it has seen, so "nothing" means "never changed since the first full listing").
    """
    latest: dict[str, Mapping[str, Any]] = {}
    for entry in changed:
        server = entry.get("server") if isinstance(entry, Mapping) else None
        if isinstance(server, Mapping) and isinstance(server.get("name"), str):
            latest[server["name"]] = entry
    findings = []
    for ref in refs:
        entry = latest.get(ref.name)
        if entry is None:
            findings.append(
                UpstreamFinding(ref, UpstreamReason.ACTIVE, f"{ref.name} has not changed at {ref.registry}")
            )
            continue
        meta = entry.get("_meta")
        official = meta.get(OFFICIAL_META_KEY, {}) if isinstance(meta, Mapping) else {}
        status = official.get("status", "active") if isinstance(official, Mapping) else "active"
        note = official.get("statusMessage") if isinstance(official, Mapping) else None
        version = entry["server"].get("version")
        if status == "deleted":
            reason, text = UpstreamReason.DELETED, f"{ref.name} was deleted from {ref.registry}"
        elif status == "deprecated":
            reason, text = UpstreamReason.DEPRECATED, f"{ref.name} is deprecated at {ref.registry}"
        else:
            reason, text = UpstreamReason.ACTIVE, f"{ref.name} is active at {ref.registry}"
            if version and ref.version and version != ref.version:
                text += f" (version {version}; imported {ref.version})"
        if note:
            text += f": {note}"
        findings.append(UpstreamFinding(ref, reason, text, latest_version=version))
    return findings


Fetch = Callable[[str, dt.datetime | None], Any]
"""(registry, since) → awaitable list of changed entries: `probe.registry_client.fetch_changes`, bound to settings."""


@dataclass
class UpstreamWatcher:
    """What each registry last said about each server, refreshed at most every `refresh_seconds` per registry.

    The first check of a registry lists everything (deleted entries included); later ones pass `updated_since`
    and fold the changes into what is known, so a server first asked about late still gets its earlier status.
    """

    fetch: Fetch
    refresh_seconds: float = 0.0
    checked: dict[str, dt.datetime] = field(default_factory=dict)
    known: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Registry → server name → its latest entry (raw JSON)."""

    async def check(
        self, refs: Sequence[UpstreamRef], *, now: Callable[[], dt.datetime] | None = None
    ) -> tuple[list[UpstreamFinding], list[str]]:
        """(the finding of every ref whose registry answered at least once, one error per registry that failed)."""
        clock = now or (lambda: dt.datetime.now(dt.UTC))
        errors: list[str] = []
        by_registry: dict[str, list[UpstreamRef]] = {}
        for ref in refs:
            by_registry.setdefault(ref.registry, []).append(ref)
        findings: list[UpstreamFinding] = []
        for registry, group in sorted(by_registry.items()):
            started = clock()
            last = self.checked.get(registry)
            if last is None or (started - last).total_seconds() >= self.refresh_seconds:
                try:
                    changed = await self.fetch(registry, last)
                except ReconcilerError as err:
                    errors.append(str(err))
                else:
                    entries = self.known.setdefault(registry, {})
                    for entry in changed:
                        server = entry.get("server") if isinstance(entry, Mapping) else None
                        if isinstance(server, Mapping) and isinstance(server.get("name"), str):
                            entries[server["name"]] = entry
                    self.checked[registry] = started
            if registry in self.known:
                findings.extend(plan_upstream_findings(group, list(self.known[registry].values())))
        return findings, errors
