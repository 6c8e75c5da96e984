"""The operator's own API-server client (kubernetes.aio): tenants, Secret values, status writes, and login.

Kopf watches and patches through its private client; everything the reconcile loop reads or writes itself
goes through `Cluster`, created once per process by `running.py` and handed to the reconcile loop. Secret
values are read through the credentials package's `KubernetesSecretStore` (cached while the credential watch
keeps them current) and handed to the engine only; they are never logged, and error messages name Secrets,
never their contents.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
from kubernetes.aio import client as aclient
from kubernetes.aio import config as aconfig

from reconciler.api import API_GROUP, API_VERSION, kind_for
from reconciler.credentials.errors import SecretStoreUnavailable
from reconciler.credentials.kubernetes_store import KubernetesSecretStore
from reconciler.engine.inputs import TENANT_CONFIGMAP, TENANT_LABEL, Tenant
from reconciler.errors import RetryableError
from reconciler.operator.annotations import CREDENTIAL_LABEL
from reconciler.operator.peering import CLUSTER_PEERINGS, NAMESPACED_PEERINGS, PEERING_GROUP, PEERING_VERSION
from reconciler.registry.records import SourceRef

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_NOT_FOUND = 404
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class ClusterUnavailable(RetryableError):
    """The API server refused or failed a request the pass needs; try again later."""


@dataclass(frozen=True)
class SecretsRead:
    """Decoded values of the Secrets a pass needs, by name, and which of them are not watched (unlabelled)."""

    values: dict[str, dict[str, str]] = field(default_factory=dict)
    unlabelled: frozenset[str] = frozenset()


@dataclass(frozen=True)
class KubeAccess:
    """Where the API server is and how to authenticate, in the shape both clients (kubernetes, kopf) need."""

    server: str
    token: str | None = None
    ca_path: str | None = None
    insecure: bool = False
    certificate_path: str | None = None
    private_key_path: str | None = None
    in_cluster: bool = False


async def load_client_configuration(
    *,
    kubeconfig: Path | None,
    context: str | None,
    environ: Mapping[str, str],
) -> tuple[aclient.Configuration, bool]:
    """A client configuration from `kubeconfig`, else `$KUBECONFIG`/`~/.kube/config`, else the service account.

    Returns the configuration and whether it is the in-cluster one (kopf then logs in with the service
    account itself, re-reading the rotating token). Its client reaches the API server as kopf's does: through the
    kubeconfig's `proxy-url` if any, never a proxy from the environment or a `.netrc` (looking those up cost two
    thread hops per request, and reading `.netrc` from disk each time).
    """
    configuration = aclient.Configuration()
    configuration.client_session_kwargs = {"trust_env": False}
    candidates = [kubeconfig] if kubeconfig else [Path(p) for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if not candidates:
        default = Path("~/.kube/config").expanduser()
        candidates = [default] if default.exists() else []
    if candidates:
        await aconfig.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(candidates[0]), context=context, client_configuration=configuration, persist_config=False
        )
        return configuration, False
    aconfig.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration, True


def access_of(configuration: aclient.Configuration, *, in_cluster: bool) -> KubeAccess:
    """The connection facts kopf's login handler returns, taken from the kubernetes client configuration."""
    authorization = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get(
        "BearerToken"
    )
    token = None
    if authorization:
        token = authorization.split(" ", 1)[1] if authorization.lower().startswith("bearer ") else authorization
    return KubeAccess(
        server=str(configuration.host),
        token=token,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        in_cluster=in_cluster,
    )


class _NotFound(Exception):
    """Internal: the object asked for does not exist."""


@asynccontextmanager
async def _request(what: str) -> AsyncIterator[None]:
    """API errors as the domain's retryable error (404 aside); the message names the object, not its content."""
    try:
        yield
    except aclient.ApiException as error:
        if error.status == _NOT_FOUND:
            raise _NotFound(what) from error
        raise ClusterUnavailable(f"cannot {what}: HTTP {error.status} {error.reason or ''}".rstrip()) from error
    except _TRANSPORT_ERRORS as error:
        raise ClusterUnavailable(f"cannot {what}: {type(error).__name__}") from error


