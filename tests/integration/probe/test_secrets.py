"""Header values are secrets: a distinctive bearer sent to every failing server appears in no result field, no
log line (root logger at DEBUG, every library's loggers included) and no repr, even when a hostile server echoes
it back in its error text or reflects it in `WWW-Authenticate`."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from reconciler.demo.servers import MCP_PATH
from reconciler.demo.serving import ServerLoop
from reconciler.probe import ProbeResult, ProbeSettings, probe_many_sync
from tests.fixtures.mcp_servers import LocalServers, reflecting_token_app
from tests.integration.probe.support import fake_resolver, probe, target

TOKEN = "zz-Distinctive-Secret-4f1c9e-zz"
API_KEY = "ak-Another-Secret-77d2b1"


def _everything(result: ProbeResult) -> str:
    return repr(dataclasses.asdict(result)) + repr(result)


@pytest.fixture(scope="module")
def reflecting(server_loop: ServerLoop) -> str:
    return server_loop.serve_asgi(lambda _url: reflecting_token_app()) + MCP_PATH


def test_no_secret_in_results_or_logs(
    mcp_servers: LocalServers, reflecting: str, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "X-API-Key": API_KEY}
    urls = {
        "protected": mcp_servers.protected,
        "failing": mcp_servers.failing,
        "html": mcp_servers.html,
        "downstream": mcp_servers.downstream,
        "echoing": mcp_servers.echoing,
        "reflecting": reflecting,
        "refused": mcp_servers.refused,
        "issuer_mismatch": mcp_servers.issuer_mismatch,
        "not_found": mcp_servers.tools.replace("/mcp", "/missing"),
        "tls": mcp_servers.tools.replace("http://", "https://"),
        "black_hole": mcp_servers.black_hole,
    }
    targets = [target(url, headers=headers) for url in urls.values()]
    targets += [
        target(mcp_servers.failing, transport="sse", headers=headers),
        target(mcp_servers.websocket_protected, transport="websocket", headers=headers),
    ]
    settings = ProbeSettings(allow_private_networks=True, connect_timeout=1, request_timeout=1, total_timeout=1.5)
    with caplog.at_level(logging.DEBUG):  # the root logger: every library's loggers inherit DEBUG
        results = probe_many_sync(targets, settings=settings)
    assert not any(result.ok for result in results)
    echoed = results[list(urls).index("echoing")]
    assert echoed.error_class == "downstream" and "<redacted>" in echoed.message
    for probe_target, result in zip(targets, results, strict=True):
        text = _everything(result)
        assert TOKEN not in text and API_KEY not in text, (probe_target.url, result.message)
        assert TOKEN not in repr(probe_target) and API_KEY not in repr(probe_target)
    reflected = results[list(urls).index("reflecting")]
    assert reflected.error_class == "auth"
    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    assert TOKEN not in logged and API_KEY not in logged
    # The wire-level DEBUG records were emitted, only without header values: the check above could fail.
    assert any(record.name.startswith("httpcore2") for record in caplog.records)
    assert "receive_response_headers.complete" in caplog.text


def test_blocked_target_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        result = probe(
            target("http://metadata.test/mcp", headers={"Authorization": f"Bearer {TOKEN}"}, allow_private=False),
            resolver=fake_resolver({"metadata.test": ["169.254.169.254"]}),
        )
    assert result.error_class == "blocked"
    assert TOKEN not in _everything(result) and TOKEN not in caplog.text
