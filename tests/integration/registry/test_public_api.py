"""The registry's public names are pinned: changing them is a decision, not an accident."""

from __future__ import annotations

import pytest

import reconciler.registry
from reconciler.registry import store


def test_the_package_exports_exactly_these_names() -> None:
    assert sorted(reconciler.registry.__all__) == [
        "AuditLogRow",
        "ConcurrentChange",
        "DEFAULT_MANAGER",
        "DEFAULT_REGISTRY_URL",
        "DuplicateRow",
        "IncompatibleRegistry",
        "InvalidRegistryUrl",
        "OAuthClientRecord",
        "REGISTRY_URL_ENV",
        "Registry",
        "RegistryRejected",
        "RegistryTransaction",
        "RegistryUnavailable",
        "open_registry",
        "open_registry_if_present",
        "resolve_registry_url",
    ]
    assert all(hasattr(reconciler.registry, name) for name in reconciler.registry.__all__)
    assert set(store.__all__) <= set(reconciler.registry.__all__)


def test_the_registry_url_comes_from_the_argument_then_the_environment_then_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MCP_RECONCILER_REGISTRY", raising=False)
    assert store.resolve_registry_url(None) == "sqlite:///mcp-registry.db"
    monkeypatch.setenv("MCP_RECONCILER_REGISTRY", "postgresql://db/registry")
    assert store.resolve_registry_url(None) == "postgresql://db/registry"
    assert store.resolve_registry_url("sqlite:///explicit.db") == "sqlite:///explicit.db"
