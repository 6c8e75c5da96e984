"""The operator's Secret store at our own seam (a fake `read_namespaced_secret`): base64 decoding, the namespace
rule, resourceVersion invalidation and bounded calls. The real API server is exercised by the operator's e2e
suite (tests/e2e/)."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import anyio
import pytest
from kubernetes.aio.client.exceptions import ApiException

from reconciler.credentials import (
    CrossNamespaceReference,
    KubernetesSecretStore,
    MemoryMintedSecrets,
    NewSecret,
    SecretNotLoaded,
    SecretStoreUnavailable,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class FakeSecretsApi:
    """Answers like the operator's CoreObjects.read_namespaced_secret: the Secret's JSON, ApiException(404) when
    absent."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, Any]] = []
        self.delay = 0.0
        self.failure: Exception | None = None

    def put(self, namespace: str, name: str, data: dict[str, str], version: str) -> None:
        self.secrets[(namespace, name)] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": version},
            "data": {key: b64(value) for key, value in data.items()},
        }

    async def read_namespaced_secret(self, name: str, namespace: str, **options: Any) -> dict[str, Any]:
        self.calls.append((namespace, name, options.get("_request_timeout")))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        found = self.secrets.get((namespace, name))
        if found is None:
            raise ApiException(status=404, reason="Not Found")
        return found


def test_reads_and_decodes_base64() -> None:
    api = FakeSecretsApi()
    api.put("acme", "crm", {"token": "t0ken-ü", "other": "x"}, "1")
    store = KubernetesSecretStore(api)

    async def scenario() -> None:
        assert await store.aread("acme", "crm", "token") == "t0ken-ü"
        assert await store.aread("acme", "crm", "absent-key") is None
        assert await store.aread("acme", "missing", "token") is None

    anyio.run(scenario)
    assert api.calls[0][2] == 10.0  # every call carries the request timeout
    assert store.api_reads == 2  # one per Secret, the second key came from the cache


def test_sync_read_serves_prefetched_secrets_only() -> None:
    api = FakeSecretsApi()
    api.put("acme", "crm", {"token": "abc"}, "1")
    store = KubernetesSecretStore(api)
    with pytest.raises(SecretNotLoaded):
        store.read("acme", "crm", "token")
    anyio.run(store.prefetch, ["acme/crm#token", "acme/crm#other", "acme/gone#key"])
    assert store.read("acme", "crm", "token") == "abc"
    assert store.read("acme", "gone", "key") is None
    assert store.api_reads == 2


def test_resource_version_invalidates() -> None:
    api = FakeSecretsApi()
    api.put("acme", "crm", {"token": "old"}, "1")
    store = KubernetesSecretStore(api)
    anyio.run(store.prefetch, ["acme/crm#token"])
    assert not store.observe("acme", "crm", "1")  # the version we hold
    api.put("acme", "crm", {"token": "new"}, "2")
    assert store.read("acme", "crm", "token") == "old"
    assert store.observe("acme", "crm", "2")
    anyio.run(store.prefetch, ["acme/crm#token"])
    assert store.read("acme", "crm", "token") == "new"


def test_watched_body_updates_without_an_api_read() -> None:
    api = FakeSecretsApi()
    store = KubernetesSecretStore(api)
    store.observe_secret(
        {"metadata": {"namespace": "acme", "name": "crm", "resourceVersion": "7"}, "data": {"k": b64("v")}}
    )
    assert store.read("acme", "crm", "k") == "v"
    store.observe_secret({"metadata": {"namespace": "acme", "name": "crm"}}, deleted=True)
    assert store.read("acme", "crm", "k") is None
    assert store.api_reads == 0


def test_stale_entries_are_reread_after_max_age() -> None:
    api = FakeSecretsApi()
    api.put("acme", "crm", {"token": "v1"}, "1")
    now = [0.0]
    store = KubernetesSecretStore(api, max_age=60, clock=lambda: now[0])
    anyio.run(store.prefetch, ["acme/crm#token"])
    now[0] = 61
    api.put("acme", "crm", {"token": "v2"}, "2")
    anyio.run(store.prefetch, ["acme/crm#token"])
    assert store.read("acme", "crm", "token") == "v2"


