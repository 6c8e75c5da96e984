"""A binding's `spec.export`: the ConfigMap the operator writes from the runtime's rendering, kept current.

`reconciling.ObjectReconciler` calls `BindingExports` after a binding's engine pass (`with_export` writes the
ConfigMap and says in `status.export` how it went), from the finalizer (`remove`), and after any other object's pass
that changed something a binding's document reads (`schedule`: one debounced refresh per namespace for a burst of
changes, which passes the namespace's exporting bindings again). The document itself is the runtime's
(`runtime.export_document`, read on the registry threads); this module only decides where it goes and whether the
ConfigMap there is ours to write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from reconciler.api import MCPTemplateBinding
from reconciler.engine.statuses.exports import export_conflict, export_failed, export_written
from reconciler.errors import PermanentError, ReconcilerError, RetryableError
from reconciler.operator import statuses
from reconciler.operator.events import EventSink, PlannedEvent
from reconciler.operator.gathering import parse_resource, source_of
from reconciler.operator.objects import BINDING_KIND, ClusterPort, ObjectView, RegistryThreads
from reconciler.registry import Registry
from reconciler.runtime import build_config_map, export_document, export_target

log = logging.getLogger("mcp_reconciler.operator")


class Reconcile(Protocol):
    """`ObjectReconciler.reconcile`, which a refresh calls for each exporting binding."""

    async def __call__(self, body: Mapping[str, Any], *, peers: Iterable[Mapping[str, Any]]) -> None: ...


class BindingExports:
    """The exported ConfigMaps of every binding this operator serves, and their pending refreshes."""

    def __init__(
        self,
        *,
        registry: Registry,
        cluster: ClusterPort,
        events: EventSink,
        registry_threads: RegistryThreads,
        debounce: float,
        reconcile: Reconcile,
        current: Callable[[Mapping[str, Any]], Mapping[str, Any] | None],
        platform_tenant: str | None = None,
    ) -> None:
        self._registry = registry
        self._platform_tenant = platform_tenant
        """The namespace whose featured servers every tenant's exported document offers (None: no platform)."""
        self._cluster = cluster
        self._events = events
        self._registry_threads = registry_threads
        self._debounce = debounce
        self._reconcile = reconcile
        self._current = current
        """The freshest body the watch knows of an object (a debounced refresh holds bodies from before its wait)."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._peers: dict[str, list[Mapping[str, Any]]] = {}
        self._conflicts: set[str] = set()
        """Per namespace: the pending refresh of exported ConfigMaps, and the objects it will read."""

    async def with_export(
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
            await self.remove(view, body=None, status=previous)
        status = {key: value for key, value in status.items() if key != "export"}
        if target is None:
            return status
        namespace = view.source.namespace
        try:
            if view.uid is None:
                raise PermanentError("the binding has no uid to own the ConfigMap")
            document = await self._registry_threads.run(
                functools.partial(
                    export_document,
                    self._registry,
                    namespace,
                    target.template,
                    platform_tenant=self._platform_tenant,
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
            failed = export_failed(target.name, target.key, message=statuses.short(str(error)))
            return {**status, "export": failed}
        servers = len(json.loads(document).get("mcpServers") or {})
        if outcome == "conflict":
            message = f"ConfigMap {namespace}/{target.name} exists and is not controlled by this binding; left as is"
            # One Event per conflict, even when the status that records it could not be written (the next
            # pass would otherwise see no conflict in `previous` and post it again).
            if before.get("state") != "Conflict" and view.key not in self._conflicts:
                self._events.post(view.involved(), PlannedEvent("Warning", "Conflict", message))
            self._conflicts.add(view.key)
            return {**status, "export": export_conflict(target.name, target.key, message=message)}
        self._conflicts.discard(view.key)
        if outcome in ("created", "updated"):
            message = f"ConfigMap {namespace}/{target.name} {outcome} ({servers} servers)"
            self._events.post(view.involved(), PlannedEvent("Normal", "Exported", message))
        return {**status, "export": export_written(target.name, target.key, servers=servers)}

    async def remove(
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

    def schedule(self, namespace: str, peers: Iterable[Mapping[str, Any]]) -> None:
        """Something a binding's document depends on changed: refresh the namespace's exports shortly (one run
        for a burst of changes)."""
        bodies = list(peers)
        if not any(body.get("kind") == BINDING_KIND and (body.get("spec") or {}).get("export") for body in bodies):
            return
        self._peers[namespace] = bodies
        running = self._tasks.get(namespace)
        if running is None or running.done():
            self._tasks[namespace] = asyncio.create_task(self._refresh(namespace), name=f"export:{namespace}")

    def forget(self, view: ObjectView) -> None:
        self._conflicts.discard(view.key)

    def cancel(self) -> None:
        """The operator is closing: drop the pending refreshes."""
        for task in self._tasks.values():
            task.cancel()

    async def _refresh(self, namespace: str) -> None:
        await asyncio.sleep(self._debounce)
        bodies = [fresh for body in self._peers.pop(namespace, []) if (fresh := self._current(body)) is not None]
        for body in bodies:
            if body.get("kind") != BINDING_KIND or not (body.get("spec") or {}).get("export"):
                continue
            try:
                await self._reconcile(body, peers=bodies)
            except ReconcilerError as error:
                source = source_of(body)
                log.warning("%s %s/%s: %s", source.kind, source.namespace, source.name, error)
