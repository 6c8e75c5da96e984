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
from reconciler.engine.crediting import (
    CredentialStep,
    accepted_values,
    before_apply,
    credential_facts,
    pin_accepted,
    prepare_and_probe,
    rotation_status,
)
from reconciler.engine.desired import DesiredObject, build_desired
from reconciler.engine.fastpath import input_digest, probes_due
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.planning import Action, Plan, PlanOptions, Verb, plan_changes
from reconciler.engine.probing import (
    ProbeJob,
    ProbeOptions,
    RecordedProbe,
    build_target,
    connection_records,
    needs_probe,
    probe_status,
    progress_reporter,
    record_probe,
)
from reconciler.engine.status import StatusInputs, build_status
from reconciler.engine.validation import check_references, check_tenant_collisions
from reconciler.errors import DependencyPending, InvalidInput, MissingReference
from reconciler.probe import ProbeResult
from reconciler.registry import Registry
from reconciler.registry.errors import ConcurrentChange, RegistryBusy
from reconciler.registry.records import (
    DEFAULT_MANAGER,
    ResourceRecord,
    SourceRef,
    TenantRecord,
)

CONCURRENT_ATTEMPTS = 3
"""Passes `reconcile` tries when another writer keeps changing the registry under it, before reporting it busy."""


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
    probed: list[tuple[DesiredObject, ProbeResult]] = field(default_factory=list)

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
    tenants: Collection[str] | None = None,
) -> Plan:
    """Plan against the registry's rows; `tenants` limits what is read (and so what can be pruned) to those."""
    observed = registry.fetch_state(tenants=tenants)
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


def _rotation_failed(status: Mapping[str, Any]) -> bool:
    """A held-back rotation is the one status fact that depends on the last run rather than on the rows."""
    return any(condition.get("reason") == "RotationFailed" for condition in status.get("conditions", ()) or ())


def _copy_outdated(before: ResourceRecord, obj: DesiredObject) -> bool:
    """The stored copy `get -o yaml` prints differs from the manifest: labels, annotations, or a spec field that
    renders to no row (a binding's `export`), which the row hash cannot see."""
    meta = obj.resource.metadata
    return (
        before.labels != meta.labels
        or before.annotations != meta.annotations
        or before.spec != dump_spec(obj.resource.spec)
    )


def _resource_record(
    obj: DesiredObject,
    before: ResourceRecord | None,
    spec_hash: str,
    status: dict[str, Any],
    *,
    now: dt.datetime,
    generation: int | None = None,
) -> ResourceRecord:
    """The CLI-mode copy of an applied object, as `get -o yaml` prints it."""
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
class _Reporting:
    """Builds each object's status and the CLI-mode copy to store, once with the rows and again after probing.

    The first pass runs inside the transaction that writes the rows, so rows and copies commit together; the
    second covers only the probed objects and stores a copy only where it differs from what the first stored.
    """

    objects: list[DesiredObject]
    actions: Mapping[SourceRef, Action]
    previous: Mapping[tuple[str, str, str], ResourceRecord]
    scope: ObjectScope | None
    credential_step: CredentialStep
    now: dt.datetime
    stored: dict[tuple[str, str, str], ResourceRecord] = field(default_factory=dict)

    def build(
        self,
        row_ids: Mapping[Any, int],
        probe_states: Mapping[tuple[str, str], Any],
        snapshots: Mapping[tuple[str, str], list[Any]],
        *,
        probed: frozenset[Any],
    ) -> tuple[list[ObjectResult], list[ResourceRecord]]:
        results: list[ObjectResult] = []
        changed_resources: list[ResourceRecord] = []
        scope, now = self.scope, self.now
        for obj in self.objects:
            if probed and obj.key not in probed:
                continue
            action = self.actions[obj.source]
            meta = obj.resource.metadata
            identity = (obj.resource.kind, meta.namespace, meta.name)
            # The desired row's hash stands for the spec: it changes exactly when what the spec renders to does.
            spec_hash = obj.record.ownership.spec_hash or obj.record.content_hash()
            before = self.previous.get(identity)
            if scope is not None:
                generation = scope.generations.get(obj.source) or meta.generation or 1
                previous_status = scope.statuses.get(obj.source)
            else:
                generation = 1 if before is None else before.generation + (0 if before.spec_hash == spec_hash else 1)
                previous_status = before.status if before else None
            if (
                not probed
                and before is not None
                and before.status
                and before.spec_hash == spec_hash
                and action.verb is Verb.NOOP
                and not action.changes
                and not action.message
                and not _rotation_failed(before.status)
            ):
                # Status is a pure function of the row, its hash and probe state: none moved, so neither does it.
                results.append(ObjectResult(obj, action, before.generation, before.status, False))
                if _copy_outdated(before, obj):
                    changed_resources.append(_resource_record(obj, before, spec_hash, before.status, now=now))
                continue
            extra = dict(_credential_facts(obj) or {})
            probe_extra, probe_conditions = probe_status(
                obj, probe_states.get(obj.key[1:]), snapshots.get(obj.key[1:], [])
            )
            if "credentials" in probe_extra and "credentials" in extra:
                probe_extra["credentials"] = {**extra["credentials"], **probe_extra["credentials"]}
            extra.update(probe_extra)
            rotation_extra, rotation_conditions = rotation_status(
                obj, self.credential_step, previous_status, extra.get("credentials"), now=now
            )
            extra.update(rotation_extra)
            probe_conditions = [*probe_conditions, *rotation_conditions]
            status = build_status(
                StatusInputs(
                    obj=obj,
                    action=action,
                    generation=generation,
                    registry_id=row_ids.get(obj.key),
                    previous=previous_status,
                    now=now,
                    extra=extra,
                    extra_conditions=probe_conditions,
                )
            )
            status_changed = previous_status is None or dict(previous_status) != status
            results.append(ObjectResult(obj, action, generation, status, status_changed))
            if scope is not None:
                continue
            stored = self.stored.get(identity, before)
            unchanged = (
                stored is not None
                and dict(stored.status) == status
                and stored.generation == generation
                and not _copy_outdated(stored, obj)
            )
            if unchanged:
                continue
            record = _resource_record(obj, before, spec_hash, status, now=now, generation=generation)
            self.stored[identity] = record
            changed_resources.append(record)
        return results, changed_resources


