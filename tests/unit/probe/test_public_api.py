"""The probe package's public surface, pinned (as httpx pins its `__all__`), and its value types."""

from __future__ import annotations

import dataclasses
import typing

import pytest

import reconciler.probe
from reconciler.api.conditions import PROBE_FAILURE_REASONS
from reconciler.errors import ErrorClass
from reconciler.probe import ProbeSettings, ProbeTarget
from reconciler.probe.websocket import websocket_url

PUBLIC = [
    "HINTS",
    "AuthDiscovery",
    "BlockedDestination",
    "ErrorClass",
    "ProbeAuthServer",
    "ProbeHttp",
    "ProbeResult",
    "ProbeSettings",
    "ProbeTarget",
    "Resolver",
    "Transport",
    "address_problem",
    "credential_verifier",
    "diff_tool_risk",
    "diff_tools",
    "fill_auth_fields",
    "filter_tool_names",
    "probe_many",
    "probe_many_sync",
    "probe_server",
    "snapshot_hash",
    "system_resolver",
    "tool_fingerprint",
    "verify_credential",
]


def test_all_is_pinned() -> None:
    assert sorted(reconciler.probe.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert hasattr(reconciler.probe, name)


def test_every_error_class_has_a_one_line_hint() -> None:
    classes = {"transport", "auth", "insufficient_scope", "downstream", "timeout", "protocol", "tls", "blocked"}
    classes.add("internal")
    assert set(reconciler.probe.HINTS) == classes == set(typing.get_args(ErrorClass))
    assert set(PROBE_FAILURE_REASONS) == classes and PROBE_FAILURE_REASONS["insufficient_scope"] == "InsufficientScope"
    assert all(hint and "\n" not in hint for hint in reconciler.probe.HINTS.values())


def test_defaults() -> None:
    settings = ProbeSettings()
    assert (settings.allow_private_networks, settings.connect_timeout, settings.request_timeout) == (False, 5, 10)
    assert (settings.total_timeout, settings.max_concurrency, settings.max_pages) == (30, 16, 50)
    assert (settings.max_response_bytes, settings.max_tools) == (4 * 1024 * 1024, 2000)


@pytest.mark.parametrize("field", ["connect_timeout", "total_timeout", "max_pages", "max_concurrency"])
def test_settings_reject_nonsense(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ProbeSettings(**{field: 0})  # type: ignore[arg-type]


def test_target_repr_hides_header_values_and_copies_them() -> None:
    headers = {"Authorization": "Bearer s3cr3t-value"}
    target = ProbeTarget(tenant="acme", server="crm", url="https://crm.example/mcp", headers=headers)
    headers["Authorization"] = "changed"
    assert "s3cr3t" not in repr(target)
    assert target.headers == {"Authorization": "Bearer s3cr3t-value"}
    assert target.secret_values() == ("Bearer s3cr3t-value", "s3cr3t-value")
    assert dataclasses.replace(target, list_tools=False).headers == target.headers
    hash(target)


def test_target_rejects_unknown_transport() -> None:
    with pytest.raises(ValueError, match="unknown transport"):
        ProbeTarget(tenant="acme", server="crm", url="https://crm.example/mcp", transport="grpc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/ws", "ws://127.0.0.1:8080/ws"),
        ("https://mcp.example.com/ws?tenant=a", "wss://mcp.example.com/ws?tenant=a"),
        ("https://mcp.example.com", "wss://mcp.example.com/"),
        ("wss://mcp.example.com/ws", "wss://mcp.example.com/ws"),
    ],
)
def test_websocket_url(url: str, expected: str) -> None:
    assert websocket_url(url) == expected
