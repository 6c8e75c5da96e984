"""Shared set-up for the credentials integration tests: a registry with a tenant and servers, the stores, the
credential context, and a way to run the async API from a synchronous test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from reconciler.credentials import (
    CredentialContext,
    CredentialSettings,
    CredentialStores,
    LocalSecretStore,
    ResolvedHeaders,
    add_server_credential,
)
from reconciler.credentials.sealing import generate_key
from reconciler.probe import ProbeAuthServer, ProbeHttp, ProbeResult, ProbeSettings, ProbeTarget, probe_server
from reconciler.registry import Registry, open_registry
from reconciler.registry.records import ServerRecord, TenantRecord

TENANT = "acme"
NAMESPACE = "acme"
LOCAL = ProbeSettings(allow_private_networks=True, connect_timeout=2, request_timeout=5, total_timeout=10)
REDIRECT_URI = "http://127.0.0.1:9/oauth/callback"
_T = TypeVar("_T")


class StaticSecrets:
    """Secret manifests from a folder, as the CLI loads them (a plain dict here)."""

    def __init__(self, values: dict[tuple[str, str], dict[str, str]] | None = None) -> None:
        self.values = {key: dict(data) for key, data in (values or {}).items()}  # tests edit their own copy

    def read(self, namespace: str, name: str, key: str) -> str | None:
        return self.values.get((namespace, name), {}).get(key)


@dataclass
class World:
    registry: Registry
    static: StaticSecrets
    store: LocalSecretStore
    key: bytes

    @property
    def stores(self) -> CredentialStores:
        return CredentialStores(registry=self.registry, minted=self.store.minted)

    def context(self, http: ProbeHttp, **settings: Any) -> CredentialContext:
        return CredentialContext(
            stores=self.stores,
            secrets=self.store,
            authserver=ProbeAuthServer(http, LOCAL),
            fingerprint_key=self.registry.fingerprint_key(),
            settings=CredentialSettings(redirect_uris=(REDIRECT_URI,), **settings),
        )

    def add_servers(self, *records: ServerRecord) -> None:
        with self.registry.transaction() as transaction:
            transaction.ensure_tenants([TenantRecord(TENANT, NAMESPACE)])
            transaction.insert(list(records))


@contextmanager
def world(registry_url: str, secrets: dict[tuple[str, str], dict[str, str]] | None = None) -> Iterator[World]:
    key = generate_key()
    static = StaticSecrets(secrets)
    with open_registry(registry_url) as registry:
        yield World(registry=registry, static=static, store=LocalSecretStore(static, registry, key), key=key)


def server(name: str, url: str, auth_type: str = "none", **auth: Any) -> ServerRecord:
    return ServerRecord(tenant=TENANT, name=name, url=url, auth_type=auth_type, auth=auth, allow_private=True)


def run(make: Callable[[ProbeHttp], Awaitable[_T]]) -> _T:
    """Run `make(http)` on a fresh event loop with an entered `ProbeHttp`."""

    async def main() -> _T:
        async with ProbeHttp() as http:
            return await make(http)

    return anyio.run(main)


def target(url: str, headers: dict[str, str] | None = None, *, name: str = "test") -> ProbeTarget:
    return ProbeTarget(tenant=TENANT, server=name, url=url, headers=headers or {}, allow_private=True)


def probe(url: str, headers: dict[str, str] | None = None) -> ProbeResult:
    return run(lambda http: probe_server(target(url, headers), settings=LOCAL, http=http))


def bearer_headers(record: ServerRecord, secrets: StaticSecrets) -> dict[str, str]:
    resolved = ResolvedHeaders()
    add_server_credential(resolved, record.auth_type, record.auth, secrets)
    assert not resolved.missing
    return resolved.headers