def reconcile(
    desired: DesiredInput,
    registry: Registry,
    *,
    settings: EngineSettings,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    scope: ObjectScope | None = None,
    probe: ProbeOptions | None = None,
) -> ReconcileReport:
    """Make the registry match `desired`; with `dry_run` only plan. Raises PermanentError on bad input.

    Without a scope every object is reconciled and rows of objects gone from `desired` are pruned (CLI over
    a folder). With a scope, all of `desired` is validated (references must resolve) but only the scoped
    objects are planned and applied (operator).

    A pass that finds the rows changed by another process since it read them is repeated (a bounded number
    of times) so that a stale plan is never written.
    """
    for attempt in range(1, CONCURRENT_ATTEMPTS + 1):
        try:
            return _reconcile_once(
                desired, registry, settings=settings, dry_run=dry_run, now=now, scope=scope, probe=probe
            )
        except ConcurrentChange as error:
            # The CLI observed rows another process then changed: observe and plan again rather than write a
            # stale plan. The operator's own retry (with its delay) does the same for a scope.
            if scope is not None:
                raise
            if attempt == CONCURRENT_ATTEMPTS:
                raise RegistryBusy(
                    f"the registry is busy: other processes changed it {attempt} times while this run was "
                    "planning; run it again"
                ) from error
    raise AssertionError("unreachable")


