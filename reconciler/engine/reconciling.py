"""The one reconcile loop: validate → build desired rows → observe → plan → apply → probe → report status.

Both drivers call it: the CLI with a folder's worth of resources (pruning what disappeared) through `reconcile`,
the operator with the objects of one namespace set, step by step (`EnginePass`), so that its registry threads
run only the registry steps and probes wait on its event loop. Rows are written in one registry transaction and
results in another, and only when something changed: a no-op run issues no INSERT/UPDATE/DELETE at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from reconciler.api import MCPConnection, MCPServer
from reconciler.api.common import dump_spec
from reconciler.api.server import ApiKeyAuth, BearerAuth
from reconciler.credentials import CredentialFailure, PreparedCredentials
from reconciler.engine.applying import apply_plan
from reconciler.engine.crediting import (
    CredentialStep,
    accepted_values,
    before_apply,
    credential_facts,
    pin_accepted,
    prepare_and_probe,
    prepare_credentials,
    release_deleted,
    rotation_status,
    with_credentials,
)
from reconciler.engine.desired import DesiredObject, build_desired, validate_rendered
from reconciler.engine.fastpath import (
    desired_tenants,
    input_digest,
    probes_due,
    restrict_to_tenants,
    tenants_to_read,
)
from reconciler.engine.inputs import DesiredInput, StaticSecrets
from reconciler.engine.planning import Action, Plan, PlanOptions, Verb, plan_changes
from reconciler.engine.probing import (
    ProbeJob,
    ProbeOptions,
    RecordedProbe,
    build_target,
    connection_records,
    credential_outcome,
    needs_probe,
    probe_status,
    progress_reporter,
    record_probe,
)
from reconciler.engine.status import StatusInputs, build_status
from reconciler.engine.validation import validate as validate  # still importable from here, where it lived
from reconciler.errors import DependencyPending, MissingReference
from reconciler.probe import ProbeHttp, ProbeResult, ProbeSettings, probe_many
from reconciler.registry import Registry
from reconciler.registry.errors import ConcurrentChange, RegistryBusy
from reconciler.registry.records import (
    DEFAULT_MANAGER,
    ConnectionRecord,
    ObservedState,
    ProbeStateRecord,
    Record,
    ResourceRecord,
    RowKey,
    ServerRecord,
    SourceRef,
    TenantRecord,
    ToolSnapshotRecord,
)

log = logging.getLogger(__name__)
CONCURRENT_ATTEMPTS = 3
"""Passes `reconcile` tries when another writer keeps changing the registry under it, before reporting it busy."""


@dataclass(frozen=True)
class EngineSettings:
    manager: str = DEFAULT_MANAGER
    prune: bool = True
    network: ProbeSettings = field(default_factory=ProbeSettings)
    """Limits and the private-network switch for requests made without probing: RFC 7592 deregistration of a
    deleted server's OAuth client (`apply --no-probe`, the operator's finalizer)."""


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


def prepare(desired: DesiredInput, registry: Registry, *, settings: EngineSettings) -> list[DesiredObject]:
    validate(desired)
    return build_desired(desired, fingerprint_key=registry.fingerprint_key(), manager=settings.manager)


def discovery_companions(
    targets: Sequence[DesiredObject], everything: Sequence[DesiredObject], observed: ObservedState
) -> list[DesiredObject]:
    """Pure: the objects a scoped pass must write beside its targets because they form a cycle with one.

    A server's discovery connection points at the server, and the server row names the connection: with
    neither registered, each one's own pass would wait for the other forever. So a pass over either writes both
    rows in one transaction (the registry links them in one insert); the companion's own pass then finds its
    row in step and writes its status. Only the targets' statuses come from this pass.
    """
    targeted = {obj.source for obj in targets}
    servers = {(obj.tenant.slug, obj.record.name): obj for obj in everything if isinstance(obj.record, ServerRecord)}
    connections = {
        (obj.tenant.slug, obj.record.name): obj for obj in everything if isinstance(obj.record, ConnectionRecord)
    }
    companions: dict[SourceRef, DesiredObject] = {}
    for obj in targets:
        record, tenant = obj.record, obj.tenant.slug
        companion = None
        if isinstance(record, ServerRecord) and record.discovery_connection is not None:
            connection = connections.get((tenant, record.discovery_connection))
            if connection is not None and observed.get(connection.key) is None:
                companion = connection
        elif isinstance(record, ConnectionRecord):
            server = servers.get((tenant, record.server))
            if (
                server is not None
                and observed.get(server.key) is None
                and isinstance(server.record, ServerRecord)
                and server.record.discovery_connection == record.name
            ):
                companion = server
        if companion is not None and companion.source not in targeted:
            companions[companion.source] = companion
    return list(companions.values())


def plan_for(
    objects: list[DesiredObject],
    registry: Registry,
    *,
    settings: EngineSettings,
    prune_tenants: Collection[str] | None = None,
    tenants: Collection[str] | None = None,
    observed: ObservedState | None = None,
) -> Plan:
    """Plan against the registry's rows; `tenants` limits what is read (and so what can be pruned) to those.

    `observed`: rows the caller already read (all of them, or `tenants`'), so they are not read twice.
    """
    if observed is None:
        observed = registry.fetch_state(tenants=tenants)
    options = PlanOptions(
        manager=settings.manager,
        prune=settings.prune,
        adopt=frozenset(obj.key for obj in objects if obj.adopt),
        observe_only=frozenset(obj.key for obj in objects if obj.observe_only),
        prune_tenants=prune_tenants,
    )
    return plan_changes(((obj.record, obj.source) for obj in objects), observed, options=options)


def _credential_facts(obj: DesiredObject, in_use: Record) -> dict[str, Any] | None:
    """Credential facts of the row the registry holds (`in_use`): after a rotation held back, that is the last
    verified credential, not the rejected value the object now names."""
    resource = obj.resource
    if isinstance(resource, MCPServer) and isinstance(resource.spec.auth, BearerAuth | ApiKeyAuth):
        auth = in_use.auth if isinstance(in_use, ServerRecord) else {}
        return {"credentials": {"secretRef": auth.get("secretRef"), "fingerprint": auth.get("secretFingerprint")}}
    if isinstance(resource, MCPConnection) and resource.spec.auth is not None:
        return {"fingerprint": getattr(in_use, "fingerprint", None)}
    return None


def _in_use(obj: DesiredObject, action: Action) -> Record:
    """The row after this pass: an action that writes nothing (a held-back rotation, ObserveOnly) leaves the
    observed row in place; everything else leaves the desired one."""
    if action.verb is Verb.NOOP and action.observed is not None:
        return action.observed
    return obj.record


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
class EnginePass:
    """One pass of the loop as a value flowing through its steps; each step fills in what the next one reads.

        plan_pass          registry reads: validate, build desired rows, observe, plan     (a registry thread)
        check_credentials  rotated Secrets verified against the live servers              (network)
        apply_pass         one transaction; then the probe states and the probe jobs      (a registry thread)
        prepare_pass       OAuth tokens minted, clients registered                        (network + registry)
        probe_pass         the MCP servers probed, each result handed on as it arrives     (network, async)
        report_pass        probe results and statuses written in one transaction          (a registry thread)

    `reconcile` runs them in order for the CLI. The operator runs the registry steps on its registry threads and
    the network steps elsewhere, so a server that never answers holds neither a registry thread nor the objects
    probed beside it (their results are reported as they arrive, in as many report passes as it takes).
    """

    desired: DesiredInput
    settings: EngineSettings
    now: dt.datetime
    scope: ObjectScope | None
    probe: ProbeOptions | None
    report: ReconcileReport
    done: bool = False
    """Nothing left to do: the fast path proved nothing moved, or it was a dry run. `report` is the outcome."""
    objects: list[DesiredObject] = field(default_factory=list)
    read_tenants: frozenset[str] | None = None
    """Tenants whose rows are read (and so planned and pruned); None: all."""
    skipped: int = 0
    """Objects of unread tenants: known up to date (their tenants' change stamps did not move)."""
    digest: str | None = None
    stamp_before: int | None = None
    had_marker: bool = False
    credential_step: CredentialStep = field(default_factory=CredentialStep)
    previous: dict[tuple[str, str, str], ResourceRecord] = field(default_factory=dict)
    actions: dict[SourceRef, Action] = field(default_factory=dict)
    row_ids: Mapping[RowKey, int] = field(default_factory=dict)
    stamp_locked: int | None = None
    stamp_applied: int | None = None
    probe_states: dict[tuple[str, str], ProbeStateRecord] = field(default_factory=dict)
    snapshots: dict[tuple[str, str], list[ToolSnapshotRecord]] = field(default_factory=dict)
    jobs: list[ProbeJob] = field(default_factory=list)
    prepared: dict[tuple[str, str], PreparedCredentials | CredentialFailure] = field(default_factory=dict)
    stored: dict[tuple[str, str, str], ResourceRecord] = field(default_factory=dict)
    """CLI mode: the copies `apply_pass` stored with the rows, so reporting rewrites only what probing changed."""
    copies_written: bool = False

    @property
    def plan(self) -> Plan:
        return self.report.plan

    @property
    def unprobed(self) -> frozenset[SourceRef]:
        """The objects whose status does not wait for a probe: reportable right after apply."""
        probed = {job.obj.source for job in self.jobs}
        return frozenset(obj.source for obj in self.objects if obj.source not in probed)


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
    objects are planned and applied (operator, which runs the steps itself: see `EnginePass`).

    A pass that finds the rows changed by another process since it read them is repeated (a bounded number of
    times) so that a stale plan is never written.
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
    dry_run: bool,
    now: dt.datetime | None,
    scope: ObjectScope | None,
    probe: ProbeOptions | None,
) -> ReconcileReport:
    """The steps once, in order; see `reconcile`."""
    step = plan_pass(desired, registry, settings=settings, dry_run=dry_run, now=now, scope=scope, probe=probe)
    if step.done:
        return step.report
    check_credentials(step, registry)
    apply_pass(step, registry)
    prepare_pass(step, registry)
    results: list[tuple[ProbeJob, ProbeResult]] = []
    if step.jobs and step.probe is not None:
        progress = progress_reporter(step.probe, len(step.jobs))

        def collect(job: ProbeJob, result: ProbeResult) -> None:
            results.append((job, result))
            progress(job.target, result)

        anyio.run(functools.partial(probe_pass, step, on_result=collect))
    report_pass(step, registry, results)
    return step.report


def plan_pass(
    desired: DesiredInput,
    registry: Registry,
    *,
    settings: EngineSettings,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    scope: ObjectScope | None = None,
    probe: ProbeOptions | None = None,
) -> EnginePass:
    """Registry reads only: the fast path, validation, desired rows and the plan."""
    now = now or dt.datetime.now(dt.UTC)
    if registry.stored_fingerprint_key() is None:
        # A fresh registry creates its fingerprint key on first use, which is a write: prove the input valid
        # first, so bad input leaves the registry exactly as it was.
        validate_rendered(desired, manager=settings.manager)
    empty = ReconcileReport(plan=Plan(actions=()), warnings=list(desired.warnings))
    step = EnginePass(desired=desired, settings=settings, now=now, scope=scope, probe=probe, report=empty)
    if scope is None:
        step.digest = input_digest(
            desired, key=registry.fingerprint_key(), manager=settings.manager, prune=settings.prune
        )
        step.stamp_before, marker = registry.fetch_applied_marker(settings.manager)
        step.had_marker = marker is not None
        same_input = marker is not None and step.stamp_before is not None and marker[1] == step.digest
        if (
            marker is not None
            and same_input
            and (probe is None or (not probe.force and not probes_due(desired, registry.fetch_probe_states(), now=now)))
        ):
            if marker[0] == step.stamp_before:
                plan = Plan(actions=(), unchanged=len(desired.resources))
                step.report = ReconcileReport(plan=plan, applied=not dry_run, warnings=list(desired.warnings))
                step.done = True
                return step
            # Rows moved since the input was last reconciled: read and plan only the tenants they moved in.
            moved = tenants_to_read(registry.fetch_tenant_stamps(), since=marker[0], wanted=desired_tenants(desired))
            if moved is not None:
                step.read_tenants = moved
                desired, skipped = restrict_to_tenants(desired, moved)
                step.desired, step.skipped = desired, skipped
    objects = prepare(desired, registry, settings=settings)
    written = objects
    observed = None
    if scope is not None:
        everything = objects
        objects = [obj for obj in objects if obj.source in scope.targets]
        step.settings = dataclasses.replace(settings, prune=False)
        # Nothing is pruned in scope mode, so rows of other tenants cannot matter: do not read them.
        step.read_tenants = frozenset(obj.tenant.slug for obj in objects)
        observed = registry.fetch_state(tenants=step.read_tenants)
        written = objects + discovery_companions(objects, everything, observed)
    step.objects = objects
    plan = plan_for(written, registry, settings=step.settings, tenants=step.read_tenants, observed=observed)
    if step.skipped:
        plan = dataclasses.replace(plan, unchanged=plan.unchanged + step.skipped)
    step.report = ReconcileReport(plan=plan, warnings=list(desired.warnings) + list(plan.warnings))
    step.done = dry_run
    return step


def check_credentials(step: EnginePass, registry: Registry) -> None:
    """A changed Secret is proven against the live server before any row points at its new fingerprint
    (network I/O; unverified rotations are held back in the plan), and the OAuth clients of servers about to be
    deleted are deregistered and their sealed values removed, with or without probing."""
    if step.probe is not None:
        plan, step.credential_step = before_apply(
            step.plan,
            objects=step.objects,
            registry=registry,
            secrets=step.desired.secrets,
            settings=step.probe.settings,
        )
        step.report.plan = plan
    # Not tied to probing: deleting a server must not leave its OAuth client registered or its sealed values.
    network = step.probe.settings if step.probe is not None else step.settings.network
    step.report.warnings += release_deleted(
        step.plan.actions, registry=registry, secrets=step.desired.secrets, settings=network
    )


def apply_pass(step: EnginePass, registry: Registry) -> None:
    """The plan in one transaction, then what the probe step needs: stored probe states, snapshots, the jobs.

    In CLI mode the statuses and the stored copies `get` prints commit in the same transaction as the rows, so a
    process killed at any point leaves the old state or the new one, never rows without their copies; and a
    plan made against rows another process changed since they were read is refused (ConcurrentChange).
    """
    scope, objects, plan = step.scope, step.objects, step.plan
    if scope is None:
        step.previous = {(r.kind, r.namespace, r.name): r for r in registry.fetch_resources(tenants=step.read_tenants)}
    step.actions = {action.source: action for action in plan.actions if action.source is not None}
    tenants = {TenantRecord(slug=obj.tenant.slug, namespace=obj.tenant.namespace) for obj in objects}
    step.probe_states = dict(registry.fetch_probe_states(tenants=step.read_tenants))
    server_keys = {obj.key[1:] for obj in objects if obj.key[0] == "servers"}
    step.snapshots = {key: registry.fetch_tool_snapshots(*key) for key in step.probe_states if key in server_keys}
    try:
        with registry.transaction() as tx:
            step.stamp_locked = tx.lock_change_stamp()
            if scope is None and step.stamp_before is not None and step.stamp_locked != step.stamp_before:
                # Another writer committed since this run observed the rows: its plan may be stale.
                raise ConcurrentChange("another process changed the registry while this run was planning")
            ordered_tenants = sorted(tenants, key=lambda t: (t.slug, t.namespace))
            step.row_ids = apply_plan(tx, plan, tenants=ordered_tenants, actor=step.settings.manager)
            step.stamp_applied = tx.lock_change_stamp()
            if scope is None:
                everything = frozenset(obj.source for obj in objects)
                step.report.results, written = _build_statuses(step, chosen=everything, probed_now=frozenset())
                if written:
                    tx.put_resources(written)
                gone = [
                    (action.source.kind, action.source.namespace, action.source.name)
                    for action in step.report.removals
                    if action.source is not None
                ]
                if gone:
                    tx.delete_resources(gone)
    except MissingReference as error:
        if scope is None:
            raise
        # Validation found every referenced object in the namespace; only its row is missing: its pass is
        # still to come (or failed on its own account, which its status says).
        raise DependencyPending(f"waiting for referenced objects to be registered: {error}", delay=2.0) from error
    step.copies_written = scope is None
    probe = step.probe
    if probe is None:
        return
    connections = connection_records(objects)
    step.jobs = [
        ProbeJob(obj, build_target(obj, connections=connections, secrets=step.desired.secrets))
        for obj in objects
        if needs_probe(
            obj,
            step.actions[obj.source],
            step.probe_states.get(obj.key[1:]),
            now=step.now,
            force=probe.force or obj.source in probe.forced,
        )
    ]


def prepare_pass(step: EnginePass, registry: Registry) -> None:
    """OAuth credentials for the servers about to be probed (authorization servers and short transactions)."""
    if step.probe is None or not step.jobs:
        return
    step.prepared = prepare_credentials(
        step.jobs,
        options=step.probe,
        registry=registry,
        secrets=step.desired.secrets,
        states=step.probe_states,
        step=step.credential_step,
    )


async def probe_pass(
    step: EnginePass,
    *,
    on_result: Callable[[ProbeJob, ProbeResult], None],
    http: ProbeHttp | None = None,
    limiter: anyio.Semaphore | None = None,
) -> None:
    """Probe every job, each as soon as `limiter` lets it (default: the probe settings' concurrency), handing each
    result to `on_result` as it arrives. Network only: no registry access, so it runs on the caller's event loop."""
    if step.probe is None or not step.jobs:
        return
    settings = step.probe.settings
    if http is None:
        async with ProbeHttp() as own:
            return await probe_pass(step, on_result=on_result, http=own, limiter=limiter)
    bound = limiter if limiter is not None else anyio.Semaphore(settings.max_concurrency)

    async def one(job: ProbeJob) -> None:
        prepared = step.prepared.get(job.obj.key[1:])
        async with bound:
            (result,) = await probe_many([with_credentials(job.target, prepared)], settings=settings, http=http)
        on_result(job, credential_outcome(job.obj, result, prepared))

    async with anyio.create_task_group() as tasks:
        for job in step.jobs:
            tasks.start_soon(one, job)


def report_pass(
    step: EnginePass,
    registry: Registry,
    results: Sequence[tuple[ProbeJob, ProbeResult]],
    *,
    sources: Collection[SourceRef] | None = None,
) -> list[ObjectResult]:
    """Record probe `results` and build the statuses of `sources` (default: every object) in one transaction.

    The operator calls it once for the objects that were not probed and then once per group of probe results as
    they arrive; each object is reported exactly once. Returns the results of this call (also added to
    `step.report`).
    """
    desired, scope, objects = step.desired, step.scope, step.objects
    settings, report, credential_step = step.settings, step.report, step.credential_step
    probe_states, snapshots = step.probe_states, step.snapshots
    whole = sources is None
    chosen = frozenset(obj.source for obj in objects) if sources is None else frozenset(sources)
    recorded: list[RecordedProbe] = []
    probed: list[tuple[DesiredObject, ProbeResult]] = []
    for job, result in results:
        server_key = job.obj.key[1:]
        item = record_probe(
            job.obj,
            result,
            previous=snapshots.get(server_key, []),
            actor=settings.manager,
            credentials=credential_facts(step.prepared.get(server_key)),
        )
        recorded.append(item)
        probe_states[server_key] = item.state
        if item.snapshot is not None and (
            not snapshots.get(server_key) or snapshots[server_key][0].hash != item.snapshot.hash
        ):
            snapshots[server_key] = [item.snapshot, *snapshots.get(server_key, [])][:2]
        elif item.snapshot is not None:
            snapshots[server_key] = [item.snapshot, *snapshots[server_key][1:]]
        probed.append((job.obj, result))
    report.probed.extend(probed)
    results_now: list[ObjectResult] = []
    with registry.transaction() as tx:
        stamp_reporting = tx.lock_change_stamp()
        for item in recorded:
            if item.snapshot is not None:
                tx.put_tool_snapshot(item.snapshot)
            tx.put_probe_state(item.state)
        accepted = [
            value
            for obj, result in probed
            if result.ok and result.tools is not None
            for value in accepted_values(obj.record, desired.secrets)  # type: ignore[arg-type]
        ]
        accepted += [
            value
            for key, check in credential_step.rotations.items()
            if check.outcome == "verified"
            and check.action.desired is not None
            and (whole or check.action.source in chosen)
            for value in accepted_values(check.action.desired, desired.secrets)  # type: ignore[arg-type]
        ]
        pin_accepted(registry, accepted, transaction=tx)
        audits = [item.audit for item in recorded if item.audit is not None]
        if audits:
            tx.audit(audits)
        probed_now = frozenset(obj.key for obj, _ in probed)
        if step.copies_written:
            # Statuses and copies went in with the rows: only what probing learnt changes now.
            chosen = frozenset(obj.source for obj, _ in probed if whole or obj.source in chosen)
        results_now, changed_resources = _build_statuses(step, chosen=chosen, probed_now=probed_now)
        if changed_resources:
            tx.put_resources(changed_resources)
        gone = [
            (action.source.kind, action.source.namespace, action.source.name)
            for action in report.removals
            if action.source is not None
        ]
        if gone and scope is None and whole and not step.copies_written:
            tx.delete_resources(gone)
        # Remember this input as reconciled only if no other writer touched the rows between our observation
        # and now (each transaction held the write lock), and a rerun would have nothing to report.
        if (
            whole
            and step.digest is not None
            and step.stamp_before is not None
            and step.stamp_locked == step.stamp_before
            and stamp_reporting == step.stamp_applied
            and stamp_reporting is not None
            and step.plan.clean
        ):
            tx.record_applied(settings.manager, stamp=stamp_reporting, digest=step.digest)
        elif step.had_marker and whole:
            # This run's outcome (statuses included) is not what the old marker vouches for.
            tx.forget_applied(settings.manager)
    if step.copies_written:
        by_source = {result.obj.source: result for result in results_now}
        report.results = [by_source.pop(result.obj.source, result) for result in report.results]
        report.results.extend(by_source.values())
    else:
        report.results.extend(results_now)
    report.applied = True
    return results_now


def _build_statuses(
    step: EnginePass, *, chosen: frozenset[SourceRef], probed_now: frozenset[RowKey]
) -> tuple[list[ObjectResult], list[ResourceRecord]]:
    """Pure: the status of each chosen object and the CLI-mode copies that differ from what is stored."""
    scope, now, credential_step = step.scope, step.now, step.credential_step
    probe_states, snapshots = step.probe_states, step.snapshots
    results_now: list[ObjectResult] = []
    changed_resources: list[ResourceRecord] = []
    for obj in step.objects:
        if obj.source not in chosen:
            continue
        action = step.actions[obj.source]
        meta = obj.resource.metadata
        # The desired row's hash stands for the spec: it changes exactly when what the spec renders to does.
        spec_hash = obj.record.ownership.spec_hash or obj.record.content_hash()
        identity = (obj.resource.kind, meta.namespace, meta.name)
        before = step.previous.get(identity)
        if scope is not None:
            generation = scope.generations.get(obj.source) or meta.generation or 1
            previous_status = scope.statuses.get(obj.source)
        else:
            generation = 1 if before is None else before.generation + (0 if before.spec_hash == spec_hash else 1)
            previous_status = before.status if before else None
        if (
            before is not None
            and before.status
            and before.spec_hash == spec_hash
            and action.verb is Verb.NOOP
            and not action.changes
            and not action.message
            and obj.key not in probed_now
            and not _rotation_failed(before.status)
        ):
            # Status is a pure function of the row, its hash and probe state: none moved, so neither does it.
            results_now.append(ObjectResult(obj, action, before.generation, before.status, False))
            if _copy_outdated(step.stored.get(identity, before), obj):
                step.stored[identity] = _resource_record(obj, before, spec_hash, before.status, now=now)
                changed_resources.append(step.stored[identity])
            continue
        extra = dict(_credential_facts(obj, _in_use(obj, action)) or {})
        probe_extra, probe_conditions = probe_status(obj, probe_states.get(obj.key[1:]), snapshots.get(obj.key[1:], []))
        if "credentials" in probe_extra and "credentials" in extra:
            probe_extra["credentials"] = {**extra["credentials"], **probe_extra["credentials"]}
        extra.update(probe_extra)
        rotation_extra, rotation_conditions = rotation_status(
            obj, credential_step, previous_status, extra.get("credentials"), now=now
        )
        extra.update(rotation_extra)
        probe_conditions = [*probe_conditions, *rotation_conditions]
        status = build_status(
            StatusInputs(
                obj=obj,
                action=action,
                generation=generation,
                registry_id=step.row_ids.get(obj.key),
                previous=previous_status,
                now=now,
                extra=extra,
                extra_conditions=probe_conditions,
            )
        )
        status_changed = previous_status is None or dict(previous_status) != status
        results_now.append(ObjectResult(obj, action, generation, status, status_changed))
        if scope is not None:
            continue
        stored = step.stored.get(identity, before)  # what `get` shows now: this run's copy, else the one before
        unchanged = (
            stored is not None
            and dict(stored.status) == status
            and stored.generation == generation
            and not _copy_outdated(stored, obj)
        )
        if unchanged:
            continue
        step.stored[identity] = _resource_record(obj, before, spec_hash, status, now=now, generation=generation)
        changed_resources.append(step.stored[identity])
    return results_now, changed_resources


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
            extra = dict(_credential_facts(obj, row) or {})
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
