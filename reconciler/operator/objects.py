"""What every part of an operator pass shares: the object as a pass sees it, and the ports to the cluster.

`reconciling.ObjectReconciler` builds an `ObjectView` at the start of each pass and hands it to the parts it
composes: `batching.py` (the engine runs), `recording.py` (status, Events, metrics) and `exports.py` (a binding's
ConfigMap). They reach the API server through `ClusterPort` (implemented by `cluster.Cluster`, faked in tests at
this seam), the watch's view of all objects through `IndexedObjects` (`indexing.ObjectIndex`, kept by
`handlers.py`), and the registry through `RegistryThreads`, so no registry call ever runs on the event loop.
`ClusterSecretValues` lends the cluster's Secrets to engine work on a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from reconciler.api import MCPTemplateBinding
from reconciler.engine.inputs import Tenant
from reconciler.errors import ReconcilerError
from reconciler.operator.cluster import SecretsRead
from reconciler.operator.events import involved_object
from reconciler.operator.gathering import source_of
from reconciler.registry.records import SourceRef

BINDING_KIND = MCPTemplateBinding.model_fields["kind"].default
_T = TypeVar("_T")


class ClusterPort(Protocol):
    """What a pass needs from the API server (implemented by `cluster.Cluster`)."""

    async def fetch_tenant(self, namespace: str) -> Tenant: ...

    async def fetch_secrets(self, namespace: str, names: Collection[str]) -> SecretsRead: ...

    async def patch_status(self, source: SourceRef, patch: Mapping[str, Any]) -> str | None: ...

    def observe_secret(self, body: Mapping[str, Any], *, gone: bool) -> None: ...

    async def write_config_map(self, body: Mapping[str, Any], *, owner_uid: str) -> str: ...

    async def delete_config_map(self, namespace: str, name: str, *, owner_uid: str) -> bool: ...


class IndexedObjects(Protocol):
    """The object index as the passes read it (`indexing.ObjectIndex`, kept from the watch events)."""

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


class RegistryThreads:
    """Registry work is synchronous SQLAlchemy: run it on the registry threads, never on the event loop."""

    def __init__(self, executor: Executor | None) -> None:
        self._executor = executor
        """None: the loop's default executor. The operator passes a small pool, which bounds concurrent registry
        transactions (a global rate limit on the database) and the memory each worker thread holds."""

    async def run(self, call: Callable[[], _T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


class ClusterSecretValues:
    """A synchronous `SecretReader` over `ClusterPort.fetch_secrets`, for engine work the operator runs on a worker
    thread (the members' token sweep): each read is sent to the operator's event loop and waited for, bounded by
    `timeout`. A Secret that cannot be read reads as missing, so the work reports it instead of failing."""

    def __init__(self, cluster: ClusterPort, loop: asyncio.AbstractEventLoop, *, timeout: float = 30.0) -> None:
        self._cluster = cluster
        self._loop = loop
        self._timeout = timeout

    def read(self, namespace: str, name: str, key: str) -> str | None:
        future = asyncio.run_coroutine_threadsafe(self._cluster.fetch_secrets(namespace, [name]), self._loop)
        try:
            found = future.result(timeout=self._timeout)
        except (ReconcilerError, TimeoutError):
            future.cancel()
            return None
        return found.values.get(name, {}).get(key)
