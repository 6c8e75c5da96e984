"""Write a plan to the registry inside one transaction: rows, audit entries, nothing half-done.

Called by the reconcile loop with an open `RegistryTransaction`; the caller commits. Idempotent by
construction: the plan was computed against the rows it now changes, and a rerun plans `noop`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.engine.planning import Action, Plan, Verb
from reconciler.registry import RegistryTransaction
from reconciler.registry.records import AuditEntry, Record, RowKey, TenantRecord


def apply_plan(
    tx: RegistryTransaction,
    plan: Plan,
    *,
    tenants: Iterable[TenantRecord],
    actor: str,
) -> dict[RowKey, int]:
    """Apply every writing action; returns the row id of every desired row (created or existing)."""
    tx.ensure_tenants(tenants)
    creates = [action.desired for action in plan.actions if action.verb is Verb.CREATE and action.desired]
    rewrites: list[Record] = []
    for action in plan.actions:
        if action.verb in (Verb.UPDATE, Verb.REPAIR, Verb.ADOPT) and action.desired and action.observed:
            rewrites.append(action.desired.with_row_id(action.observed.row_id))
    row_ids = tx.insert(creates) if creates else {}
    if rewrites:
        tx.update(rewrites)
    deletes = [action.key for action in plan.actions if action.verb is Verb.DELETE]
    if deletes:
        tx.delete(deletes)
    orphans = [action.key for action in plan.actions if action.verb is Verb.ORPHAN]
    if orphans:
        tx.release(orphans)
    entries = [audit_entry(action, actor=actor) for action in plan.actions if action.writes]
    if entries:
        tx.audit(entries)
    for action in plan.actions:
        if action.observed is not None and action.observed.row_id is not None and action.key not in row_ids:
            row_ids[action.key] = action.observed.row_id
    return row_ids


def audit_entry(action: Action, *, actor: str) -> AuditEntry:
    """The audit row for one action; rows hold only references and fingerprints, so the diff is already masked."""
    diff: dict[str, Any]
    if action.verb is Verb.CREATE and action.desired is not None:
        diff = {"after": action.desired.content()}
    elif action.verb is Verb.DELETE and action.observed is not None:
        diff = {"before": action.observed.content()}
    else:
        diff = {"changes": [{"path": c.path, "before": c.before, "after": c.after} for c in action.changes]}
    table, tenant, name = action.key
    return AuditEntry(
        action=str(action.verb),
        table=table,
        tenant=tenant,
        name=name,
        actor=actor,
        diff=diff,
        source=action.source,
        message=action.message,
    )
