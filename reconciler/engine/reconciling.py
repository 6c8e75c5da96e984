"""The one reconcile loop: validate → build desired rows → observe → plan → apply → report status.

Both drivers call it: the CLI with a folder's worth of resources (pruning what disappeared), the operator
with the objects of one namespace set. Writes happen in a single registry transaction, and only when
something changed: a no-op run issues no INSERT/UPDATE/DELETE at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.api import MCPConnection, MCPServer
from reconciler.api.common import dump_spec
from reconciler.api.server import ApiKeyAuth, BearerAuth
from reconciler.engine.applying import apply_plan
from reconciler.engine.desired import DesiredObject, build_desired
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.planning import Action, Plan, PlanOptions, Verb, plan_changes
from reconciler.engine.status import StatusInputs, build_status
from reconciler.engine.validation import check_references, check_tenant_collisions
from reconciler.errors import InvalidInput, MissingReference
from reconciler.registry import Registry
from reconciler.registry.records import (
    DEFAULT_MANAGER,
    ResourceRecord,
    SourceRef,
    TenantRecord,
)


@dataclass(frozen=True)
class EngineSettings:
    manager: str = DEFAULT_MANAGER
    prune: bool = True


@dataclass
class ObjectResult:
    obj: DesiredObject
    action: Action
    generation: int
    status: dict[str, Any]
    status_changed: bool


@dataclass
class ReconcileReport:
    plan: Plan
    results: list[ObjectResult] = field(default_factory=list)
    applied: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def removals(self) -> list[Action]:
        return [action for action in self.plan.actions if action.verb in (Verb.DELETE, Verb.ORPHAN)]


def validate(desired: DesiredInput) -> None:
    """Raise MissingReference / InvalidInput for cross-object problems."""
    missing = check_references(desired)
    if missing:
        raise MissingReference(missing)
    collisions = check_tenant_collisions(desired)
    if collisions:
        raise InvalidInput(collisions)


def prepare(desired: DesiredInput, registry: Registry, *, settings: EngineSettings) -> list[DesiredObject]:
    validate(desired)
    return build_desired(desired, fingerprint_key=registry.fingerprint_key(), manager=settings.manager)


def plan_for(
    objects: list[DesiredObject],
    registry: Registry,
    *,
    settings: EngineSettings,
    prune_tenants: Collection[str] | None = None,
) -> Plan:
    observed = registry.fetch_state()
    options = PlanOptions(
        manager=settings.manager,
        prune=settings.prune,
        adopt=frozenset(obj.key for obj in objects if obj.adopt),
        observe_only=frozenset(obj.key for obj in objects if obj.observe_only),
        prune_tenants=prune_tenants,
    )
    return plan_changes(((obj.record, obj.source) for obj in objects), observed, options=options)


def _credential_facts(obj: DesiredObject) -> dict[str, Any] | None:
    resource = obj.resource
    if isinstance(resource, MCPServer) and isinstance(resource.spec.auth, BearerAuth | ApiKeyAuth):
        auth = obj.record.auth  # type: ignore[union-attr]
        return {"credentials": {"secretRef": auth.get("secretRef"), "fingerprint": auth.get("secretFingerprint")}}
    if isinstance(resource, MCPConnection) and resource.spec.auth is not None:
        return {"fingerprint": getattr(obj.record, "fingerprint", None)}
    return None


@dataclass(frozen=True)
class ObjectScope:
    """Operator mode: reconcile only `targets`; generations and previous statuses come from the API server.

    Nothing is pruned (deletion goes through `remove_object`) and the registry's copy of resources is not
    written: the status subresource is the record.
    """

    targets: frozenset[SourceRef]
    generations: Mapping[SourceRef, int | None] = field(default_factory=dict)
    statuses: Mapping[SourceRef, Mapping[str, Any] | None] = field(default_factory=dict)


def reconcile(
    desired: DesiredInput,
    registry: Registry,
    *,
    settings: EngineSettings,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    scope: ObjectScope | None = None,
) -> ReconcileReport:
    """Make the registry match `desired`; with `dry_run` only plan. Raises PermanentError on bad input.

    Without a scope every object is reconciled and rows of objects gone from `desired` are pruned (CLI over
    a folder). With a scope, all of `desired` is validated (references must resolve) but only the scoped
    objects are planned and applied (operator).
    """
    now = now or dt.datetime.now(dt.UTC)
    objects = prepare(desired, registry, settings=settings)
    if scope is not None:
        objects = [obj for obj in objects if obj.source in scope.targets]
        settings = dataclasses.replace(settings, prune=False)
    plan = plan_for(objects, registry, settings=settings)
    report = ReconcileReport(plan=plan, warnings=list(desired.warnings) + list(plan.warnings))
    if dry_run:
        return report
    previous = {} if scope is not None else {(r.kind, r.namespace, r.name): r for r in registry.fetch_resources()}
    actions = {action.source: action for action in plan.actions if action.source is not None}
    tenants = {TenantRecord(slug=obj.tenant.slug, namespace=obj.tenant.namespace) for obj in objects}
    with registry.transaction() as tx:
        ordered_tenants = sorted(tenants, key=lambda t: (t.slug, t.namespace))
        row_ids = apply_plan(tx, plan, tenants=ordered_tenants, actor=settings.manager)
        changed_resources: list[ResourceRecord] = []
        for obj in objects:
            action = actions[obj.source]
            meta = obj.resource.metadata
            # The desired row's hash stands for the spec: it changes exactly when what the spec renders to does.
            spec_hash = obj.record.ownership.spec_hash or obj.record.content_hash()
            before = previous.get((obj.resource.kind, meta.namespace, meta.name))
            if scope is not None:
                generation = scope.generations.get(obj.source) or meta.generation or 1
                previous_status = scope.statuses.get(obj.source)
            else:
                generation = 1 if before is None else before.generation + (0 if before.spec_hash == spec_hash else 1)
                previous_status = before.status if before else None
            status = build_status(
                StatusInputs(
                    obj=obj,
                    action=action,
                    generation=generation,
                    registry_id=row_ids.get(obj.key),
                    previous=previous_status,
                    now=now,
                    extra=_credential_facts(obj),
                )
            )
            status_changed = previous_status is None or dict(previous_status) != status
            report.results.append(ObjectResult(obj, action, generation, status, status_changed))
            if scope is not None:
                continue
            unchanged = (
                not status_changed
                and before is not None
                and before.generation == generation
                and before.labels == meta.labels
                and before.annotations == meta.annotations
            )
            if unchanged:
                continue
            changed_resources.append(
                ResourceRecord(
                    kind=obj.resource.kind,
                    namespace=meta.namespace,
                    name=meta.name,
                    tenant=obj.tenant.slug,
                    generation=generation,
                    spec_hash=spec_hash,
                    spec=dump_spec(obj.resource.spec),
                    labels=dict(meta.labels),
                    annotations=dict(meta.annotations),
                    status=status,
                    uid=before.uid if before else None,
                    created_at=before.created_at if before else now,
                )
            )
        if changed_resources:
            tx.put_resources(changed_resources)
        gone = [
            (action.source.kind, action.source.namespace, action.source.name)
            for action in report.removals
            if action.source is not None
        ]
        if gone and scope is None:
            tx.delete_resources(gone)
    report.applied = True
    return report


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
    plan = Plan(actions=tuple(actions))
    with registry.transaction() as tx:
        apply_plan(tx, plan, tenants=(), actor=settings.manager)
    return actions
