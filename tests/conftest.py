"""Suite-wide test policy: in CI (MCP_RECONCILER_REQUIRE_SERVICES=1) a skipped test is a failure.

Services the suite needs (PostgreSQL, local MCP servers, the API server) must be present in CI; elsewhere
a missing service skips with the reason.

Every status a test builds is written both ways, straight from its fields and through its model, and the two
must agree key for key (`statuses_written_as_their_models_write_them`), so the shortcut cannot drift from the models.

The oidc-provider fixtures (`oidc_provider`, `oidc_protected_mcp`) are registered here for every suite: they are
the real authorization server the OAuth tests of the CLI, the engine and the operator share.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import BaseModel

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


@pytest.fixture(autouse=True)
def statuses_written_as_their_models_write_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """`build_status` writes most documents without the model's round trip (`api.documents`); here each one is
    checked against that round trip: the same keys in the same order with the same values."""
    from reconciler.api.documents import plain_document

    def checked(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any] | None:
        document = plain_document(model, values)
        if document is not None:
            expected = model.model_validate(values).model_dump(mode="json", by_alias=True, exclude_unset=True)
            assert json.dumps(document) == json.dumps(expected), f"{model.__name__} written plainly drifted"
            assert document == expected
        return document

    monkeypatch.setattr("reconciler.engine.statuses.building.plain_document", checked)
