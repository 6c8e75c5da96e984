"""The one reconcile loop: validate → build desired rows → observe → plan → apply → report status.

Both drivers call it: the CLI with a folder's worth of resources (pruning what disappeared), the operator
with the objects of one namespace set. Writes happen in a single registry transaction, and only when
something changed: a no-op run issues no INSERT/UPDATE/DELETE at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from reconciler.api import MCPConnection, MCPServer
from reconciler.api.common import dump_spec
from reconciler.api.server import ApiKeyAuth, BearerAuth
from reconciler.engine.applying import apply_plan
from reconciler.engine.desired import DesiredObject, build_desired
from reconciler.errors import InvalidInput, MissingReference
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.planning import Action, Plan, PlanOptions, Verb, plan_changes
from reconciler.engine.status import StatusInputs, build_status
from reconciler.engine.validation import check_references, check_tenant_collisions
from reconciler.registry import Registry
from reconciler.registry.records import (
    DEFAULT_MANAGER,
    ResourceRecord,
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


def reconcile(
    desired: DesiredInput,
    registry: Registry,
    *,
    settings: EngineSettings,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> ReconcileReport:
    """Make the registry match `desired`; with `dry_run` only plan. Raises PermanentError on bad input."""
    now = now or dt.datetime.now(dt.UTC)
    objects = prepare(desired, registry, settings=settings)
    plan = plan_for(objects, registry, settings=settings)
    report = ReconcileReport(plan=plan, warnings=list(desired.warnings) + list(plan.warnings))
    if dry_run:
        return report
    previous = {(r.kind, r.namespace, r.name): r for r in registry.fetch_resources()}
    actions = {action.source: action for action in plan.actions if action.source is not None}
    tenants = {TenantRecord(slug=obj.tenant.slug, namespace=obj.tenant.namespace) for obj in objects}
    with registry.transaction() as tx:
        row_ids = apply_plan(tx, plan, tenants=sorted(tenants, key=lambda t: (t.slug, t.namespace)),
                             actor=settings.manager)
        changed_resources: list[ResourceRecord] = []
        for obj in objects:
            action = actions[obj.source]
            before = previous.get((obj.resource.kind, obj.resource.metadata.namespace, obj.resource.metadata.name))
            # The desired row's hash stands for the spec: it changes exactly when what the spec renders to does.
            spec_hash = obj.record.ownership.spec_hash or obj.record.content_hash()
            generation = 1 if before is None else before.generation + (0 if before.spec_hash == spec_hash else 1)
            status = build_status(
                StatusInputs(
                    obj=obj,
                    action=action,
                    generation=generation,
                    registry_id=row_ids.get(obj.key),
                    previous=before.status if before else None,
                    now=now,
                    extra=_credential_facts(obj),
                )
            )
            meta = obj.resource.metadata
            status_changed = before is None or before.status != status
            unchanged = (
                not status_changed
                and before is not None
                and before.generation == generation
                and before.labels == meta.labels
                and before.annotations == meta.annotations
            )
            report.results.append(ObjectResult(obj, action, generation, status, status_changed))
            if unchanged:
                continue
            record = ResourceRecord(
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
            changed_resources.append(record)
        if changed_resources:
            tx.put_resources(changed_resources)
        gone = [
            (action.source.kind, action.source.namespace, action.source.name)
            for action in report.removals
            if action.source is not None
        ]
        if gone:
            tx.delete_resources(gone)
    report.applied = True
    return report