def _reconcile_once(
    desired: DesiredInput,
    registry: Registry,
    *,
    settings: EngineSettings,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    scope: ObjectScope | None = None,
    probe: ProbeOptions | None = None,
) -> ReconcileReport:
    """One observe → plan → write → probe → report pass; see `reconcile`."""
    now = now or dt.datetime.now(dt.UTC)
    digest = stamp_before = None
    had_marker = False
    if scope is None:
        digest = input_digest(desired, key=registry.fingerprint_key(), manager=settings.manager, prune=settings.prune)
        stamp_before, marker = registry.fetch_applied_marker(settings.manager)
        had_marker = marker is not None
        unchanged = marker is not None and stamp_before is not None and marker == (stamp_before, digest)
        if unchanged and (
            probe is None or (not probe.force and not probes_due(desired, registry.fetch_probe_states(), now=now))
        ):
            plan = Plan(actions=(), unchanged=len(desired.resources))
            return ReconcileReport(plan=plan, applied=not dry_run, warnings=list(desired.warnings))
    objects = prepare(desired, registry, settings=settings)
    read_tenants: frozenset[str] | None = None
    if scope is not None:
        objects = [obj for obj in objects if obj.source in scope.targets]
        settings = dataclasses.replace(settings, prune=False)
        # Nothing is pruned in scope mode, so rows of other tenants cannot matter: do not read them.
        read_tenants = frozenset(obj.tenant.slug for obj in objects)
    plan = plan_for(objects, registry, settings=settings, tenants=read_tenants)
    report = ReconcileReport(plan=plan, warnings=list(desired.warnings) + list(plan.warnings))
    if dry_run:
        return report
    credential_step = CredentialStep()
    if probe is not None:
        # A changed Secret is proven against the live server before any row points at its new fingerprint.
        plan, credential_step = before_apply(
            plan, objects=objects, registry=registry, secrets=desired.secrets, settings=probe.settings
        )
        report.plan = plan
    previous = {} if scope is not None else {(r.kind, r.namespace, r.name): r for r in registry.fetch_resources()}
    actions = {action.source: action for action in plan.actions if action.source is not None}
    tenants = {TenantRecord(slug=obj.tenant.slug, namespace=obj.tenant.namespace) for obj in objects}
    # What the rows looked like before this run's writes: updates keep a server's probe state and snapshots,
    # and a created row has none, so these stand for the state right after the write too.
    probe_states = registry.fetch_probe_states(tenants=read_tenants)
    server_keys = {obj.key[1:] for obj in objects if obj.key[0] == "servers"}
    snapshots = {key: registry.fetch_tool_snapshots(*key) for key in probe_states if key in server_keys}
    reporting = _Reporting(
        objects=objects,
        actions=actions,
        previous=previous,
        scope=scope,
        credential_step=credential_step,
        now=now,
    )
    try:
        with registry.transaction() as tx:
            stamp_locked = tx.lock_change_stamp()
            if scope is None and stamp_before is not None and stamp_locked != stamp_before:
                # Another writer committed since this run observed the rows: its plan may be stale.
                raise ConcurrentChange("another process changed the registry while this run was planning")
            ordered_tenants = sorted(tenants, key=lambda t: (t.slug, t.namespace))
            row_ids = apply_plan(tx, plan, tenants=ordered_tenants, actor=settings.manager)
            stamp_applied = tx.lock_change_stamp()
            # The stored copies and statuses commit with the rows, so a crash never leaves one without the other.
            report.results, written = reporting.build(row_ids, probe_states, snapshots, probed=frozenset())
            if written and scope is None:
                tx.put_resources(written)
            gone = [
                (action.source.kind, action.source.namespace, action.source.name)
                for action in report.removals
                if action.source is not None
            ]
            if gone and scope is None:
                tx.delete_resources(gone)
    except MissingReference as error:
        if scope is None:
            raise
        # Validation found every referenced object in the namespace; only its row is missing: its pass is
        # still to come (or failed on its own account, which its status says).
        raise DependencyPending(f"waiting for referenced objects to be registered: {error}", delay=2.0) from error
    recorded: list[RecordedProbe] = []
    if probe is not None:
        jobs = [
            ProbeJob(obj, build_target(obj, connections=connection_records(objects), secrets=desired.secrets))
            for obj in objects
            if needs_probe(
                obj,
                actions[obj.source],
                probe_states.get(obj.key[1:]),
                now=now,
                force=probe.force or obj.source in probe.forced,
            )
        ]
        results, prepared = prepare_and_probe(
            jobs,
            options=probe,
            registry=registry,
            secrets=desired.secrets,
            states=probe_states,
            step=credential_step,
            on_result=progress_reporter(probe, len(jobs)),
        )
        for job, result in zip(jobs, results, strict=True):
            server_key = job.obj.key[1:]
            item = record_probe(
                job.obj,
                result,
                previous=snapshots.get(server_key, []),
                actor=settings.manager,
                credentials=credential_facts(prepared.get(server_key)),
            )
            recorded.append(item)
            probe_states[server_key] = item.state
            if item.snapshot is not None and (
                not snapshots.get(server_key) or snapshots[server_key][0].hash != item.snapshot.hash
            ):
                snapshots[server_key] = [item.snapshot, *snapshots.get(server_key, [])][:2]
            elif item.snapshot is not None:
                snapshots[server_key] = [item.snapshot, *snapshots[server_key][1:]]
            report.probed.append((job.obj, result))
    with registry.transaction() as tx:
        stamp_reporting = tx.lock_change_stamp()
        for item in recorded:
            if item.snapshot is not None:
                tx.put_tool_snapshot(item.snapshot)
            tx.put_probe_state(item.state)
        accepted = [
            value
            for obj, result in report.probed
            if result.ok and result.tools is not None
            for value in accepted_values(obj.record, desired.secrets)  # type: ignore[arg-type]
        ]
        accepted += [
            value
            for key, check in credential_step.rotations.items()
            if check.outcome == "verified" and check.action.desired is not None
            for value in accepted_values(check.action.desired, desired.secrets)  # type: ignore[arg-type]
        ]
        pin_accepted(registry, accepted, transaction=tx)
        audits = [item.audit for item in recorded if item.audit is not None]
        if audits:
            tx.audit(audits)
        if report.probed:
            # Only what probing learnt changes now: the statuses of the probed objects.
            probed_now = frozenset(obj.key for obj, _ in report.probed)
            rebuilt, rewritten = reporting.build(row_ids, probe_states, snapshots, probed=probed_now)
            by_source = {result.obj.source: result for result in rebuilt}
            report.results = [by_source.get(result.obj.source, result) for result in report.results]
            if rewritten and scope is None:
                tx.put_resources(rewritten)
        # Remember this input as reconciled only if no other writer touched the rows between our observation
        # and now (each transaction held the write lock), and a rerun would have nothing to report.
        if (
            digest is not None
            and stamp_before is not None
            and stamp_locked == stamp_before
            and stamp_reporting == stamp_applied
            and stamp_reporting is not None
            and plan.clean
        ):
            tx.record_applied(settings.manager, stamp=stamp_reporting, digest=digest)
        elif had_marker:
            # This run's outcome (statuses included) is not what the old marker vouches for.
            tx.forget_applied(settings.manager)
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


