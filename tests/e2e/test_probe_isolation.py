"""Servers that never answer do not slow the others down, against a real API server: 10 black holes (they accept
TCP and never answer) among 50 healthy MCP servers in one namespace. Every healthy server is Ready while the
black holes' probes are still waiting, so the black holes cost the healthy ones nothing.

Before probes ran on the operator's event loop, they ran on its two registry threads, inside the namespace's
engine run: a healthy server batched with a black hole (or queued behind it) got its status only once the black
hole's probe had given up, so black holes were reported first or together with their neighbours.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from reconciler.demo.serving import ServerLoop
from tests.e2e.kube import KubeHttp, custom_path, wait_for
from tests.e2e.running import RunningOperator
from tests.e2e.support import condition, is_ready, server
from tests.fixtures.mcp_servers import LocalServers

Start = Callable[..., RunningOperator]
NewNamespace = Callable[..., str]
HEALTHY = 50
BLACK_HOLES = 10
READY_TIMEOUT = 180.0


@pytest.mark.timeout(300)
def test_black_holes_do_not_delay_healthy_servers(
    kube: KubeHttp,
    new_namespace: NewNamespace,
    sqlite_url: str,
    start_operator: Start,
    mcp_servers: LocalServers,
    server_loop: ServerLoop,
) -> None:
    namespace = new_namespace("holes")
    holes = [server_loop.serve_black_hole() + "/mcp" for _ in range(BLACK_HOLES)]
    healthy = {f"tools-{index:02d}": mcp_servers.tools for index in range(HEALTHY)}
    black = {f"hole-{index:02d}": url for index, url in enumerate(holes)}
    # One black hole every five healthy servers, from the start, so each engine run of the burst meets one.
    order: list[tuple[str, str]] = []
    for index, (name, url) in enumerate(healthy.items()):
        if index % (HEALTHY // BLACK_HOLES) == 0:
            order.append(next((n, u) for n, u in black.items() if n not in dict(order)))
        order.append((name, url))
    assert len(order) == HEALTHY + BLACK_HOLES
    start_operator([namespace], sqlite_url, probe=True, allow_private_networks=True)
    collection = custom_path(namespace, "mcpservers")

    def create(item: tuple[str, str]) -> None:
        name, url = item
        kube.post(
            collection, server(namespace, name, url=url, discovery={"enabled": True}, network={"allowPrivate": True})
        )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, order))

    reported_holes: set[str] = set()

    def all_healthy_ready() -> bool:
        items: list[dict[str, Any]] = kube.get(collection)["items"]
        by_name = {item["metadata"]["name"]: item for item in items}
        # A black hole's probe ends in a failed Ready (a timeout); until then it stays Unknown.
        reported_holes.update(name for name in black if condition(by_name.get(name), "Ready").get("status") == "False")
        return all(is_ready(by_name.get(name)) for name in healthy)

    wait_for(all_healthy_ready, timeout=READY_TIMEOUT, interval=0.2, what=f"{HEALTHY} healthy servers Ready")
    assert not reported_holes, f"healthy servers waited for black holes: {sorted(reported_holes)} reported first"

    def holes_reported() -> bool:
        items = kube.get(collection)["items"]
        failed = {item["metadata"]["name"] for item in items if condition(item, "Ready").get("status") == "False"}
        return set(black) <= failed

    # The black holes are still reconciled: each ends in a failed Ready once its probe gives up.
    wait_for(holes_reported, timeout=READY_TIMEOUT, what="every black hole reported not Ready")
