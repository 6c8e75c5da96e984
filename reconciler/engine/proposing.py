"""Dry-run plans of proposed manifests: what the agent-facing endpoint's `plan` tool answers.

The driver that starts the endpoint (the CLI's `serve-mcp`) builds a `DryRunPlanner` from its YAML loader and
injects it into `reconciler.runtime`, which imports neither the engine nor the manifests loader. The plan is
built from the engine's pure steps and a read of the registry, so it issues no INSERT/UPDATE/DELETE even on a
registry that has no fingerprint key yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.engine.desired import build_desired, with_stored_fingerprints
from reconciler.engine.inputs import DesiredInput, StaticSecrets
from reconciler.engine.planning import Action, Plan, Verb
from reconciler.engine.steps.passing import EngineSettings
from reconciler.engine.steps.plan import plan_for
from reconciler.engine.validation import validate
from reconciler.registry import Registry

NO_FINGERPRINT_KEY = b""
"""What a dry run builds rows with: it reads no secret value, so no fingerprint is ever computed."""
SECRETS_NOT_COMPARED = (
    "Secret data in the manifests was not compared: this endpoint never checks secret values, so credentials show "
    "as changed only when their Secret reference changes"
)

ManifestLoader = Callable[[str], DesiredInput]
"""Parses YAML text (one or more documents) into what the engine plans from; supplied by the driver."""


@dataclass(frozen=True)
class DryRunPlanner:
    """YAML text in, the plan's JSON out: the `plan` tool's whole answer, over whichever registry is open."""

    load_manifests: ManifestLoader
    manager: str

    def __call__(self, registry: Registry, manifests: str, *, prune: bool) -> dict[str, Any]:
        desired = self.load_manifests(manifests)
        return plan_json(dry_run_plan(registry, desired, manager=self.manager, prune=prune), desired.warnings)


def dry_run_plan(registry: Registry, desired: DesiredInput, *, manager: str, prune: bool) -> Plan:
    """`reconcile(..., dry_run=True)` that writes nothing and never looks at submitted Secret values.

    Comparing a submitted value's fingerprint with the stored one would answer "is this the stored secret?"
    to anyone holding the endpoint's token, so no submitted value is read: each secret part keeps the stored
    fingerprint while its reference is unchanged and has none when the reference is new. With no value read
    no fingerprint key is used either, so a registry without one stays without one.
    """
    validate(desired)
    blind = dataclasses.replace(desired, secrets=StaticSecrets())
    objects = build_desired(blind, fingerprint_key=NO_FINGERPRINT_KEY, manager=manager)
    observed = registry.fetch_state()
    objects = with_stored_fingerprints(objects, observed)
    tenants = {obj.tenant.slug for obj in objects}
    settings = EngineSettings(manager=manager, prune=prune)
    plan = plan_for(objects, observed=observed, settings=settings, prune_tenants=tenants if prune else None)
    if desired.secrets.values:
        plan = dataclasses.replace(plan, warnings=(*plan.warnings, SECRETS_NOT_COMPARED))
    return plan


def plan_json(plan: Plan, warnings: Sequence[str] = ()) -> dict[str, Any]:
    """Every action but no-ops, with field-level diffs (values are references and fingerprints, never secrets)."""
    return {
        "changes": plan.has_changes,
        "counts": dict(sorted(plan.counts().items())),
        "actions": [_action_json(action) for action in plan.actions if action.verb is not Verb.NOOP],
        "warnings": [*warnings, *plan.warnings],
    }


def _action_json(action: Action) -> dict[str, Any]:
    table, tenant, name = action.key
    source = action.source
    return {
        "verb": str(action.verb),
        "table": table,
        "tenant": tenant,
        "name": name,
        "object": None if source is None else f"{source.kind} {source.namespace}/{source.name}",
        "message": action.message,
        "changes": [{"path": c.path, "before": c.before, "after": c.after} for c in action.changes],
    }
