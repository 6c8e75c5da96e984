"""The operator's own reads (`operator/cluster.py`) against the real API server: a namespace's tenant is read once
for the passes that ask for it together or within `tenant_cache_seconds`, and read again after that."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.aio import client as aclient

from reconciler.engine.inputs import TENANT_CONFIGMAP, TENANT_LABEL
from reconciler.operator.cluster import Cluster, load_client_configuration
from tests.e2e.kube import ControlPlane, KubeHttp


async def _reads(
    plane: ControlPlane, kube: KubeHttp, namespace: str, *, cache_seconds: float
) -> tuple[list[str], list[str], int]:
    """Twenty passes ask for the tenant at once, then the ConfigMap changes and one more asks: the regions they
    were given, and how many GETs were sent."""
    configuration, _ = await load_client_configuration(kubeconfig=plane.kubeconfig, context=None, environ={})
    cluster = Cluster(aclient.ApiClient(configuration), request_timeout=30, tenant_cache_seconds=cache_seconds)
    sent: list[str] = []
    original = cluster._core.request

    async def counted(method: str, path: str, **options: Any) -> dict[str, Any]:
        sent.append(path)
        return await original(method, path, **options)

    cluster._core.request = counted  # type: ignore[method-assign]
    try:
        together = await asyncio.gather(*(cluster.fetch_tenant(namespace) for _ in range(20)))
        assert {tenant.slug for tenant in together} == {"acme"}
        kube.patch(f"/api/v1/namespaces/{namespace}/configmaps/{TENANT_CONFIGMAP}", {"data": {"region": "us"}})
        later = await cluster.fetch_tenant(namespace)
        return [tenant.vars["region"] for tenant in together], [later.vars["region"]], len(sent)
    finally:
        await cluster.close()


@pytest.mark.parametrize(("cache_seconds", "later", "gets"), [(300.0, "eu", 2), (0.0, "us", 4)])
def test_passes_share_a_tenant_read_until_it_is_stale(
    control_plane: ControlPlane,
    kube: KubeHttp,
    new_namespace: Callable[..., str],
    cache_seconds: float,
    later: str,
    gets: int,
) -> None:
    namespace = new_namespace("tenant", labels={TENANT_LABEL: "acme"})
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": TENANT_CONFIGMAP, "namespace": namespace},
        "data": {"region": "eu"},
    }
    kube.post(f"/api/v1/namespaces/{namespace}/configmaps", config_map)
    together, after, sent = asyncio.run(_reads(control_plane, kube, namespace, cache_seconds=cache_seconds))
    assert together == ["eu"] * 20, "twenty passes at once share one read"
    assert after == [later]
    assert sent == gets, "a namespace GET and a ConfigMap GET per read"


def test_the_api_server_is_reached_directly_whatever_the_proxy_environment_says(
    control_plane: ControlPlane,
    kube: KubeHttp,
    new_namespace: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As kopf's own client: no proxy from the environment and no `.netrc` lookup (each was a thread hop per
    request); a kubeconfig's `proxy-url` is still the client configuration's `proxy`."""
    namespace = new_namespace("direct", labels={TENANT_LABEL: "direct"})
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # the discard port: nothing listens there

    async def read() -> str:
        configuration, _ = await load_client_configuration(
            kubeconfig=control_plane.kubeconfig, context=None, environ={}
        )
        cluster = Cluster(aclient.ApiClient(configuration), request_timeout=30, tenant_cache_seconds=0)
        try:
            return (await cluster.fetch_tenant(namespace)).slug
        finally:
            await cluster.close()

    assert asyncio.run(read()) == "direct"
