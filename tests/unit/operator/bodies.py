"""Object bodies as the watch delivers them, for the tests of the operator's passes (`test_reconciling.py`,
`test_batching.py`, `test_recording.py`, `test_exports.py`), and the few helpers those tests share."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

V = "mcp.reconciler.dev/v1alpha1"
NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def obj(
    kind: str, name: str, spec: dict[str, Any], *, status: dict[str, Any] | None = None, **annotations: str
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": V,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "generation": 1,
            "annotations": annotations,
        },
        "spec": spec,
    }
    if status is not None:
        body["status"] = status
    return body


def server(name: str = "crm", **spec: Any) -> dict[str, Any]:
    return obj("MCPServer", name, {"url": f"https://{name}.example.com/mcp", **spec})


def conditions(status: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {item["type"]: (item["status"], item["reason"]) for item in status["conditions"]}


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)
