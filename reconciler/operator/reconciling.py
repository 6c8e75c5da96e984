"""The operator's reconcile loop around the engine: one pass per object, batched per namespace, status by patch.

Called by the kopf handlers in `handlers.py` (create/update/resume, the Secret watch, and the finalizer) and by
its own periodic passes (`resyncing.ResyncScheduler`, one loop for all objects, gated by `peering.py` so that a
paused instance stays idle). A pass reads what the engine needs (the object, what it references, its tenant
and Secret values), runs the engine's registry steps on the registry threads and its probes on the event loop
(under their own bound, so a server that never answers holds no registry thread), then writes the status
subresource only when it changed, and posts Events only for real changes. Domain errors are recorded in status
and re-raised as domain errors; `handlers.py` turns them into kopf's.

Passes of one namespace that arrive while the engine is busy are handed to it together (one registry
transaction for many objects), which keeps a burst of thousands of new objects cheap; a permanent error in
such a batch is retried object by object, so one bad object never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import json
import logging
import random
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import anyio

from reconciler.api import MCPServer, MCPTemplateBinding, Resource
from reconciler.api.conditions import ConditionType, Reason
from reconciler.engine import conditions as cond
from reconciler.engine.inputs import Tenant
from reconciler.engine.planning import Action, Verb
from reconciler.engine.probing import ProbeJob, ProbeOptions
from reconciler.engine.reconciling import (
    EnginePass,
    EngineSettings,
    ObjectResult,
    ObjectScope,
    apply_pass,
    check_credentials,
    plan_pass,
    prepare_pass,
    probe_pass,
    remove_object,
    report_pass,
)
from reconciler.errors import DependencyPending, PermanentError, ReconcilerError, RetryableError
from reconciler.operator import statuses
from reconciler.operator.annotations import (
    is_paused,
    jittered,
    poll_interval,
    reconcile_request,
)
from reconciler.operator.cluster import SecretsRead
from reconciler.operator.config import OperatorConfig
from reconciler.operator.events import EventSink, PlannedEvent, involved_object, is_credential_field, plan_events
from reconciler.operator.gathering import build_input, parse_resource, secret_names, select, source_of
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.peering import AlwaysOpen, ResyncGate
from reconciler.operator.resyncing import ResyncScheduler
from reconciler.probe import ProbeHttp, ProbeResult
from reconciler.probe.settings import ProbeSettings
from reconciler.registry import Registry
from reconciler.registry.records import SourceRef
from reconciler.runtime import build_config_map, export_document, export_target

log = logging.getLogger("mcp_reconciler.operator")
BINDING_KIND = MCPTemplateBinding.model_fields["kind"].default
_T = TypeVar("_T")
FINALIZED_MEMORY = 10_000
"""How many finalized uids a reconciler remembers: stale passes arrive within seconds of a deletion, and uids never
come back, so forgetting the oldest is safe."""


class ClusterPort(Protocol):
    """What a pass needs from the API server (implemented by `cluster.Cluster`)."""

    async def fetch_tenant(self, namespace: str) -> Tenant: ...

    async def fetch_secrets(self, namespace: str, names: Collection[str]) -> SecretsRead: ...

    async def patch_status(self, source: SourceRef, patch: Mapping[str, Any]) -> str | None: ...

    def observe_secret(self, body: Mapping[str, Any], *, gone: bool) -> None: ...

    async def write_config_map(self, body: Mapping[str, Any], *, owner_uid: str) -> str: ...

    async def delete_config_map(self, namespace: str, name: str, *, owner_uid: str) -> bool: ...


class IndexedObjects(Protocol):
    """kopf's indexes as the periodic passes read them (`handlers.py` adapts kopf's `Index` objects)."""

    def body(self, key: str) -> Mapping[str, Any] | None:
        """The object with this uid as last seen by the watch (its index entry); None once it is gone."""
        ...

    def peers(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        """Every object of the namespace (index entries), for what a pass references."""
        ...


@dataclass(frozen=True)
class ObjectView:
    """The facts of one object a pass reads, taken from its body at the start of the pass."""

    source: SourceRef
    uid: str | None
    generation: int | None
    annotations: Mapping[str, str]
    status: Mapping[str, Any] | None
    body: Mapping[str, Any]

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectView:
        metadata = body.get("metadata") or {}
        status = body.get("status")
        return cls(
            source=source_of(body),
            uid=metadata.get("uid"),
            generation=metadata.get("generation"),
            annotations=dict(metadata.get("annotations") or {}),
            status=dict(status) if isinstance(status, Mapping) and status else None,
            body=body,
        )

    @property
    def key(self) -> str:
        return self.uid or f"{self.source.kind}/{self.source.namespace}/{self.source.name}"

    def involved(self) -> dict[str, Any]:
        return involved_object(
            kind=self.source.kind, namespace=self.source.namespace, name=self.source.name, uid=self.uid
        )


@dataclass
class _Request:
    """One object's pass waiting for its namespace's engine run."""

    view: ObjectView
    target: Resource
    resources: tuple[Resource, ...]
    tenant: Tenant
    secrets: SecretsRead
    previous: Mapping[str, Any] | None
    forced: bool
    """A new `reconcile-requested-at` token: probe now, whatever the snapshot's age."""
    done: asyncio.Future[ObjectResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class _Batch:
    pending: list[_Request] = field(default_factory=list)
    worker: asyncio.Task[None] | None = None


class ObjectReconciler:
    """Runs passes for the objects of the namespaces this operator serves. One per operator process."""

    def __init__(
        self,
        *,
        registry: Registry,
        cluster: ClusterPort,
        events: EventSink,
        metrics: OperatorMetrics,
        config: OperatorConfig,
        registry_threads: Executor | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        gate: ResyncGate | None = None,
    ) -> None:
        self._registry = registry
        self._cluster = cluster
        self._events = events
        self._metrics = metrics
        self._config = config
        self._engine_settings = EngineSettings(
            manager=config.manager,
            prune=False,
            network=ProbeSettings(allow_private_networks=config.allow_private_networks),
        )
        self._probe_settings = (
            ProbeSettings(
                allow_private_networks=config.allow_private_networks, max_concurrency=config.probe_concurrency
            )
            if config.probe
            else None
        )
        self._probe_slots = anyio.Semaphore(config.probe_concurrency)
        """Probes in flight across all namespaces. Probes wait on the event loop, never on a registry thread."""
        self._http: ProbeHttp | None = None
        """Shared by every probe of the process (one verifying SSL context); entered on first use."""
        self._exit = contextlib.AsyncExitStack()
        self._finishing: set[asyncio.Task[None]] = set()
        """Batches whose servers are being probed and whose objects are being reported."""
        self._probing: set[asyncio.Task[None]] = set()
        """The probe steps of those batches."""
        self._registry_threads = registry_threads
        """None: the loop's default executor. The operator passes a small pool, which bounds concurrent registry
        transactions (a global rate limit on the database) and the memory each worker thread holds."""
        self._rng = rng or random.Random()
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._written: dict[str, dict[str, Any]] = {}
        """Status we last wrote per object: fresher than a body the watch has not caught up with yet."""
        self._batches: dict[str, _Batch] = {}
        self._export_tasks: dict[str, asyncio.Task[None]] = {}
        self._export_peers: dict[str, list[Mapping[str, Any]]] = {}
        self._export_conflicts: set[str] = set()
        """Per namespace: the pending refresh of exported ConfigMaps, and the objects it will read."""
        self._finalized: dict[str, None] = {}
        """Uids whose finalizer has run, oldest first (bounded): a pass that queued behind the finalizer (a
        debounced export refresh, a Secret's change, a kopf update) carries a body from before the deletion and
        must neither recreate rows nor write a ConfigMap nor post an Event for an object that is gone."""
        self._resyncs = ResyncScheduler(self.resync_pass, concurrency=config.max_concurrent_passes)
        self._resync_retries: dict[str, int] = {}
        """Per object backing off (transient errors, a rotation held back): how many periodic passes in a row."""
        self._objects: IndexedObjects | None = None
        self._gate: ResyncGate = gate or AlwaysOpen()
        self._passes = asyncio.Semaphore(config.max_concurrent_passes)
        """Bounds memory and API connections when thousands of objects arrive at once; passes queued meanwhile
        still share engine runs."""

    # -- passes -------------------------------------------------------------------------------------------

    async def reconcile(
        self,
        body: Mapping[str, Any],
        *,
        peers: Iterable[Mapping[str, Any]],
        still_wanted: Callable[[], bool] | None = None,
    ) -> None:
        """One pass over one object; `peers` are the bodies of its namespace (for what it references).

        `still_wanted` is asked once the object's lock is held: a periodic pass that waited behind the finalizer
        must not recreate the rows it just removed. Raises PermanentError (recorded in status; retrying will not
        help until the spec changes) or RetryableError (recorded in status; back off and try again).
        """
        view = ObjectView.of(body)
        async with self._lock(view), self._passes:
            if self._is_gone(view) or (still_wanted is not None and not still_wanted()):
                return
            previous = self._previous(view)
            now = self._clock()
            if is_paused(view.annotations):
                await self._record(view, previous, statuses.paused(previous, generation=view.generation, now=now))
                self._metrics.reconciles.labels(view.source.kind, "paused").inc()
                return
            if not statuses.has_conditions(previous):
                first = statuses.first_sight(generation=view.generation, now=now)
                await self._record(view, previous, first)
                previous = first
            started = asyncio.get_running_loop().time()
            try:
                result, unlabelled = await self._engine_pass(view, previous, peers=peers)
            except ReconcilerError as error:
                await self._record_failure(view, previous, error)
                raise
            finally:
                elapsed = asyncio.get_running_loop().time() - started
                self._metrics.reconcile_seconds.labels(view.source.kind).observe(elapsed)
            status = statuses.with_reconcile_request(result.status, reconcile_request(view.annotations))
            status = statuses.with_unlabelled_secrets(status, unlabelled)
            if isinstance(result.obj.resource, MCPTemplateBinding):
                status = await self._with_export(view, result.obj.resource, status, previous)
            await self._record(view, previous, status, action=result.action)
            if view.source.kind != BINDING_KIND and (result.action.writes or previous != self._previous(view)):
                self._schedule_exports(view.source.namespace, peers)
            if statuses.rotation_held_back(status) and not statuses.rotation_held_back(previous):
                # The periodic passes take over the re-checks, soon and then backing off.
                self._resync_retries[view.key] = 1
                self._resyncs.hurry(view.key, min(self._interval(view.body), self.retry_delay(0)))
            outcome = "changed" if result.action.writes else "noop"
            self._metrics.reconciles.labels(view.source.kind, outcome).inc()

    def secret_observed(self, body: Mapping[str, Any], *, gone: bool) -> None:
        """The credential watch saw a Secret (listing, change, deletion): keep the cached copy current."""
        self._cluster.observe_secret(body, gone=gone)

    async def remove(self, body: Mapping[str, Any]) -> None:
        """The finalizer's work: delete or orphan the object's rows (per deletionPolicy); gone rows are fine.

        Works for paused objects too. A registry that cannot be reached is recorded in status and raised
        as RetryableError, so the finalizer stays until the rows are really gone.
        """
        view = ObjectView.of(body)
        async with self._lock(view):
            policy = _deletion_policy(view.body)
            try:
                actions = await self._in_registry_thread(
                    functools.partial(
                        remove_object,
                        view.source,
                        self._registry,
                        settings=self._engine_settings,
                        deletion_policy=policy,
                    )
                )
            except RetryableError as error:
                previous = self._previous(view)
                message = f"deletion waits for the registry: {error}"
                status = statuses.failed(
                    previous,
                    reason=str(Reason.RECONCILE_ERROR),
                    message=message,
                    generation=view.generation,
                    now=self._clock(),
                )
                await self._record(view, previous, status)
                self._metrics.errors.labels(view.source.kind, str(Reason.RECONCILE_ERROR)).inc()
                raise
            await self._remove_export(view, body=view.body, status=self._previous(view))
            self._mark_finalized(view)
            verbs = ", ".join(sorted({str(action.verb) for action in actions})) or "nothing to remove"
            log.info("%s %s/%s finalized: %s", view.source.kind, view.source.namespace, view.source.name, verbs)
            self._forget(view)

    # -- periodic passes ------------------------------------------------------------------------------------

    def track(self, body: Mapping[str, Any]) -> None:
        """Every object the watch reports gets periodic passes; the first comes at a random point of its first
        interval, so a restart does not resync every object at once (the resume handler has just seen them)."""
        metadata = body.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return
        key = ObjectView.of(body).key
        if key not in self._resyncs:  # every watch event lands here: a known object keeps its schedule
            self._resyncs.track(key, self._rng.uniform(0, self._interval(body)))

    @property
    def resyncing(self) -> bool:
        return self._objects is not None

    def start_resyncs(self, objects: IndexedObjects) -> None:
        """Start the periodic passes over `objects` (once; later calls change nothing)."""
        if self._objects is None:
            self._objects = objects
            self._resyncs.start()

    async def resync_pass(self, key: str) -> float | None:
        """One periodic pass (drift repair, unwatched Secrets, expiring state); returns the delay until the next,
        None once the object is gone or being deleted (the finalizer takes over)."""
        body = self._objects.body(key) if self._objects is not None else None
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            self._resync_retries.pop(key, None)
            return None
        interval = self._interval(body)
        namespace = source_of(body).namespace
        if not await self._gate.allows(namespace):
            return jittered(interval, fraction=self._config.jitter, rng=self._rng)  # a peer is the active one
        retry = self._resync_retries.pop(key, 0)
        peers = self._objects.peers(namespace) if self._objects is not None else ()
        try:
            await self.reconcile(body, peers=peers, still_wanted=lambda: key in self._resyncs)
        except RetryableError:
            self._resync_retries[key] = retry + 1
            return self.retry_delay(retry)
        except PermanentError:
            pass  # recorded in status; the spec must change, so only look again at the normal pace
        except Exception:  # a bug must not end drift repair for this object: log it, keep the pace
            source = source_of(body)
            log.exception("resync of %s %s/%s failed", source.kind, source.namespace, source.name)
        if key in self._resyncs and statuses.rotation_held_back(self._previous(ObjectView.of(body))):
            # The next check of the new Secret comes sooner, backing off while it keeps failing.
            self._resync_retries[key] = retry + 1
            return min(interval, self.retry_delay(retry))
        return jittered(interval, fraction=self._config.jitter, rng=self._rng)

    async def reconcile_users(
        self,
        users: Iterable[tuple[str, str]],
        *,
        namespace: str,
        peers: Iterable[Mapping[str, Any]],
    ) -> None:
        """Reconcile the objects (kind, name) of `namespace` that read a Secret that just changed.

        Failures are recorded in each object's status by its pass and logged here; the Secret watch itself
        never fails.
        """
        bodies = list(peers)
        wanted = set(users)
        chosen = [body for body in bodies if (source_of(body).kind, source_of(body).name) in wanted]

        async def one(body: Mapping[str, Any]) -> None:
            try:
                await self.reconcile(body, peers=bodies)
            except ReconcilerError as error:
                source = source_of(body)
                log.warning("%s %s/%s: %s", source.kind, source.namespace, source.name, error)

        await asyncio.gather(*(one(body) for body in chosen))

    # -- spec.export of bindings ----------------------------------------------------------------------------

    async def _with_export(
        self,
        view: ObjectView,
        binding: MCPTemplateBinding,
        status: dict[str, Any],
        previous: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """Write the binding's exported ConfigMap (when it asks for one) and say in `status.export` how it went.

        A ConfigMap of that name that the binding does not control is never overwritten (state `Conflict`); an
        API failure is `Failed` and retried at the next pass. Only a created or updated document is an Event.
        """
        target = export_target(binding)
        before = (previous or {}).get("export") or {}
        if before.get("configMap") and (target is None or before["configMap"] != target.name):
            await self._remove_export(view, body=None, status=previous)
        status = {key: value for key, value in status.items() if key != "export"}
        if target is None:
            return status
        export: dict[str, Any] = {"configMap": target.name, "key": target.key}
        namespace = view.source.namespace
        try:
            if view.uid is None:
                raise PermanentError("the binding has no uid to own the ConfigMap")
            document = await self._in_registry_thread(
                functools.partial(
                    export_document,
                    self._registry,
                    namespace,
                    target.template,
                    platform_tenant=self._config.platform_namespace,
                )
            )
            body = build_config_map(
                namespace=namespace,
                binding_name=view.source.name,
                binding_uid=view.uid,
                target=target,
                document=document,
            )
            outcome = await self._cluster.write_config_map(body, owner_uid=view.uid)
        except ReconcilerError as error:
            export.update(state="Failed", message=statuses.short(str(error)))
            return {**status, "export": export}
        servers = len(json.loads(document).get("mcpServers") or {})
        if outcome == "conflict":
            message = f"ConfigMap {namespace}/{target.name} exists and is not controlled by this binding; left as is"
            export.update(state="Conflict", message=message)
            # One Event per conflict, even when the status that records it could not be written (the next
            # pass would otherwise see no conflict in `previous` and post it again).
            if before.get("state") != "Conflict" and view.key not in self._export_conflicts:
                self._events.post(view.involved(), PlannedEvent("Warning", "Conflict", message))
            self._export_conflicts.add(view.key)
            return {**status, "export": export}
        self._export_conflicts.discard(view.key)
        export.update(state="Written", servers=servers)
        if outcome in ("created", "updated"):
            message = f"ConfigMap {namespace}/{target.name} {outcome} ({servers} servers)"
            self._events.post(view.involved(), PlannedEvent("Normal", "Exported", message))
        return {**status, "export": export}

    async def _remove_export(
        self, view: ObjectView, *, body: Mapping[str, Any] | None, status: Mapping[str, Any] | None
    ) -> None:
        """Delete the ConfigMap a binding exported (the one its status names, else the one its spec asks for).

        The owner reference makes the cluster's garbage collector do the same; doing it here keeps deletion
        immediate and covers a binding that stops exporting or renames its ConfigMap."""
        if view.source.kind != BINDING_KIND or view.uid is None:
            return
        names = {str((status or {}).get("export", {}).get("configMap") or "")}
        if body is not None:
            with contextlib.suppress(PermanentError):
                binding = parse_resource(body)
                if isinstance(binding, MCPTemplateBinding) and (target := export_target(binding)) is not None:
                    names.add(target.name)
        for name in sorted(names - {""}):
            try:
                await self._cluster.delete_config_map(view.source.namespace, name, owner_uid=view.uid)
            except RetryableError as error:
                log.warning("cannot delete ConfigMap %s/%s yet: %s", view.source.namespace, name, error)

    def _schedule_exports(self, namespace: str, peers: Iterable[Mapping[str, Any]]) -> None:
        """Something a binding's document depends on changed: refresh the namespace's exports shortly (one run
        for a burst of changes)."""
        bodies = list(peers)
        if not any(body.get("kind") == BINDING_KIND and (body.get("spec") or {}).get("export") for body in bodies):
            return
        self._export_peers[namespace] = bodies
        running = self._export_tasks.get(namespace)
        if running is None or running.done():
            self._export_tasks[namespace] = asyncio.create_task(
                self._refresh_exports(namespace), name=f"export:{namespace}"
            )

    async def _refresh_exports(self, namespace: str) -> None:
        await asyncio.sleep(self._config.export_debounce)
        bodies = [fresh for body in self._export_peers.pop(namespace, []) if (fresh := self._current(body)) is not None]
        for body in bodies:
            if body.get("kind") != BINDING_KIND or not (body.get("spec") or {}).get("export"):
                continue
            try:
                await self.reconcile(body, peers=bodies)
            except ReconcilerError as error:
                source = source_of(body)
                log.warning("%s %s/%s: %s", source.kind, source.namespace, source.name, error)

    def retry_delay(self, retry: int) -> float:
        """Exponential back-off for transient errors: base · 2^retry, capped."""
        return float(min(self._config.retry_max_delay, self._config.retry_base_delay * (2 ** min(retry, 30))))

    async def close(self) -> None:
        """Stop the periodic passes and wait for engine runs in flight (they hold registry connections)."""
        await self._resyncs.stop()
        for task in self._export_tasks.values():
            task.cancel()
        workers = [batch.worker for batch in self._batches.values() if batch.worker and not batch.worker.done()]
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)
        if self._finishing:
            # Probes hold no registry connection: stop them rather than wait out a server that never answers;
            # reports already in a registry thread run to their end.
            for task in self._probing:
                task.cancel()
            await asyncio.gather(*self._finishing, return_exceptions=True)
        await self._exit.aclose()

    # -- internals ----------------------------------------------------------------------------------------

    async def _in_registry_thread(self, call: Callable[[], _T]) -> _T:
        """Registry work is synchronous SQLAlchemy: run it on the registry threads, never on the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._registry_threads, call)

    def _lock(self, view: ObjectView) -> asyncio.Lock:
        lock = self._locks.get(view.key)
        if lock is None:
            lock = self._locks[view.key] = asyncio.Lock()
        return lock

    def _current(self, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The freshest body of an object the watch knows (a debounced refresh holds bodies from before its wait);
        None once the object is gone."""
        if self._objects is None:
            return body
        uid = (body.get("metadata") or {}).get("uid")
        return self._objects.body(uid) if uid else body

    def _is_gone(self, view: ObjectView) -> bool:
        return view.uid is not None and view.uid in self._finalized

    def _mark_finalized(self, view: ObjectView) -> None:
        if view.uid is None:
            return  # no identity to remember: a later object of the same name must still get its passes
        self._finalized[view.uid] = None
        while len(self._finalized) > FINALIZED_MEMORY:
            del self._finalized[next(iter(self._finalized))]

    def _previous(self, view: ObjectView) -> Mapping[str, Any] | None:
        return self._written.get(view.key, view.status)

    def _forget(self, view: ObjectView) -> None:
        self._resyncs.forget(view.key)
        self._resync_retries.pop(view.key, None)
        self._written.pop(view.key, None)
        self._export_conflicts.discard(view.key)
        self._locks.pop(view.key, None)
        if view.source.kind == "MCPServer":
            self._metrics.forget(namespace=view.source.namespace, name=view.source.name)

    def _interval(self, body: Mapping[str, Any]) -> float:
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        return poll_interval(annotations, default=self._config.resync_interval, minimum=self._config.min_poll_interval)

    async def _record_failure(
        self, view: ObjectView, previous: Mapping[str, Any] | None, error: ReconcilerError
    ) -> None:
        reason = getattr(error, "reason", None) or str(Reason.RECONCILE_ERROR)
        status = statuses.failed(
            previous, reason=reason, message=str(error), generation=view.generation, now=self._clock()
        )
        await self._record(view, previous, status)
        self._metrics.reconciles.labels(view.source.kind, "error").inc()
        self._metrics.errors.labels(view.source.kind, reason).inc()

    async def _record(
        self,
        view: ObjectView,
        previous: Mapping[str, Any] | None,
        status: dict[str, Any],
        *,
        action: Action | None = None,
    ) -> None:
        """Write `status` if it differs from what the object has; post Events and count what happened."""
        status = statuses.compact(status)
        for event in plan_events(action, before=previous, after=status):
            self._events.post(view.involved(), event)
        self._count(view, action=action, previous=previous, status=status)
        if previous is not None and dict(previous) == status:
            return
        written = await self._cluster.patch_status(view.source, statuses.merge_patch(previous, status))
        self._metrics.status_writes.labels(view.source.kind).inc()
        if written is not None:
            self._written[view.key] = status

    def _count(
        self,
        view: ObjectView,
        *,
        action: Action | None,
        previous: Mapping[str, Any] | None,
        status: Mapping[str, Any],
    ) -> None:
        kind = view.source.kind
        if action is not None and action.verb is Verb.REPAIR:
            self._metrics.drift_repairs.labels(kind).inc()
        if (
            action is not None
            and action.verb is Verb.UPDATE
            and any(is_credential_field(c.path) for c in action.changes)
        ):
            self._metrics.rotations.labels(kind, "rotated").inc()
        failed_now = cond.find(status.get("conditions"), ConditionType.CREDENTIALS_VALID) or {}
        failed_before = cond.find((previous or {}).get("conditions"), ConditionType.CREDENTIALS_VALID) or {}
        if failed_now.get("reason") == str(Reason.ROTATION_FAILED) and failed_before.get("reason") != str(
            Reason.ROTATION_FAILED
        ):
            self._metrics.rotations.labels(kind, "failed").inc()
        if kind == "MCPServer" and (previous is None or dict(previous) != status):
            self._metrics.observe_status(
                namespace=view.source.namespace, name=view.source.name, before=previous, after=status
            )

    async def _engine_pass(
        self,
        view: ObjectView,
        previous: Mapping[str, Any] | None,
        *,
        peers: Iterable[Mapping[str, Any]],
    ) -> tuple[ObjectResult, frozenset[str]]:
        """Gather the engine's input for one object and queue it for its namespace's next engine run."""
        target = parse_resource(view.body)
        selection = select([target], peers)
        namespace = view.source.namespace
        tenant = await self._cluster.fetch_tenant(namespace)
        secrets = await self._cluster.fetch_secrets(namespace, secret_names(selection.resources))
        token = reconcile_request(view.annotations)
        request = _Request(
            view=view,
            target=target,
            resources=selection.resources,
            tenant=tenant,
            secrets=secrets,
            previous=previous,
            forced=token is not None and token != (previous or {}).get("lastHandledReconcileAt"),
        )
        batch = self._batches.setdefault(namespace, _Batch())
        batch.pending.append(request)
        if batch.worker is None or batch.worker.done():
            batch.worker = asyncio.create_task(self._drain(batch), name=f"engine:{namespace}")
        result = await asyncio.shield(request.done)
        return result, frozenset(secret_names([target]) & secrets.unlabelled)

    async def _drain(self, batch: _Batch) -> None:
        """Run the registry steps for everything queued in one namespace, again and again until nothing is left.

        Each batch's probes and report go on in a task of their own (`_finish`), so the namespace's next batch
        never waits for a server that is slow to answer."""
        while batch.pending:
            requests, batch.pending = batch.pending, []
            try:
                groups = await self._apply_batch(requests)
            except BaseException as error:  # the thread itself failed to run: fail every waiter, never hang one
                groups = [(requests, error)]
            for group, outcome in groups:
                if isinstance(outcome, BaseException):
                    _fail(group, outcome)
                    continue
                task = asyncio.create_task(self._finish(group, outcome), name=f"probe:{group[0].view.source.namespace}")
                self._finishing.add(task)
                task.add_done_callback(self._finishing.discard)

    async def _apply_batch(self, requests: list[_Request]) -> list[tuple[list[_Request], EnginePass | BaseException]]:
        """Plan and apply the whole batch at once; on an error of one object, object by object."""
        if len(requests) > 1:
            try:
                return [(requests, await self._apply(requests))]
            except (PermanentError, DependencyPending):
                pass  # one object's problem: find out whose, and let the others through
        outcomes: list[tuple[list[_Request], EnginePass | BaseException]] = []
        for request in requests:
            try:
                outcomes.append(([request], await self._apply([request])))
            except ReconcilerError as error:
                outcomes.append(([request], error))
        return outcomes

    async def _apply(self, requests: list[_Request]) -> EnginePass:
        """The engine's steps up to apply: registry reads and the transaction on the registry threads; checking a
        rotated Secret against its live server (network) on a worker thread, holding no registry thread."""
        step = await self._in_registry_thread(functools.partial(self._plan, requests))
        if step.probe is not None:
            await asyncio.to_thread(check_credentials, step, self._registry)
        await self._in_registry_thread(functools.partial(apply_pass, step, self._registry))
        return step

    def _plan(self, requests: list[_Request]) -> EnginePass:
        """In a registry thread: the engine's input for the batch, and its plan."""
        resources: dict[tuple[str, str], Resource] = {}
        secrets: dict[str, dict[str, str]] = {}
        for request in requests:
            for resource in request.resources:
                resources[(resource.kind, resource.metadata.name)] = resource
            secrets.update(request.secrets.values)
        tenant = requests[-1].tenant
        desired = build_input(resources.values(), tenant=tenant, secrets=secrets)
        scope = ObjectScope(
            targets=frozenset(request.view.source for request in requests),
            generations={request.view.source: request.view.generation for request in requests},
            statuses={request.view.source: request.previous for request in requests},
        )
        probe = None
        if self._probe_settings is not None:
            forced = frozenset(request.view.source for request in requests if request.forced)
            probe = ProbeOptions(self._probe_settings, forced=forced)
        return plan_pass(
            desired, self._registry, settings=self._engine_settings, scope=scope, now=self._clock(), probe=probe
        )

    async def _finish(self, requests: list[_Request], step: EnginePass) -> None:
        """Probe the batch's servers on the event loop and report every object as soon as its status is known:
        the objects that need no probe at once, the others in groups of whatever results have arrived by the time
        the registry is free. One server that never answers delays only its own status."""
        waiting = {request.view.source: request for request in requests}
        arrived: asyncio.Queue[tuple[ProbeJob, ProbeResult] | None] = asyncio.Queue()
        probing: asyncio.Task[None] | None = None
        try:
            if step.jobs:
                # OAuth preparation mixes authorization-server calls with short transactions: a worker thread.
                await asyncio.to_thread(prepare_pass, step, self._registry)
                probing = asyncio.create_task(self._probe(step, arrived), name="probes")
                self._probing.add(probing)
                probing.add_done_callback(self._probing.discard)
            if step.unprobed:
                await self._report(step, [], step.unprobed, waiting)
            finished = probing is None
            while not finished:
                results: list[tuple[ProbeJob, ProbeResult]] = []
                item = await arrived.get()
                while item is not None:
                    results.append(item)
                    if arrived.empty():
                        break
                    item = arrived.get_nowait()
                finished = item is None
                if results:
                    await self._report(step, results, {job.obj.source for job, _ in results}, waiting)
            if probing is not None:
                await probing
        except asyncio.CancelledError as error:
            _fail(list(waiting.values()), error)
            raise
        except Exception as error:  # the waiting passes record it in status; nobody awaits this task
            _fail(list(waiting.values()), error)
            return
        finally:
            if probing is not None and not probing.done():
                probing.cancel()
        missing = [request for request in waiting.values() if not request.done.done()]
        if missing:
            source = missing[0].view.source
            _fail(missing, RetryableError(f"the engine returned no result for {source.kind} {source.name}"))

    async def _probe(self, step: EnginePass, arrived: asyncio.Queue[tuple[ProbeJob, ProbeResult] | None]) -> None:
        """The probe step on the event loop, under the operator-wide probe bound; ends with None in the queue."""
        try:
            if self._http is None:
                self._http = await self._exit.enter_async_context(ProbeHttp())
            await probe_pass(
                step,
                on_result=lambda job, result: arrived.put_nowait((job, result)),
                http=self._http,
                limiter=self._probe_slots,
            )
        finally:
            arrived.put_nowait(None)

    async def _report(
        self,
        step: EnginePass,
        results: list[tuple[ProbeJob, ProbeResult]],
        sources: Collection[SourceRef],
        waiting: Mapping[SourceRef, _Request],
    ) -> None:
        """In a registry thread: record `results` and the statuses of `sources`, then hand each its result."""
        reported = await self._in_registry_thread(
            functools.partial(report_pass, step, self._registry, results, sources=sources)
        )
        for result in reported:
            request = waiting.get(result.obj.source)
            if request is not None and not request.done.done():
                request.done.set_result(result)


def _fail(requests: Iterable[_Request], error: BaseException) -> None:
    """Hand `error` to every request still waiting for its result."""
    for request in requests:
        if request.done.done():
            continue
        if isinstance(error, asyncio.CancelledError):
            request.done.cancel()  # the operator is closing
        else:
            request.done.set_exception(error)


def _deletion_policy(body: Mapping[str, Any]) -> str | None:
    """The server's current `spec.deletionPolicy` (other kinds' rows follow their server through cascades)."""
    if body.get("kind") != MCPServer.model_fields["kind"].default:
        return None
    policy = (body.get("spec") or {}).get("deletionPolicy")
    return policy if policy in ("Delete", "Orphan") else None
