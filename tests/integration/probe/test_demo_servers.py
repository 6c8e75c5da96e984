"""The shipped demo servers start, answer the probe as documented, and stop cleanly."""

from __future__ import annotations

import anyio
import pytest

from reconciler.demo import DEMO_BEARER_TOKEN, start_demo_servers
from reconciler.probe import ProbeHttp, probe_many_sync, probe_server
from tests.integration.probe.support import LOCAL, target


def test_demo_servers_probe_clean_and_stop() -> None:
    with start_demo_servers() as demo:
        assert demo.bearer_token == DEMO_BEARER_TOKEN
        results = probe_many_sync(
            [
                target(demo.tools_url),
                target(demo.events_url, transport="sse"),
                target(demo.protected_url, headers={"Authorization": f"Bearer {demo.bearer_token}"}),
            ],
            settings=LOCAL,
        )
        assert [result.ok for result in results] == [True, True, True], [result.message for result in results]
        assert [result.server_info["name"] for result in results] == ["demo-tools", "demo-events", "demo-secure"]
        protected = results[2].discovery
        assert protected is not None and protected.authorization_servers == (demo.authorization_server_url,)
    after = probe_many_sync([target(demo.tools_url)], settings=LOCAL)[0]
    assert after.error_class == "transport", "the servers are gone once the block exits"


def test_probe_server_needs_an_entered_probe_http() -> None:
    async def run() -> None:
        await probe_server(target("http://127.0.0.1:9/mcp"), settings=LOCAL, http=ProbeHttp())

    with pytest.raises(RuntimeError, match="must be entered"):
        anyio.run(run)


def test_probe_server_brings_its_own_http_when_none_is_given() -> None:
    result = anyio.run(lambda: probe_server(target("ftp://127.0.0.1/x"), settings=LOCAL))
    assert result.error_class == "blocked"
