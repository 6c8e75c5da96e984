"""The apply step: the plan in one registry transaction, then the probe jobs it makes due.

Called by the loop in `reconciling.py` and by the operator on a registry thread. The transaction holds the
registry's write lock: a plan made against rows another writer changed since `observe` read them is refused
(ConcurrentChange), and the sink writes in the same transaction whatever must commit with the rows (the CLI's
statuses and stored copies), so a process killed at any point leaves the old state or the new one.
"""

from __future__ import annotations

from reconciler.engine.applying import apply_plan
from reconciler.engine.steps.passing import Pass
from reconciler.engine.steps.probe import due_jobs
from reconciler.errors import MissingReference
from reconciler.registry import Registry
from reconciler.registry.errors import ConcurrentChange
from reconciler.registry.records import TenantRecord


def apply_pass(current: Pass, registry: Registry) -> None:
    current.actions = {action.source: action for action in current.plan.actions if action.source is not None}
    # Distinct pairs first: one record per tenant, not one per object hashed into a set.
    pairs = {(obj.tenant.slug, obj.tenant.namespace) for obj in current.objects}
    tenants = {TenantRecord(slug=slug, namespace=namespace) for slug, namespace in pairs}
    try:
        with registry.transaction() as tx:
            current.stamp_locked = tx.lock_change_stamp()
            if current.stamp_before is not None and current.stamp_locked != current.stamp_before:
                # Another writer committed since this pass observed the rows: its plan may be stale.
                raise ConcurrentChange("another process changed the registry while this run was planning")
            ordered_tenants = sorted(tenants, key=lambda t: (t.slug, t.namespace))
            current.row_ids = apply_plan(tx, current.plan, tenants=ordered_tenants, actor=current.settings.manager)
            current.stamp_applied = tx.lock_change_stamp()
            current.sink.write_with_rows(tx, current)
    except MissingReference as error:
        current.scope.missing_reference(error)
    current.jobs = due_jobs(current)
