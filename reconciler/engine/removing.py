"""Removing one object's rows outside a pass: the operator's finalizer calls `remove_object` (through
`reconciling`) when a resource is deleted from the cluster; the CLI prunes through the plan instead.
"""

from __future__ import annotations

import logging

from reconciler.engine.applying import apply_plan
from reconciler.engine.crediting import release_deleted
from reconciler.engine.inputs import StaticSecrets
from reconciler.engine.planning import Action, Plan, Verb
from reconciler.engine.steps.passing import EngineSettings
from reconciler.registry import Registry
from reconciler.registry.records import SourceRef

log = logging.getLogger(__name__)


def remove_object(
    source: SourceRef,
    registry: Registry,
    *,
    settings: EngineSettings,
    deletion_policy: str | None = None,
) -> list[Action]:
    """Delete (or orphan) the rows an object manages, for finalizers; rows already gone are fine.

    `deletion_policy` is the object's current `spec.deletionPolicy` when known (it wins over the policy
    recorded on the row, which may predate the last spec change).
    """
    observed = registry.fetch_state()
    actions: list[Action] = []
    for key, row in observed.rows.items():
        if row.ownership.manager != settings.manager or row.ownership.source != source:
            continue
        policy = deletion_policy or row.ownership.deletion_policy
        verb = Verb.ORPHAN if policy == "Orphan" else Verb.DELETE
        actions.append(Action(verb, key, source, observed=row))
    if not actions:
        return []
    for warning in release_deleted(actions, registry=registry, secrets=StaticSecrets(), settings=settings.network):
        log.warning("%s", warning)
    plan = Plan(actions=tuple(actions))
    with registry.transaction() as tx:
        apply_plan(tx, plan, tenants=(), actor=settings.manager)
    return actions
