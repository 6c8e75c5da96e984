"""The operator's reconcile loop around the engine: one pass per object, its periodic passes, its finalizer.

Called by the kopf handlers in `handlers.py` (create/update/resume, the Secret watch, and the finalizer) and by
its own periodic passes (`resyncing.ResyncScheduler`, one loop for all objects, gated by `peering.py` so that a
paused instance stays idle). `ObjectReconciler` holds the order of a pass and composes the parts that do the work:
`batching.py` gathers what the engine needs and runs it (batched across namespaces, probes on the event loop),
`recording.py` writes the status subresource only when it changed, posts Events only for real changes and counts
metrics, and `exports.py` writes a binding's exported ConfigMap. Beside the passes, one sweep renews members' due
tokens in the namespaces served (`engine.renewing`). Domain errors are recorded in status and re-raised
as domain errors; `handlers.py` turns them into kopf's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from typing import Any

from reconciler.api import MCPServer, MCPTemplateBinding
from reconciler.engine.renewing import renew_member_tokens
from reconciler.engine.statuses import conditions as cond
from reconciler.engine.upstream import with_upstream
from reconciler.errors import PermanentError, ReconcilerError, RetryableError
from reconciler.operator import statuses
from reconciler.operator.annotations import is_paused, jittered, poll_interval, reconcile_request
from reconciler.operator.batching import EngineBatches
from reconciler.operator.config import OperatorConfig
from reconciler.operator.events import EventSink
from reconciler.operator.exports import BindingExports
from reconciler.operator.gathering import source_of
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.objects import (
    BINDING_KIND,
    ClusterPort,
    ClusterSecretValues,
    IndexedObjects,
    ObjectView,
    RegistryThreads,
)
from reconciler.operator.peering import AlwaysOpen, ResyncGate
from reconciler.operator.recording import StatusRecorder
from reconciler.operator.resyncing import ResyncScheduler
from reconciler.probe import ProbeSettings
from reconciler.registry import Registry

__all__ = ["FINALIZED_MEMORY", "ClusterPort", "IndexedObjects", "ObjectReconciler", "ObjectView"]

log = logging.getLogger("mcp_reconciler.operator")
FINALIZED_MEMORY = 10_000
"""How many finalized uids a reconciler remembers: stale passes arrive within seconds of a deletion, and uids never
come back, so forgetting the oldest is safe."""


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
        self._cluster = cluster
        self._config = config
        self._registry = registry
        threads = RegistryThreads(registry_threads)
        self._batching = EngineBatches(
            registry=registry, cluster=cluster, config=config, registry_threads=threads, clock=clock
        )
        self._recording = StatusRecorder(cluster=cluster, events=events, metrics=metrics, clock=clock)
        self._exports = BindingExports(
            registry=registry,
            cluster=cluster,
            events=events,
            registry_threads=threads,
            debounce=config.export_debounce,
            reconcile=self.reconcile,
            current=self._current,
            platform_tenant=config.platform_namespace,
        )
        self._rng = rng or random.Random()
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self._finalized: dict[str, None] = {}
        """Uids whose finalizer has run, oldest first (bounded): a pass that queued behind the finalizer (a
        debounced export refresh, a Secret's change, a kopf update) carries a body from before the deletion and
        must neither recreate rows nor write a ConfigMap nor post an Event for an object that is gone."""
        self._resyncs = ResyncScheduler(self.resync_pass, concurrency=config.max_concurrent_resyncs)
        self._changes = ResyncScheduler(self.change_pass, concurrency=config.max_concurrent_passes)
        """Passes watch events asked for (`request_pass`), run from the object index; one per object at a time."""
        self._change_retries: dict[str, int] = {}
        """Per object whose requested pass failed transiently: how many times in a row (its back-off)."""
        self._resync_retries: dict[str, int] = {}
        """Per object backing off (transient errors, a rotation held back): how many periodic passes in a row."""
        self._objects: IndexedObjects | None = None
        self._gate: ResyncGate = gate or AlwaysOpen()
        self._namespaces: set[str] = set()
        """Namespaces of the objects tracked: where the member-token sweep looks."""
        self._member_renewals: asyncio.Task[None] | None = None
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
        recording = self._recording
        self._postpone_resync(view)
        async with self._lock(view), self._passes:
            if self._is_gone(view) or (still_wanted is not None and not still_wanted()):
                return
            previous = recording.previous(view)
            now = self._clock()
            if is_paused(view.annotations):
                await recording.record(view, previous, statuses.paused(previous, generation=view.generation, now=now))
                recording.count_outcome(view, "paused")
                return
            started = asyncio.get_running_loop().time()
            engine_pass = asyncio.ensure_future(self._batching.run(view, previous, peers=peers))
            try:
                if not statuses.has_conditions(previous):
                    previous = await self._first_sight_while(engine_pass, view, previous, now=now)
                result, unlabelled = await engine_pass
            except ReconcilerError as error:
                await recording.record_failure(view, previous, error)
                raise
            finally:
                _settle(engine_pass)
                recording.time_pass(view, asyncio.get_running_loop().time() - started)
            status = statuses.with_reconcile_request(result.status, reconcile_request(view.annotations))
            status = statuses.with_unlabelled_secrets(status, unlabelled)
            if isinstance(result.obj.resource, MCPTemplateBinding):
                status = await self._exports.with_export(view, result.obj.resource, status, previous)
            await recording.record(view, previous, status, action=result.action)
            if view.source.kind != BINDING_KIND and (result.action.writes or previous != recording.previous(view)):
                self._exports.schedule(view.source.namespace, peers)
            if statuses.rotation_held_back(status):
                if not statuses.rotation_held_back(previous):
                    # The periodic passes take over the re-checks, soon and then backing off.
                    self._resync_retries[view.key] = 1
                    self._resyncs.hurry(view.key, min(self._interval(view.body), self.retry_delay(0)))
            else:
                self._postpone_resync(view)
            recording.count_outcome(view, "changed" if result.action.writes else "noop")

    async def _first_sight_while(
        self,
        engine_pass: asyncio.Future[Any],
        view: ObjectView,
        previous: Mapping[str, Any] | None,
        *,
        now: dt.datetime,
    ) -> Mapping[str, Any] | None:
        """An object seen for the first time shows Ready and Synced `Unknown` while its pass runs, unless the pass
        ends within `first_status_delay`: then its result is the first status (one write instead of two, which in
        a burst of new objects is a third of the operator's API writes). Returns the status now in place."""
        await asyncio.wait([engine_pass], timeout=self._config.first_status_delay)
        if engine_pass.done():
            return previous
        first = statuses.first_sight(generation=view.generation, now=now, previous=previous)
        await self._recording.record(view, previous, first)
        return first

    async def record_upstream(self, body: Mapping[str, Any], condition: cond.ConditionDict) -> None:
        """The upstream check's finding as the object's `Upstream` condition (`operator/upstream.py`): written under
        the object's lock, so a pass neither races it nor drops it, and only when it changed."""
        view = ObjectView.of(body)
        async with self._lock(view):
            if self._is_gone(view):
                return
            previous = self._recording.previous(view)
            status = with_upstream(previous, condition, now=self._clock())
            await self._recording.record(view, previous, status)

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
            try:
                actions = await self._batching.remove(view.source, deletion_policy=_deletion_policy(view.body))
            except RetryableError as error:
                await self._recording.record_removal_failure(view, error)
                raise
            await self._exports.remove(view, body=view.body, status=self._recording.previous(view))
            self._mark_finalized(view)
            verbs = ", ".join(sorted({str(action.verb) for action in actions})) or "nothing to remove"
            log.info("%s %s/%s finalized: %s", view.source.kind, view.source.namespace, view.source.name, verbs)
            self._forget(view)

    # -- periodic passes ------------------------------------------------------------------------------------

    def track(self, body: Mapping[str, Any]) -> None:
        """Every object the watch reports gets periodic passes; the first comes at a random point of its first
        interval, so a restart does not resync every object at once (the resume handler has just seen them).
        `body` is the object's index entry: it shares the status we last wrote when the watch reports that one."""
        metadata = body.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return
        view = ObjectView.of(body)
        key = view.key
        if isinstance(body, dict):
            self._recording.share(body, key)
        self._namespaces.add(view.source.namespace)
        if key not in self._resyncs:  # every watch event lands here: a known object keeps its schedule
            self._resyncs.track(key, self._rng.uniform(0, self._interval(body)))

    @property
    def resyncing(self) -> bool:
        return self._objects is not None

    def start_resyncs(self, objects: IndexedObjects) -> None:
        """Start the periodic passes over `objects`, and the passes watch events request (once; later calls change
        nothing)."""
        if self._objects is None:
            self._objects = objects
            self._resyncs.start()
            self._changes.start()
            if self._config.probe and self._config.member_token_interval > 0:
                self._member_renewals = asyncio.create_task(self._renew_member_tokens())

    def request_pass(self, body: Mapping[str, Any]) -> None:
        """A watch event (creation, a change of spec, labels or annotations, the operator's start) asks for a pass
        over the object: queued, and run from the object index as soon as a slot is free. The kopf handler returns at
        once instead of waiting for it: in a burst of thousands of new objects, a waiting handler kept kopf's worker
        for the object, the event's body, its diff and their copies alive until the pass ran (most of the
        operator's peak memory). A pass requested while one runs runs again after it, on the index's newer body."""
        key = ObjectView.of(body).key
        if not self._changes.track(key, 0.0):
            self._changes.hurry(key, 0.0)

    async def change_pass(self, key: str) -> float | None:
        """The pass `request_pass` queued; returns the delay of a retry after a transient error, None when done
        (succeeded, refused for good, gone): the periodic passes keep their own pace either way."""
        body = self._objects.body(key) if self._objects is not None else None
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            self._change_retries.pop(key, None)
            return None
        namespace = source_of(body).namespace
        if not await self._gate.allows(namespace):
            self._change_retries.pop(key, None)
            return None  # a peer is the active instance; the periodic passes resume when this one is
        retry = self._change_retries.pop(key, 0)
        peers = self._objects.peers(namespace) if self._objects is not None else ()
        try:
            await self.reconcile(body, peers=peers, still_wanted=lambda: key in self._changes)
        except RetryableError:
            self._change_retries[key] = retry + 1
            return self.retry_delay(retry)
        except PermanentError:
            pass  # recorded in status and Events; the spec must change, which requests another pass
        except Exception:  # a bug must not end this object's passes: log it, the periodic pass comes as usual
            source = source_of(body)
            log.exception("pass of %s %s/%s failed", source.kind, source.namespace, source.name)
        return None

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
        if key in self._resyncs and statuses.rotation_held_back(self._recording.previous(ObjectView.of(body))):
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

    def retry_delay(self, retry: int) -> float:
        """Exponential back-off for transient errors: base · 2^retry, capped."""
        return float(min(self._config.retry_max_delay, self._config.retry_base_delay * (2 ** min(retry, 30))))

    async def close(self) -> None:
        """Stop the periodic passes and wait for engine runs in flight (they hold registry connections)."""
        if self._member_renewals is not None:
            self._member_renewals.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._member_renewals
        await self._resyncs.stop()
        await self._changes.stop()
        self._exports.cancel()
        await self._batching.close()

    async def _renew_member_tokens(self) -> None:
        """Every `member_token_interval`, renew the due member tokens of the namespaces served by this (active)
        instance. Off the event loop and off the registry threads: a refresh waits on an authorization server.
        Replicas racing are harmless: the registry's lease lets one refresh each token. A pre-registered confidential
        client's secret is read from its Secret through the cluster port."""
        settings = ProbeSettings(allow_private_networks=self._config.allow_private_networks)
        secrets = ClusterSecretValues(self._cluster, asyncio.get_running_loop())
        while True:
            await asyncio.sleep(
                jittered(self._config.member_token_interval, fraction=self._config.jitter, rng=self._rng)
            )
            namespaces = [namespace for namespace in sorted(self._namespaces) if await self._gate.allows(namespace)]
            if not namespaces:
                continue
            try:
                renewals = await asyncio.to_thread(
                    renew_member_tokens,
                    self._registry,
                    tenants=None,
                    namespaces=namespaces,
                    settings=settings,
                    secrets=secrets,
                )
            except ReconcilerError as error:
                log.warning("renewing members' tokens: %s", error)
                continue
            except Exception:  # a bug must not end the sweeps: log it, keep the pace
                log.exception("renewing members' tokens failed")
                continue
            summary = renewals.summary()
            if summary is not None:
                log.info("%s (namespaces %s)", summary, ", ".join(namespaces))

    # -- internals ----------------------------------------------------------------------------------------

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

    def _forget(self, view: ObjectView) -> None:
        self._resyncs.forget(view.key)
        self._resync_retries.pop(view.key, None)
        self._changes.forget(view.key)
        self._change_retries.pop(view.key, None)
        self._recording.forget(view)
        self._exports.forget(view)
        self._locks.pop(view.key, None)

    def _postpone_resync(self, view: ObjectView) -> None:
        """A pass other than the periodic one is checking the object (when it starts, and again when it ends): its
        drift check is due an interval from now, not sooner. During a burst of new objects this spares each a
        second pass, queued behind the first before the first has been reported."""
        if self._resyncs.waiting(view.key):
            delay = jittered(self._interval(view.body), fraction=self._config.jitter, rng=self._rng)
            self._resyncs.postpone(view.key, delay)

    def _interval(self, body: Mapping[str, Any]) -> float:
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        return poll_interval(annotations, default=self._config.resync_interval, minimum=self._config.min_poll_interval)


def _settle(task: asyncio.Future[Any]) -> None:
    """Cancel a task this handler no longer waits for, or mark its outcome seen (it was raised or returned)."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


def _deletion_policy(body: Mapping[str, Any]) -> str | None:
    """The server's current `spec.deletionPolicy` (other kinds' rows follow their server through cascades)."""
    if body.get("kind") != MCPServer.model_fields["kind"].default:
        return None
    policy = (body.get("spec") or {}).get("deletionPolicy")
    return policy if policy in ("Delete", "Orphan") else None
