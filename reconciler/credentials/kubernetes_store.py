"""The operator's `SecretStore`: Kubernetes Secrets read through `kubernetes.aio`, with a small cache.

The operator builds one `KubernetesSecretStore` around its core-objects client (`cluster.CoreObjects`, plain
JSON) and, before the engine plans a batch, awaits `prefetch(references)`; the engine's synchronous `read` is
then served from the cache. The cache is invalidated by resourceVersion: the operator's Secret watch calls
`observe(...)` (or `observe_secret(body)`, which also takes the new data without another API call), and entries
older than `max_age` are re-read. Values are base64-decoded once and kept only in memory.

Namespace rule: an object may only read Secrets in its own namespace. `scoped(namespace)` gives the engine a
reader for one object that refuses any other namespace (`CrossNamespaceReference`); `namespaces` limits the store
to the namespaces the operator serves. `local:` references go to the `minted` store (the registry's encrypted
table). Every API call is bounded by `request_timeout`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from reconciler.credentials.errors import CrossNamespaceReference, SecretStoreUnavailable
from reconciler.credentials.headers import SecretReader, parse_reference
from reconciler.credentials.stores import split_local

logger = logging.getLogger(__name__)

NOT_FOUND = 404


class SecretsApi(Protocol):
    """Reads one Secret as its JSON (the operator's `cluster.CoreObjects`); raises the kubernetes client's
    `ApiException` on HTTP errors."""

    async def read_namespaced_secret(
        self, name: str, namespace: str, *, _request_timeout: float | tuple[float, float] | None = ...
    ) -> Mapping[str, Any]: ...


class SecretNotLoaded(RuntimeError):
    """`read` was asked for a Secret nobody prefetched: a driver bug, not a missing Secret."""


@dataclass
class _Entry:
    resource_version: str | None
    data: dict[str, str] | None = field(repr=False)
    """Decoded values by key; None when the Secret does not exist."""
    fetched_at: float
    labels: Mapping[str, str] = field(default_factory=dict)
    watched: bool = False
    """A watch reports this Secret's changes (`observe_secret`), so the copy stays valid until `max_age`."""


@dataclass(frozen=True)
class SecretCopy:
    """One Secret as a pass sees it: decoded values and labels (never logged)."""

    data: dict[str, str] = field(repr=False)
    labels: Mapping[str, str] = field(default_factory=dict)


def decode_secret_data(data: Mapping[str, str] | None, *, namespace: str, name: str) -> dict[str, str]:
    """A Secret's `data` (base64 values) decoded to text; undecodable keys are left out, and said so by name."""
    decoded: dict[str, str] = {}
    for key, encoded in (data or {}).items():
        try:
            decoded[key] = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            logger.warning("key %s of Secret %s/%s is not base64 UTF-8 text; ignored", key, namespace, name)
    return decoded


class KubernetesSecretStore:
    """Secrets from the API server, cached by (namespace, name) and invalidated by resourceVersion."""

    def __init__(
        self,
        api: SecretsApi,
        *,
        minted: SecretReader | None = None,
        namespaces: Collection[str] | None = None,
        request_timeout: float = 10.0,
        max_age: float = 300.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._minted = minted
        self._namespaces = frozenset(namespaces) if namespaces is not None else None
        self._timeout = request_timeout
        self._max_age = max_age
        self._max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self.api_reads = 0
        """How many times the API was asked (for tests and metrics)."""

    def __repr__(self) -> str:
        return f"KubernetesSecretStore({len(self._cache)} cached)"

    # -- reading -------------------------------------------------------------------------------------------

    async def aread(self, namespace: str, name: str, key: str) -> str | None:
        if split_local(namespace) is not None:
            return self._minted.read(namespace, name, key) if self._minted is not None else None
        entry = await self._entry(namespace, name)
        return None if entry.data is None else entry.data.get(key)

    def read(self, namespace: str, name: str, key: str) -> str | None:
        """From the cache only (the engine is synchronous): `prefetch` the references first."""
        if split_local(namespace) is not None:
            return self._minted.read(namespace, name, key) if self._minted is not None else None
        self._check_namespace(namespace, f"{namespace}/{name}#{key}")
        entry = self._cache.get((namespace, name))
        if entry is None:
            raise SecretNotLoaded(f"Secret {namespace}/{name} was not prefetched before a synchronous read")
        return None if entry.data is None else entry.data.get(key)

    async def prefetch(self, references: Iterable[str]) -> None:
        """Load (or refresh, when stale) every Secret the references name, concurrently."""
        wanted = {
            parse_reference(reference)[:2]
            for reference in references
            if split_local(parse_reference(reference)[0]) is None
        }
        async with anyio.create_task_group() as tasks:
            for namespace, name in sorted(wanted):
                tasks.start_soon(self._entry, namespace, name)

    async def read_secrets(self, namespace: str, names: Collection[str]) -> dict[str, SecretCopy]:
        """The named Secrets of one namespace that exist, read concurrently.

        A copy kept fresh by the watch is served from the cache; any other Secret (one the watch's label
        selector does not cover) is read from the API server every time, so a change to it is seen at the
        next pass rather than after `max_age`.
        """
        entries: dict[str, _Entry] = {}

        async def one(name: str) -> None:
            entries[name] = await self._entry(namespace, name, cached_only_if_watched=True)

        async with anyio.create_task_group() as tasks:
            for name in sorted(set(names)):
                tasks.start_soon(one, name)
        return {
            name: SecretCopy(data=dict(entry.data), labels=dict(entry.labels))
            for name, entry in sorted(entries.items())
            if entry.data is not None
        }

    def scoped(self, namespace: str) -> NamespacedSecrets:
        """A reader for one object's references: same namespace (or its own minted values) only."""
        return NamespacedSecrets(self, namespace)

    # -- invalidation (from the operator's Secret watch) ---------------------------------------------------

    def observe(self, namespace: str, name: str, resource_version: str | None) -> bool:
        """A watch saw this Secret at `resource_version` (None: deleted). Drops a cached copy of another version;
        returns True when something was dropped."""
        entry = self._cache.get((namespace, name))
        if entry is None or (resource_version is not None and entry.resource_version == resource_version):
            return False
        del self._cache[(namespace, name)]
        return True

    def observe_secret(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """Take a watched Secret's body (`metadata`, `data`) as the current copy: no API read needed."""
        metadata = body.get("metadata") or {}
        namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
        if not namespace or not name:
            return
        if deleted:
            self._remember(namespace, name, _Entry(None, None, self._clock(), watched=True))
            return
        data = decode_secret_data(body.get("data"), namespace=namespace, name=name)
        labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
        entry = _Entry(metadata.get("resourceVersion"), data, self._clock(), labels=labels, watched=True)
        self._remember(namespace, name, entry)

    # -- internals -----------------------------------------------------------------------------------------

    def _check_namespace(self, namespace: str, reference: str) -> None:
        if self._namespaces is not None and namespace not in self._namespaces:
            raise CrossNamespaceReference(
                reference, namespace=namespace, why=f"namespace {namespace!r} is not served by this operator"
            )

    async def _entry(self, namespace: str, name: str, *, cached_only_if_watched: bool = False) -> _Entry:
        self._check_namespace(namespace, f"{namespace}/{name}")
        cached = self._cache.get((namespace, name))
        usable = cached is not None and (cached.watched or not cached_only_if_watched)
        if cached is not None and usable and self._clock() - cached.fetched_at < self._max_age:
            self._cache.move_to_end((namespace, name))
            return cached
        entry = await self._fetch(namespace, name, previous=cached)
        self._remember(namespace, name, entry)
        return entry

    async def _fetch(self, namespace: str, name: str, *, previous: _Entry | None) -> _Entry:
        # The operator's dependencies, imported when used so the CLI never pays for them.
        from aiohttp import ClientError
        from kubernetes.aio.client.exceptions import ApiException

        self.api_reads += 1
        try:
            with anyio.fail_after(self._timeout + 1):
                secret = await self._api.read_namespaced_secret(name, namespace, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status == NOT_FOUND:
                return _Entry(None, None, self._clock())
            raise SecretStoreUnavailable(
                f"reading Secret {namespace}/{name} failed: HTTP {err.status} {err.reason or ''}".strip()
            ) from None  # the exception's body may quote the Secret
        except TimeoutError as err:
            raise SecretStoreUnavailable(
                f"reading Secret {namespace}/{name} timed out after {self._timeout:g}s"
            ) from err
        except (ClientError, OSError) as err:
            raise SecretStoreUnavailable(f"reading Secret {namespace}/{name} failed: {type(err).__name__}") from None
        metadata = secret.get("metadata") or {}
        version = metadata.get("resourceVersion")
        labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
        watched = previous.watched if previous is not None else False
        if previous is not None and previous.data is not None and version and previous.resource_version == version:
            return _Entry(version, previous.data, self._clock(), labels=labels, watched=watched)  # unchanged
        data = decode_secret_data(secret.get("data"), namespace=namespace, name=name)
        return _Entry(version, data, self._clock(), labels=labels, watched=watched)

    def _remember(self, namespace: str, name: str, entry: _Entry) -> None:
        self._cache[(namespace, name)] = entry
        self._cache.move_to_end((namespace, name))
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)


class NamespacedSecrets:
    """One object's view of the store: its own namespace's Secrets and its tenant's minted values only."""

    def __init__(self, store: KubernetesSecretStore, namespace: str) -> None:
        self._store = store
        self.namespace = namespace

    def __repr__(self) -> str:
        return f"NamespacedSecrets({self.namespace!r})"

    def read(self, namespace: str, name: str, key: str) -> str | None:
        self._check(namespace, name, key)
        return self._store.read(namespace, name, key)

    async def aread(self, namespace: str, name: str, key: str) -> str | None:
        self._check(namespace, name, key)
        return await self._store.aread(namespace, name, key)

    def _check(self, namespace: str, name: str, key: str) -> None:
        if split_local(namespace) is None and namespace != self.namespace:
            raise CrossNamespaceReference(f"{namespace}/{name}#{key}", namespace=self.namespace)
