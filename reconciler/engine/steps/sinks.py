"""The two status sinks: where a pass's statuses come from and where they go, one per driver.

`RegistryCopies` (the CLI's, through `scopes.WholeSource`): the registry's `resources` table holds a copy of each
applied object with its status, as `get -o yaml` prints it; generations count spec changes there; statuses and
copies commit in the same transaction as the rows, and a copy is rewritten only when what it shows changed.
`ClusterStatuses` (the operator's, through `scopes.ObjectScope`): the API server holds generations and statuses;
the sink writes nothing, and the operator patches each status from the pass's results.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.api.common import dump_spec
from reconciler.engine.desired import DesiredObject
from reconciler.engine.planning import Action, Verb
from reconciler.engine.statuses.lifecycle import rotation_held_back
from reconciler.engine.steps.passing import ObjectResult, Pass
from reconciler.registry import Registry, RegistryTransaction
from reconciler.registry.records import ResourceRecord, SourceRef

Identity = tuple[str, str, str]
"""(kind, namespace, name): how the `resources` table names an object."""


def _identity(obj: DesiredObject) -> Identity:
    meta = obj.resource.metadata
    return (obj.resource.kind, meta.namespace, meta.name)


def copy_outdated(before: ResourceRecord, obj: DesiredObject) -> bool:
    """The stored copy `get -o yaml` prints differs from the manifest: labels, annotations, or a spec field that
    renders to no row (a binding's `export`), which the row hash cannot see."""
    meta = obj.resource.metadata
    return (
        before.labels != meta.labels
        or before.annotations != meta.annotations
        or before.spec != dump_spec(obj.resource.spec)
    )


def resource_record(
    obj: DesiredObject,
    before: ResourceRecord | None,
    spec_hash: str,
    status: dict[str, Any],
    *,
    now: dt.datetime,
    generation: int | None = None,
) -> ResourceRecord:
    """The stored copy of an applied object, as `get -o yaml` prints it."""
    meta = obj.resource.metadata
    return ResourceRecord(
        kind=obj.resource.kind,
        namespace=meta.namespace,
        name=meta.name,
        tenant=obj.tenant.slug,
        generation=generation if generation is not None else (before.generation if before else 1),
        spec_hash=spec_hash,
        spec=dump_spec(obj.resource.spec),
        labels=dict(meta.labels),
        annotations=dict(meta.annotations),
        status=status,
        uid=before.uid if before else None,
        created_at=before.created_at if before else now,
    )


@dataclass
class RegistryCopies:
    """The CLI's sink: statuses and stored copies in the registry's `resources` table."""

    now: dt.datetime
    previous: dict[Identity, ResourceRecord] = field(default_factory=dict)
    """The copies as this pass found them."""
    stored: dict[Identity, ResourceRecord] = field(default_factory=dict)
    """The copies this pass wrote or is about to write: what `get` shows once they commit."""
    pending: list[ResourceRecord] = field(default_factory=list)

    def read(self, registry: Registry, *, tenants: frozenset[str] | None) -> None:
        self.previous = {(r.kind, r.namespace, r.name): r for r in registry.fetch_resources(tenants=tenants)}

    def standing(self, obj: DesiredObject, action: Action, *, spec_hash: str, probed: bool) -> ObjectResult | None:
        identity = _identity(obj)
        before = self.previous.get(identity)
        if (
            before is None
            or not before.status
            or before.spec_hash != spec_hash
            or action.verb is not Verb.NOOP
            or action.changes
            or action.message
            or probed
            or rotation_held_back(before.status)
        ):
            return None
        # Status is a pure function of the row, its hash and probe state: none moved, so neither does it.
        if copy_outdated(self.stored.get(identity, before), obj):
            self._stage(identity, resource_record(obj, before, spec_hash, before.status, now=self.now))
        return ObjectResult(obj, action, before.generation, before.status, False)

    def previous_of(self, obj: DesiredObject, *, spec_hash: str) -> tuple[int, Mapping[str, Any] | None]:
        before = self.previous.get(_identity(obj))
        if before is None:
            return 1, None
        return before.generation + (0 if before.spec_hash == spec_hash else 1), before.status

    def keep(self, obj: DesiredObject, *, spec_hash: str, status: dict[str, Any], generation: int) -> None:
        identity = _identity(obj)
        before = self.previous.get(identity)
        stored = self.stored.get(identity, before)  # what `get` shows now: this run's copy, else the one before
        if (
            stored is not None
            and dict(stored.status) == status
            and stored.generation == generation
            and not copy_outdated(stored, obj)
        ):
            return
        self._stage(identity, resource_record(obj, before, spec_hash, status, now=self.now, generation=generation))

    def write_with_rows(self, transaction: RegistryTransaction, current: Pass) -> None:
        """Every status with the rows, and the copies of removed objects deleted."""
        # The report step brings the credentials step with it; a dry run never writes, so never imports them.
        from reconciler.engine.steps.report import build_statuses

        current.report.results = build_statuses(
            current, chosen=frozenset(obj.source for obj in current.objects), probed_now=frozenset()
        )
        self.write_with_results(transaction)
        gone = [_named(action.source) for action in current.report.removals if action.source is not None]
        if gone:
            transaction.delete_resources(gone)

    def write_with_results(self, transaction: RegistryTransaction) -> None:
        if self.pending:
            transaction.put_resources(self.pending)
        self.pending = []

    def _stage(self, identity: Identity, copy: ResourceRecord) -> None:
        self.stored[identity] = copy
        self.pending.append(copy)


def _named(source: SourceRef) -> Identity:
    return (source.kind, source.namespace, source.name)


@dataclass(frozen=True)
class ClusterStatuses:
    """The operator's sink: generations and previous statuses as the API server holds them; nothing is written
    here, because the status subresource is the record (the operator patches it from the results)."""

    generations: Mapping[SourceRef, int | None] = field(default_factory=dict)
    statuses: Mapping[SourceRef, Mapping[str, Any] | None] = field(default_factory=dict)

    def read(self, registry: Registry, *, tenants: frozenset[str] | None) -> None:
        return None

    def standing(self, obj: DesiredObject, action: Action, *, spec_hash: str, probed: bool) -> ObjectResult | None:
        return None  # statuses are rebuilt each pass; the operator patches only what changed

    def previous_of(self, obj: DesiredObject, *, spec_hash: str) -> tuple[int, Mapping[str, Any] | None]:
        return self.generations.get(obj.source) or obj.resource.metadata.generation or 1, self.statuses.get(obj.source)

    def keep(self, obj: DesiredObject, *, spec_hash: str, status: dict[str, Any], generation: int) -> None:
        return None

    def write_with_rows(self, transaction: RegistryTransaction, current: Pass) -> None:
        return None  # statuses wait for the probes: the operator reports each object as soon as it is known

    def write_with_results(self, transaction: RegistryTransaction) -> None:
        return None
