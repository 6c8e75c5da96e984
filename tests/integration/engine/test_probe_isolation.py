"""Isolation as a property: nothing that goes wrong while probing one server touches another.

A fault is injected into each probe step in turn (our own functions, wrapped to raise for one server only), for
one server among five on real MCP servers and a real authorization server, through the real reconcile loop and
registry. Every other server still gets its status; the failing one gets a recorded `internal` error with the
message.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from reconciler.engine.probing import ProbeOptions
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.manifests import load_folder
from reconciler.probe import ProbeSettings
from reconciler.registry import Registry
from tests.fixtures.authorization_server import OAuthServers
from tests.fixtures.mcp_servers import LocalServers

PROBE = ProbeOptions(ProbeSettings(allow_private_networks=True, total_timeout=15))
SECRET = "isolation-client-secret"
VICTIM = "victim"

Predicate = Callable[[str, tuple[Any, ...], dict[str, Any]], bool]
"""(victim's host:port, args, kwargs) -> is this call about the victim?"""


def _url_arg(netloc: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return any(netloc in str(value) for value in (*args, *kwargs.values()) if isinstance(value, str))


def _target_of_self(netloc: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return bool(args[0].target.server == VICTIM)


# step -> [(module, attribute, predicate)]: every wrapped function raises for the victim only.
STEPS: dict[str, list[tuple[str, str, Predicate]]] = {
    "credentials": [
        (
            "reconciler.engine.authorizing",
            "prepare_server_credentials",
            lambda netloc, args, kwargs: args[0].name == VICTIM,
        )
    ],
    "url check": [("reconciler.probe.probing", "url_problem", _url_arg)],
    "log line": [("reconciler.probe.probing", "display_url", lambda n, a, k: n in str(a[0]))],
    "auth discovery": [("reconciler.probe.probing", "fetch_challenge", _url_arg)],
    "response hook": [
        ("reconciler.probe.tracing", "HttpTrace.on_response", lambda n, a, k: n in str(a[1].request.url))
    ],
    "transport": [("reconciler.probe.probing", "open_transport", lambda n, a, k: a[0].server == VICTIM)],
    "tool listing": [("reconciler.probe.probing", "_Probe._snapshot", _target_of_self)],
    "classification": [
        ("reconciler.probe.probing", "open_transport", lambda n, a, k: a[0].server == VICTIM),
        ("reconciler.probe.probing", "classify_failure", lambda n, a, k: n in k["context"].url),
    ],
    "recording": [("reconciler.engine.probing", "_record_probe", lambda n, a, k: a[0].record.name == VICTIM)],
}


def inject(monkeypatch: pytest.MonkeyPatch, step: str, netloc: str) -> None:
    for module_name, attribute, is_victim in STEPS[step]:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)

        def wrap(original: Any, is_victim: Predicate) -> Any:
            if _is_async(original):

                @functools.wraps(original)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    if is_victim(netloc, args, kwargs):
                        raise RuntimeError(f"injected fault in {step}")
                    return await original(*args, **kwargs)

                return async_wrapper

            @functools.wraps(original)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                if is_victim(netloc, args, kwargs):
                    raise RuntimeError(f"injected fault in {step}")
                return original(*args, **kwargs)

            return wrapper

        monkeypatch.setattr(owner, name, wrap(original, is_victim))


def _is_async(function: Any) -> bool:
    import inspect

    return inspect.iscoroutinefunction(function)


def server(name: str, url: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": {"url": url, "network": {"allowPrivate": True}, **spec},
    }


def client_credentials() -> dict[str, Any]:
    return {
        "type": "oauthClientCredentials",
        "clientId": {"value": "reconciler"},
        "clientSecret": {"secretKeyRef": {"name": "creds", "key": "client-secret"}},
        "scopes": ["mcp:tools"],
    }


@pytest.mark.parametrize("step", list(STEPS))
def test_a_fault_in_one_probe_step_touches_no_other_server(
    step: str,
    tmp_path: Path,
    registry: Registry,
    mcp_servers: LocalServers,
    oauth_servers: OAuthServers,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))
    oauth_servers.main.add_client("reconciler", SECRET)
    oauth_servers.post_only.add_client("reconciler", SECRET, method="client_secret_post")
    docs = [
        server("tools", mcp_servers.tools),
        server("paged", mcp_servers.paginated),
        server("events", mcp_servers.events, transport="sse"),
        server(VICTIM, oauth_servers.protected, auth=client_credentials()),
        server("crm", oauth_servers.protected_post_only, auth=client_credentials()),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "acme"},
            "stringData": {"client-secret": SECRET},
        },
    ]
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    inject(monkeypatch, step, urlsplit(oauth_servers.protected).netloc)

    report = reconcile(load_folder(tmp_path), registry, settings=EngineSettings(), probe=PROBE)

    statuses = {result.obj.resource.metadata.name: result.status for result in report.results}
    assert len(report.probed) == 5
    for name in ("tools", "paged", "events", "crm"):
        ready = next(c for c in statuses[name]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["message"].startswith("Connected · "), (name, ready)
        assert statuses[name]["lastTest"]["ok"] is True
    last = statuses[VICTIM]["lastTest"]
    assert last["ok"] is False and last["errorClass"] == "internal", last
    assert f"injected fault in {step}" in last["message"]
    ready = next(c for c in statuses[VICTIM]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False", ready
    # What the report says is what the registry holds.
    stored = registry.fetch_probe_states()[("acme", VICTIM)].last_test
    assert stored is not None and stored["errorClass"] == "internal"