class CoreObjects:
    """Core (`/api/v1`) objects, and our objects' status subresource, as plain JSON through the kubernetes
    client's own `ApiClient`.

    The generated `CoreV1Api` imports a pydantic model for every core type on first use, about 24 MB that stays
    resident; the operator reads and writes four kinds and wants their JSON anyway. Same client, same auth,
    same `ApiException` on errors.
    """

    def __init__(self, api_client: aclient.ApiClient, *, request_timeout: float) -> None:
        self._api_client = api_client
        self._timeout = request_timeout

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        request_timeout: float | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = await self._api_client.param_serialize(
            method=method,
            resource_path=path,
            header_params=headers,
            body=dict(body) if body is not None else None,
            auth_settings=["BearerToken"],
        )
        response = await self._api_client.call_api(*serialized, _request_timeout=request_timeout or self._timeout)
        await response.read()  # type: ignore[no-untyped-call]
        found = self._api_client.response_deserialize(
            response_data=response, response_types_map={"200": "object", "201": "object", "202": "object"}
        ).data
        return found if isinstance(found, dict) else {}

    async def read_namespaced_secret(
        self, name: str, namespace: str, *, _request_timeout: float | tuple[float, float] | None = None
    ) -> dict[str, Any]:
        """The Secret as JSON (the `SecretsApi` the credentials store reads through)."""
        timeout = _request_timeout if isinstance(_request_timeout, int | float) else None
        return await self.request("GET", _core_path(namespace, "secrets", name), request_timeout=timeout)


def _custom_path(namespace: str, plural: str, name: str) -> str:
    return f"/apis/{API_GROUP}/{API_VERSION}/namespaces/{quote(namespace, safe='')}/{plural}/{quote(name, safe='')}"


def _core_path(namespace: str, plural: str | None = None, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}"
    if plural is not None:
        path += f"/{plural}"
    if name is not None:
        path += f"/{quote(name, safe='')}"
    return path


