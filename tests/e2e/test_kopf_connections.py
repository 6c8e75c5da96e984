"""kopf's API session is bounded (asyncio keeps a 256 KiB TLS read buffer per connection) and the bound counts its
watch streams, which hold their connections for as long as they stream: with one connection left for requests,
objects in two namespaces are still finalized and made Ready."""

from __future__ import annotations

import gc
from collections.abc import Callable

import aiohttp

from reconciler.operator.config import kopf_connection_limit
from tests.e2e.kube import KubeHttp
from tests.e2e.running import RunningOperator
from tests.e2e.support import create, server, wait_ready

OBJECTS_PER_NAMESPACE = 6


def test_a_tight_connection_bound_still_serves_every_namespace(
    kube: KubeHttp, new_namespace: Callable[..., str], sqlite_url: str, start_operator: Callable[..., RunningOperator]
) -> None:
    namespaces = [new_namespace("bound"), new_namespace("bound")]
    operator = start_operator(namespaces, sqlite_url, kopf_request_connections=1)
    limit = kopf_connection_limit(operator.config)
    assert limit is not None and limit < 20  # watch streams (7 per namespace) and one connection for requests

    refs = [
        create(kube, server(namespace, f"s{index}", url=f"https://s{index}.example.com/mcp"))
        for namespace in namespaces
        for index in range(OBJECTS_PER_NAMESPACE)
    ]
    for ref in refs:
        status = wait_ready(kube, ref)["status"]
        assert status["registryId"]
    finalized = [kube.get(ref.path)["metadata"].get("finalizers") for ref in refs]
    assert all(finalized), "kopf's finalizer patch went through the bounded session"

    bounded = [
        connector
        for connector in gc.get_objects()
        if isinstance(connector, aiohttp.TCPConnector) and not connector.closed and connector.limit == limit
    ]
    assert bounded, f"no open connector bounded at {limit}: kopf is not using the bounded session"