@dataclass
class ServerTest:
    """Outcome of Test Connection for one server."""

    obj: DesiredObject
    result: ProbeResult
    recorded: bool
    """False when the server has no registry row of ours yet (apply first): nothing was written."""


def test_server(
    desired: DesiredInput,
    registry: Registry,
    *,
    source: SourceRef,
    settings: EngineSettings,
    probe: ProbeOptions,
    now: dt.datetime | None = None,
) -> ServerTest:
    """Probe one server now and record the result as its last test; registry rows are not changed."""
    from reconciler.errors import PermanentError

    now = now or dt.datetime.now(dt.UTC)
    objects = prepare(desired, registry, settings=settings)
    obj = next((candidate for candidate in objects if candidate.source == source), None)
    if obj is None or not isinstance(obj.resource, MCPServer):
        raise PermanentError(f"MCPServer {source.namespace}/{source.name} is not in the manifests")
    target = build_target(obj, connections=connection_records(objects), secrets=desired.secrets)
    server_key = obj.key[1:]
    states = registry.fetch_probe_states(tenants=[obj.tenant.slug])
    # The same step `apply` uses, so OAuth servers are tested with a minted token, not anonymously.
    (result,), prepared = prepare_and_probe(
        [ProbeJob(obj, target)],
        options=dataclasses.replace(probe, force=True),
        registry=registry,
        secrets=desired.secrets,
        states=states,
        step=CredentialStep(),
    )
    row = registry.fetch_state(tenants=[obj.tenant.slug]).rows.get(obj.key)
    owned = row is not None and row.ownership.manager == settings.manager and row.ownership.source == source
    if not owned or row is None:
        return ServerTest(obj, result, recorded=False)
    snapshots = registry.fetch_tool_snapshots(*server_key)
    item = record_probe(
        obj,
        result,
        previous=snapshots,
        actor=settings.manager,
        credentials=credential_facts(prepared.get(server_key)),
    )
    if item.snapshot is not None:
        snapshots = [item.snapshot, *(s for s in snapshots if s.hash != item.snapshot.hash)][:2]
    stored = registry.fetch_resources(kind="MCPServer", namespace=source.namespace, name=source.name)
    with registry.transaction() as tx:
        if item.snapshot is not None:
            tx.put_tool_snapshot(item.snapshot)
        tx.put_probe_state(item.state)
        if item.audit is not None:
            tx.audit([item.audit])
        if stored:
            extra = dict(_credential_facts(obj) or {})
            probe_extra, probe_conditions = probe_status(obj, item.state, snapshots)
            extra.update(probe_extra)
            status = build_status(
                StatusInputs(
                    obj=obj,
                    action=Action(Verb.NOOP, obj.key, source, desired=obj.record, observed=row),
                    generation=stored[0].generation,
                    registry_id=row.row_id,
                    previous=stored[0].status,
                    now=now,
                    extra=extra,
                    extra_conditions=probe_conditions,
                )
            )
            tx.put_status(source.kind, source.namespace, source.name, status)
    return ServerTest(obj, result, recorded=True)
