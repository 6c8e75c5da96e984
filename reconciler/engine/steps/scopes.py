"""The two scopes: what one pass covers and how it treats the rest, one per driver.

`WholeSource` (the CLI's): the input is the whole desired state. Every object is reconciled, rows of objects gone
from it are pruned (unless the settings say not to), an input already reconciled with nothing moved since is
answered from the fast path's marker, and a pass that finds another writer's changes starts again, a bounded
number of times. `ObjectScope` (the operator's): only the objects of one batch are reconciled (with the companions
they need, `observe.discovery_companions`); nothing is pruned (deletion goes through the finalizer,
`removing.remove_object`), and a concurrent change or a referenced row still missing goes back to the operator as
a retryable error. Each scope brings its status sink (`sinks.py`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from reconciler.engine.desired import DesiredObject
from reconciler.engine.fastpath import desired_tenants, input_digest, probes_due, restrict_to_tenants, tenants_to_read
from reconciler.engine.planning import Plan, rows_consulted
from reconciler.engine.steps.passing import EngineSettings, Pass, ReconcileReport
from reconciler.engine.steps.sinks import ClusterStatuses, RegistryCopies
from reconciler.errors import DependencyPending, MissingReference
from reconciler.registry import Registry, RegistryTransaction
from reconciler.registry.errors import ConcurrentChange, RegistryBusy
from reconciler.registry.records import RowSelection, SourceRef

CONCURRENT_ATTEMPTS = 3
"""Passes a whole-source reconcile tries when another writer keeps changing the registry under it, before
reporting it busy."""


@dataclass(frozen=True)
class WholeSource:
    """CLI mode: the folder is everything; see the module docstring."""

    def status_sink(self, *, now: dt.datetime) -> RegistryCopies:
        return RegistryCopies(now=now)

    def narrow(self, current: Pass, registry: Registry) -> None:
        """The fast path: an input reconciled before, with no probe due, is not planned again when its digest and
        the registry's change stamp are those the last clean pass recorded; when only some tenants' rows moved
        since, only those are read and planned."""
        desired, settings, probe = current.desired, current.settings, current.probe
        current.digest = input_digest(
            desired, key=registry.fingerprint_key(), manager=settings.manager, prune=settings.prune
        )
        current.stamp_before, marker = registry.fetch_applied_marker(settings.manager)
        current.had_marker = marker is not None
        if marker is None or current.stamp_before is None or marker[1] != current.digest:
            return
        if probe is not None and (probe.force or probes_due(desired, registry.fetch_probe_states(), now=current.now)):
            return
        if marker[0] == current.stamp_before:
            plan = Plan(actions=(), unchanged=len(desired.resources))
            current.finish(ReconcileReport(plan=plan, applied=not current.dry_run, warnings=list(desired.warnings)))
            return
        # Rows moved since the input was last reconciled: read and plan only the tenants they moved in.
        moved = tenants_to_read(registry.fetch_tenant_stamps(), since=marker[0], wanted=desired_tenants(desired))
        if moved is not None:
            current.read_tenants = moved
            current.desired, current.skipped = restrict_to_tenants(desired, moved)

    def select(
        self, objects: Sequence[DesiredObject], *, tenants: frozenset[str] | None
    ) -> tuple[list[DesiredObject], frozenset[str] | None]:
        return list(objects), tenants

    def rows(self, everything: Sequence[DesiredObject]) -> RowSelection | None:
        """Every row of the tenants read: the pass plans them all (and may prune)."""
        return None

    def prunes(self, settings: EngineSettings) -> bool:
        return settings.prune

    def missing_reference(self, error: MissingReference) -> NoReturn:
        raise error

    def concurrent_change(self, error: ConcurrentChange, *, attempt: int) -> None:
        """Observe and plan again rather than write a stale plan, up to `CONCURRENT_ATTEMPTS` passes."""
        if attempt >= CONCURRENT_ATTEMPTS:
            raise RegistryBusy(
                f"the registry is busy: other processes changed it {attempt} times while this run was "
                "planning; run it again"
            ) from error

    def remember(self, transaction: RegistryTransaction, current: Pass, *, stamp: int | None) -> None:
        """Remember this input as reconciled only if no other writer touched the rows between the observation
        and now (each transaction held the write lock), and a rerun would have nothing to report."""
        if (
            current.digest is not None
            and current.stamp_before is not None
            and current.stamp_locked == current.stamp_before
            and stamp == current.stamp_applied
            and stamp is not None
            and current.plan.clean
        ):
            transaction.record_applied(current.settings.manager, stamp=stamp, digest=current.digest)
        elif current.had_marker:
            # This run's outcome (statuses included) is not what the old marker vouches for.
            transaction.forget_applied(current.settings.manager)


WHOLE_SOURCE = WholeSource()


@dataclass(frozen=True)
class ObjectScope:
    """Operator mode: reconcile only `targets`; generations and previous statuses come from the API server.

    Nothing is pruned (deletion goes through `remove_object`) and the registry's copy of resources is not
    written: the status subresource is the record.
    """

    targets: frozenset[SourceRef]
    generations: Mapping[SourceRef, int | None] = field(default_factory=dict)
    statuses: Mapping[SourceRef, Mapping[str, Any] | None] = field(default_factory=dict)

    def status_sink(self, *, now: dt.datetime) -> ClusterStatuses:
        return ClusterStatuses(generations=self.generations, statuses=self.statuses)

    def narrow(self, current: Pass, registry: Registry) -> None:
        return None  # the operator's own resync decides when an object is reconciled again

    def select(
        self, objects: Sequence[DesiredObject], *, tenants: frozenset[str] | None
    ) -> tuple[list[DesiredObject], frozenset[str] | None]:
        """All of the input is validated (references must resolve), but only the targets are reconciled; nothing
        is pruned, so rows of other tenants cannot matter and are not read."""
        targets = [obj for obj in objects if obj.source in self.targets]
        return targets, frozenset(obj.tenant.slug for obj in targets)

    def rows(self, everything: Sequence[DesiredObject]) -> RowSelection | None:
        """Only the rows planning consults for the input (targets, companions and what they reference): with
        nothing pruned, a pass over a few objects never needs the rest of their tenants' rows, and reading them made
        each pass of a big fleet cost the fleet's size."""
        return rows_consulted(obj.record for obj in everything)

    def prunes(self, settings: EngineSettings) -> bool:
        return False

    def missing_reference(self, error: MissingReference) -> NoReturn:
        # Validation found every referenced object in the namespace; only its row is missing: its pass is
        # still to come (or failed on its own account, which its status says).
        raise DependencyPending(f"waiting for referenced objects to be registered: {error}", delay=2.0) from error

    def concurrent_change(self, error: ConcurrentChange, *, attempt: int) -> None:
        """The operator's own retry (with its delay) observes and plans again."""
        raise error

    def remember(self, transaction: RegistryTransaction, current: Pass, *, stamp: int | None) -> None:
        return None  # no fast path to feed
