"""Suite-wide test policy: in CI (MCP_RECONCILER_REQUIRE_SERVICES=1) a skipped test is a failure.

Services the suite needs (PostgreSQL, local MCP servers, the API server) must be present in CI; elsewhere
a missing service skips with the reason.

The oidc-provider fixtures (`oidc_provider`, `oidc_protected_mcp`) are registered here for every suite: they are
the real authorization server the OAuth tests of the CLI, the engine and the operator share.
"""

from __future__ import annotations

import os

import pytest

from tests.fixtures.oidc_provider import oidc_protected_mcp, oidc_provider

__all__ = ["oidc_protected_mcp", "oidc_provider"]

REQUIRE_SERVICES = os.environ.get("MCP_RECONCILER_REQUIRE_SERVICES") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    optional = item.get_closest_marker("optional_tool") is not None  # a client tool, not a service
    if REQUIRE_SERVICES and report.skipped and not hasattr(report, "wasxfail") and not optional:
        report.outcome = "failed"
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, where every service is required: {reason}"
