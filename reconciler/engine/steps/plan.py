"""The plan step: the pass's desired rows against the rows it observed, through the pure `engine/planning.py`.

Called by `reconciling.begin_pass` after `observe`, and (as `plan_for`) by `engine/proposing.py` for the agent
endpoint's dry run. No I/O: the scope decides whether rows missing from the input are pruned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from reconciler.engine.desired import DesiredObject
from reconciler.engine.planning import Plan, PlanOptions, plan_changes
from reconciler.engine.steps.passing import EngineSettings, Pass, ReconcileReport
from reconciler.registry.records import ObservedState


def plan(current: Pass) -> None:
    """Plan the pass; a dry run ends here."""
    assert current.observed is not None, "observe comes first"
    settings = dataclasses.replace(current.settings, prune=current.scope.prunes(current.settings))
    planned = plan_for(current.written, observed=current.observed, settings=settings)
    if current.skipped:
        planned = dataclasses.replace(planned, unchanged=planned.unchanged + current.skipped)
    current.report = ReconcileReport(plan=planned, warnings=list(current.desired.warnings) + list(planned.warnings))
    current.done = current.dry_run


def plan_for(
    objects: list[DesiredObject],
    *,
    observed: ObservedState,
    settings: EngineSettings,
    prune_tenants: Collection[str] | None = None,
) -> Plan:
    """Pure: `objects` against the `observed` rows; `prune_tenants` limits pruning to those tenants' rows."""
    options = PlanOptions(
        manager=settings.manager,
        prune=settings.prune,
        adopt=frozenset(obj.key for obj in objects if obj.adopt),
        observe_only=frozenset(obj.key for obj in objects if obj.observe_only),
        prune_tenants=prune_tenants,
    )
    return plan_changes(((obj.record, obj.source) for obj in objects), observed, options=options)