def test_namespace_rule() -> None:
    api = FakeSecretsApi()
    api.put("acme", "crm", {"token": "a"}, "1")
    api.put("globex", "crm", {"token": "g"}, "1")
    store = KubernetesSecretStore(api, namespaces=["acme"])
    acme = store.scoped("acme")

    async def scenario() -> None:
        assert await acme.aread("acme", "crm", "token") == "a"
        with pytest.raises(CrossNamespaceReference, match="globex/crm#token"):
            await acme.aread("globex", "crm", "token")
        with pytest.raises(CrossNamespaceReference, match="not served"):
            await store.aread("globex", "crm", "token")

    anyio.run(scenario)
    with pytest.raises(CrossNamespaceReference):
        acme.read("globex", "crm", "token")
    assert ("globex", "crm") not in {(ns, name) for ns, name, _ in api.calls}


def test_minted_values_come_from_the_minted_store() -> None:
    minted = MemoryMintedSecrets()
    minted.put_all([NewSecret("acme", "crm", "oauth-access-token", "at-1")])
    store = KubernetesSecretStore(FakeSecretsApi(), minted=minted)
    assert store.scoped("acme").read("local:acme", "crm", "oauth-access-token") == "at-1"


def test_api_failures_are_retryable_and_quote_nothing() -> None:
    api = FakeSecretsApi()
    api.failure = ApiException(status=403, reason="Forbidden")
    api.failure.body = '{"data": {"token": "c2VjcmV0"}}'
    store = KubernetesSecretStore(api)
    with pytest.raises(SecretStoreUnavailable, match="HTTP 403 Forbidden") as caught:
        anyio.run(store.aread, "acme", "crm", "token")
    assert "c2VjcmV0" not in str(caught.value) and caught.value.__cause__ is None


def test_a_hanging_api_call_is_bounded() -> None:
    api = FakeSecretsApi()
    api.delay = 5
    store = KubernetesSecretStore(api, request_timeout=0.1)
    with pytest.raises(SecretStoreUnavailable, match="timed out"):
        anyio.run(store.aread, "acme", "crm", "token")


def test_undecodable_values_are_left_out_by_key_name(caplog: pytest.LogCaptureFixture) -> None:
    store = KubernetesSecretStore(FakeSecretsApi())
    store.observe_secret({"metadata": {"namespace": "acme", "name": "crm"}, "data": {"bad": "%%%", "ok": b64("v")}})
    assert store.read("acme", "crm", "bad") is None and store.read("acme", "crm", "ok") == "v"
    assert "bad" in caplog.text and "%%%" not in caplog.text


def test_an_unreachable_api_server_is_retryable() -> None:
    api = FakeSecretsApi()
    api.failure = aiohttp.ServerDisconnectedError()
    with pytest.raises(SecretStoreUnavailable, match="ServerDisconnectedError"):
        anyio.run(KubernetesSecretStore(api).aread, "acme", "crm", "token")


def _watched_body(namespace: str, name: str, data: dict[str, str], version: str) -> dict[str, Any]:
    labels = {"mcp.reconciler.dev/credential": "true"}
    metadata = {"namespace": namespace, "name": name, "resourceVersion": version, "labels": labels}
    return {"metadata": metadata, "data": {key: b64(value) for key, value in data.items()}}


def test_read_secrets_serves_watched_copies_and_rereads_the_others() -> None:
    api = FakeSecretsApi()
    api.put("acme", "plain", {"key": "one"}, "1")
    store = KubernetesSecretStore(api)
    store.observe_secret(_watched_body("acme", "watched", {"token": "w1"}, "7"))

    first = anyio.run(store.read_secrets, "acme", ["watched", "plain", "gone"])
    assert {name: copy.data for name, copy in first.items()} == {"plain": {"key": "one"}, "watched": {"token": "w1"}}
    assert first["watched"].labels == {"mcp.reconciler.dev/credential": "true"} and first["plain"].labels == {}
    assert sorted(name for _, name, _ in api.calls) == ["gone", "plain"], "the watched copy needs no API call"

    # An unwatched Secret changes without any event: the next pass sees it anyway.
    api.put("acme", "plain", {"key": "two"}, "2")
    second = anyio.run(store.read_secrets, "acme", ["watched", "plain"])
    assert second["plain"].data == {"key": "two"} and second["watched"].data == {"token": "w1"}
    assert [name for _, name, _ in api.calls].count("watched") == 0

    # The watch reports the watched one as gone (deleted, or its label removed): it is read again.
    store.observe("acme", "watched", None)
    api.put("acme", "watched", {"token": "w2"}, "8")
    assert anyio.run(store.read_secrets, "acme", ["watched"])["watched"].data == {"token": "w2"}
    assert "w1" not in repr(first) and "w2" not in repr(store)