class Cluster:
    """Reads and writes the operator does itself. One per process; the API client is closed by `close`."""

    def __init__(
        self, api_client: aclient.ApiClient, *, request_timeout: float = 30.0, tenant_cache_seconds: float = 0.0
    ) -> None:
        self._api_client = api_client
        self._core = CoreObjects(api_client, request_timeout=request_timeout)
        self._tenant_cache_seconds = tenant_cache_seconds
        self._tenants: dict[str, tuple[float, asyncio.Future[Tenant]]] = {}
        """Per namespace: when its read started, and the read (shared by every pass that asks meanwhile)."""
        self._custom = aclient.CustomObjectsApi(api_client)
        self.secrets = KubernetesSecretStore(self._core, request_timeout=request_timeout)
        """Secret values, cached while the credential watch keeps them current (`observe_secret`)."""

    async def close(self) -> None:
        await self._api_client.close()  # type: ignore[no-untyped-call]

    async def fetch_tenant(self, namespace: str) -> Tenant:
        """The namespace as a tenant: slug from its label (else its name), vars from ConfigMap `mcp-tenant`.

        Passes asking for one namespace while its read is in flight, or within `tenant_cache_seconds` of its start,
        share that read: a burst of a hundred new objects in a namespace costs two GETs, not two hundred. A failed
        read is not kept."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        known = self._tenants.get(namespace)
        if known is not None:
            started, read = known
            fresh = not read.done() or (
                not read.cancelled() and read.exception() is None and now - started < self._tenant_cache_seconds
            )
            if fresh:
                return await asyncio.shield(read)
        read = asyncio.ensure_future(self._read_tenant(namespace))
        self._tenants[namespace] = (now, read)
        read.add_done_callback(lambda done: self._forget_failed_read(namespace, done))
        return await asyncio.shield(read)

    def _forget_failed_read(self, namespace: str, read: asyncio.Future[Tenant]) -> None:
        known = self._tenants.get(namespace)
        if known is not None and known[1] is read and (read.cancelled() or read.exception() is not None):
            del self._tenants[namespace]

    async def _read_tenant(self, namespace: str) -> Tenant:
        labels: dict[str, str] = {}
        try:
            async with _request(f"read namespace {namespace}"):
                found = await self._core.request("GET", _core_path(namespace))
                labels = dict(_metadata(found).get("labels") or {})
        except _NotFound:
            pass
        variables: dict[str, str] = {}
        try:
            async with _request(f"read ConfigMap {namespace}/{TENANT_CONFIGMAP}"):
                config_map = await self._core.request("GET", _core_path(namespace, "configmaps", TENANT_CONFIGMAP))
                variables = {str(key): str(value) for key, value in (config_map.get("data") or {}).items()}
        except _NotFound:
            pass
        return Tenant(namespace=namespace, slug=labels.get(TENANT_LABEL) or namespace, vars=variables)

    async def fetch_secrets(self, namespace: str, names: Collection[str]) -> SecretsRead:
        """Decoded values of the named Secrets; a missing Secret is simply absent (the engine reports it)."""
        try:
            copies = await self.secrets.read_secrets(namespace, names)
        except SecretStoreUnavailable as error:
            raise ClusterUnavailable(str(error)) from None
        return SecretsRead(
            values={name: copy.data for name, copy in copies.items()},
            unlabelled=frozenset(name for name, copy in copies.items() if CREDENTIAL_LABEL not in copy.labels),
        )

    def observe_secret(self, body: Mapping[str, Any], *, gone: bool) -> None:
        """The credential watch saw a labelled Secret change. `gone`: deleted, or no longer labelled (a label
        selector watch reports both as DELETED), so the cached copy is dropped and the next pass reads it."""
        metadata = body.get("metadata") or {}
        namespace, name = str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
        if gone:
            self.secrets.observe(namespace, name, None)
        else:
            self.secrets.observe_secret(body)

    async def write_config_map(self, body: Mapping[str, Any], *, owner_uid: str) -> str:
        """Create or update an exported ConfigMap: `created`, `updated`, `unchanged`, or `conflict` when one of
        that name exists that `owner_uid` does not control (it is left as it is)."""
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        path = _core_path(namespace, "configmaps", name)
        try:
            async with _request(f"read ConfigMap {namespace}/{name}"):
                current = await self._core.request("GET", path)
        except _NotFound:
            async with _request(f"create ConfigMap {namespace}/{name}"):
                await self._core.request("POST", _core_path(namespace, "configmaps"), body=body)
            return "created"
        if not _controlled_by(current, owner_uid):
            return "conflict"
        labels = dict(_metadata(current).get("labels") or {})
        if dict(current.get("data") or {}) == body.get("data") and all(
            labels.get(key) == value for key, value in metadata.get("labels", {}).items()
        ):
            return "unchanged"
        patch = {"metadata": {"labels": metadata.get("labels", {})}, "data": body.get("data")}
        async with _request(f"update ConfigMap {namespace}/{name}"):
            await self._core.request("PATCH", path, body=patch, content_type=STRATEGIC_MERGE_PATCH)
        return "updated"

    async def delete_config_map(self, namespace: str, name: str, *, owner_uid: str) -> bool:
        """Delete an exported ConfigMap if `owner_uid` controls it; False when it is gone or someone else's."""
        path = _core_path(namespace, "configmaps", name)
        try:
            async with _request(f"read ConfigMap {namespace}/{name}"):
                current = await self._core.request("GET", path)
            if not _controlled_by(current, owner_uid):
                return False
            async with _request(f"delete ConfigMap {namespace}/{name}"):
                await self._core.request("DELETE", path)
        except _NotFound:
            return False
        return True

    async def read_peering(self, namespace: str | None, name: str) -> Mapping[str, Any] | None:
        """The status of kopf's peering object (namespaced, or cluster-wide when `namespace` is None); None when
        the object does not exist. ClusterUnavailable when it cannot be read, a missing CRD included."""
        where = f"{namespace}/{name}" if namespace is not None else name
        async with _request(f"read the peering object {where}"):
            try:
                if namespace is None:
                    found = await self._custom.get_cluster_custom_object(
                        PEERING_GROUP, PEERING_VERSION, CLUSTER_PEERINGS, name
                    )
                else:
                    found = await self._custom.get_namespaced_custom_object(
                        PEERING_GROUP, PEERING_VERSION, namespace, NAMESPACED_PEERINGS, name
                    )
            except aclient.ApiException as error:
                if error.status != _NOT_FOUND:
                    raise
                if _names_object(error, name):
                    return None
                raise ClusterUnavailable(f"cannot read the peering object {where}: its CRD is not installed") from None
        status = found.get("status") if isinstance(found, dict) else None
        return status if isinstance(status, dict) else {}

    async def patch_status(self, source: SourceRef, patch: Mapping[str, Any]) -> str | None:
        """Merge-patch the status subresource; returns the new resourceVersion (None when the object is gone).

        Sent as plain JSON like the core objects: the generated `CustomObjectsApi` method validates its arguments
        with pydantic on every call, a cost paid once per status write (the operator's most frequent request)."""
        plural = kind_for(source.kind).plural
        path = _custom_path(source.namespace, plural, source.name) + "/status"
        try:
            async with _request(f"write the status of {source.kind} {source.namespace}/{source.name}"):
                result = await self._core.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        except _NotFound:
            return None
        version = _metadata(result).get("resourceVersion")
        return str(version) if version is not None else None


def _names_object(error: Any, name: str) -> bool:
    """A 404 about the object itself (its details name it), not about its resource type (a missing CRD)."""
    try:
        details = json.loads(error.body or "{}").get("details") or {}
    except (TypeError, ValueError):
        return False
    return isinstance(details, dict) and details.get("name") == name


def _metadata(found: Mapping[str, Any]) -> Mapping[str, Any]:
    metadata = found.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def _controlled_by(found: Mapping[str, Any], owner_uid: str) -> bool:
    references = _metadata(found).get("ownerReferences") or ()
    return any(
        isinstance(reference, Mapping) and reference.get("uid") == owner_uid and reference.get("controller")
        for reference in references
    )
