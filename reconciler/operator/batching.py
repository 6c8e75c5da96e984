"""The engine's runs for the operator: passes batched across namespaces, registry steps on the registry threads,
probes on the event loop.

`reconciling.ObjectReconciler` hands each pass to `EngineBatches.run` (after gathering what the object references)
and each finalizer to `EngineBatches.remove`. Passes that arrive while the engine is busy are handed to it together
(one registry transaction for many objects, whatever their namespaces), which keeps a burst of thousands of new
objects cheap: batching per namespace gave batches of one object when a fleet spreads over a hundred namespaces,
and each object then paid a transaction and a read of its tenant's rows of its own. Each namespace always goes to
the same lane (one lane per registry thread), so two engine runs never write one tenant at once. A permanent error
in a batch is retried namespace by namespace and then object by object, so one bad object never fails its
neighbours. Each batch's probes run under their own bound on the event loop, so a server that never answers
holds no registry thread, and each object's status is reported as soon as its probe result is in.

Every call into the engine's pass steps is in the section "the engine's steps" at the end of the class.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from reconciler.api import Resource
from reconciler.engine.inputs import Tenant
from reconciler.engine.planning import Action
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
from reconciler.operator.annotations import reconcile_request
from reconciler.operator.cluster import SecretsRead
from reconciler.operator.config import OperatorConfig
from reconciler.operator.gathering import build_input, parse_resource, secret_names, select
from reconciler.operator.objects import ClusterPort, ObjectView, RegistryThreads
from reconciler.probe import ProbeHttp, ProbeResult
from reconciler.probe.settings import ProbeSettings
from reconciler.registry import Registry
from reconciler.registry.records import SourceRef


@dataclass
class _Request:
    """One object's pass waiting for its lane's next engine run."""

    view: ObjectView
    target: Resource
    resources: tuple[Resource, ...]
    tenant: Tenant
    secrets: SecretsRead
    previous: Mapping[str, Any] | None
    forced: bool
    """A new `reconcile-requested-at` token: probe now, whatever the snapshot's age."""
    done: asyncio.Future[ObjectResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


_Outcome = tuple[list[_Request], EnginePass | BaseException]
"""Requests that ran the engine together, and their pass (or the error that ended it)."""


@dataclass
class _Batch:
    pending: list[_Request] = field(default_factory=list)
    worker: asyncio.Task[None] | None = None


class EngineBatches:
    """The engine runs of one operator process: one worker per lane with passes queued."""

    def __init__(
        self,
        *,
        registry: Registry,
        cluster: ClusterPort,
        config: OperatorConfig,
        registry_threads: RegistryThreads,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._registry = registry
        self._cluster = cluster
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
        self._public_url = config.public_url
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
        self._clock = clock
        self._batches: dict[int, _Batch] = {}
        """By lane: a namespace's passes always queue in the same one."""
        self._lanes = max(1, config.registry_threads)

    async def run(
        self,
        view: ObjectView,
        previous: Mapping[str, Any] | None,
        *,
        peers: Iterable[Mapping[str, Any]],
    ) -> tuple[ObjectResult, frozenset[str]]:
        """Gather the engine's input for one object and queue it for its lane's next engine run; returns its
        result and the names of the Secrets it reads that lack the credential label."""
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
        lane = hash(namespace) % self._lanes
        batch = self._batches.setdefault(lane, _Batch())
        batch.pending.append(request)
        if batch.worker is None or batch.worker.done():
            batch.worker = asyncio.create_task(self._drain(batch), name=f"engine:{lane}")
        result = await asyncio.shield(request.done)
        return result, frozenset(secret_names([target]) & secrets.unlabelled)

    async def close(self) -> None:
        """Wait for engine runs in flight (they hold registry connections); stop the probes."""
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

    async def _drain(self, batch: _Batch) -> None:
        """Run the registry steps for everything queued in one lane, again and again until nothing is left.

        Each batch's probes and report go on in a task of their own (`_finish`), so the lane's next batch never
        waits for a server that is slow to answer."""
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

    async def _apply_batch(self, requests: list[_Request]) -> list[_Outcome]:
        """Plan and apply the whole batch at once; on an error of one object, namespace by namespace, and in the
        namespace at fault object by object."""
        by_namespace: dict[str, list[_Request]] = {}
        for request in requests:
            by_namespace.setdefault(request.view.source.namespace, []).append(request)
        if len(by_namespace) > 1:
            try:
                return [(requests, await self._apply(requests))]
            except (PermanentError, DependencyPending):
                pass  # one object's problem: find out whose, and let the other namespaces through
        outcomes: list[_Outcome] = []
        for group in by_namespace.values():
            outcomes.extend(await self._apply_namespace(group))
        return outcomes

    async def _apply_namespace(self, requests: list[_Request]) -> list[_Outcome]:
        """One namespace's passes at once; on an error of one object, object by object."""
        if len(requests) > 1:
            try:
                return [(requests, await self._apply(requests))]
            except (PermanentError, DependencyPending):
                pass  # one object's problem: find out whose, and let the others through
        outcomes: list[_Outcome] = []
        for request in requests:
            try:
                outcomes.append(([request], await self._apply([request])))
            except ReconcilerError as error:
                outcomes.append(([request], error))
        return outcomes

    async def _finish(self, requests: list[_Request], step: EnginePass) -> None:
        """Probe the batch's servers on the event loop and report every object as soon as its status is known:
        the objects that need no probe at once, the others in groups of whatever results have arrived by the time
        the registry is free. One server that never answers delays only its own status."""
        waiting = {request.view.source: request for request in requests}
        arrived: asyncio.Queue[tuple[ProbeJob, ProbeResult] | None] = asyncio.Queue()
        probing: asyncio.Task[None] | None = None
        try:
            if step.jobs:
                await self._prepare(step)
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

    # -- the engine's steps -------------------------------------------------------------------------------------

    async def remove(self, source: SourceRef, *, deletion_policy: str | None) -> list[Action]:
        """The finalizer's step, on the registry threads: delete or orphan the object's rows."""
        return await self._registry_threads.run(
            functools.partial(
                remove_object,
                source,
                self._registry,
                settings=self._engine_settings,
                deletion_policy=deletion_policy,
            )
        )

    async def _apply(self, requests: list[_Request]) -> EnginePass:
        """The engine's steps up to apply: registry reads and the transaction on the registry threads; checking a
        rotated Secret against its live server (network) on a worker thread, holding no registry thread."""
        step = await self._registry_threads.run(functools.partial(self._plan, requests))
        if step.probe is not None:
            await asyncio.to_thread(check_credentials, step, self._registry)
        await self._registry_threads.run(functools.partial(apply_pass, step, self._registry))
        return step

    def _plan(self, requests: list[_Request]) -> EnginePass:
        """In a registry thread: the engine's input for the batch, and its plan."""
        resources: dict[tuple[str, str, str], Resource] = {}
        secrets: dict[tuple[str, str], dict[str, str]] = {}
        tenants: dict[str, Tenant] = {}
        for request in requests:
            namespace = request.view.source.namespace
            for resource in request.resources:
                resources[(resource.kind, namespace, resource.metadata.name)] = resource
            secrets.update(((namespace, name), data) for name, data in request.secrets.values.items())
            tenants[namespace] = request.tenant  # the latest read of each namespace
        desired = build_input(resources.values(), tenants=tenants.values(), secrets=secrets)
        scope = ObjectScope(
            targets=frozenset(request.view.source for request in requests),
            generations={request.view.source: request.view.generation for request in requests},
            statuses={request.view.source: request.previous for request in requests},
        )
        probe = None
        if self._probe_settings is not None:
            forced = frozenset(request.view.source for request in requests if request.forced)
            probe = ProbeOptions(self._probe_settings, forced=forced, public_url=self._public_url)
        return plan_pass(
            desired, self._registry, settings=self._engine_settings, scope=scope, now=self._clock(), probe=probe
        )

    async def _prepare(self, step: EnginePass) -> None:
        # OAuth preparation mixes authorization-server calls with short transactions: a worker thread.
        await asyncio.to_thread(prepare_pass, step, self._registry)

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
        reported = await self._registry_threads.run(
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
