"""Printer columns: the table the CRDs and the CLI's `get` share, and `column_value` printing like kubectl."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from reconciler.api.crds import build_crd
from reconciler.api.kinds import KINDS, kind_for
from reconciler.api.printing import (
    NONE,
    PRINTER_COLUMNS,
    PrinterColumn,
    column_value,
    parse_json_path,
)

NOW = dt.datetime(2025, 11, 2, 12, 0, 0, tzinfo=dt.UTC)
CREATED = "2025-11-02T11:55:00Z"

SERVER: dict[str, Any] = {
    "apiVersion": "mcp.reconciler.dev/v1alpha1",
    "kind": "MCPServer",
    "metadata": {"name": "crm", "namespace": "acme", "creationTimestamp": CREATED},
    "spec": {
        "url": "https://crm.example.com/mcp",
        "transport": "sse",
        "auth": {"type": "bearer", "secretKeyRef": {"name": "t", "key": "k"}},
    },
    "status": {
        "transport": "sse",
        "authType": "bearer",
        "enabled": False,
        "tools": {"count": 12},
        "conditions": [
            {"type": "Synced", "status": "False", "reason": "RegistryWriteFailed"},
            {"type": "Ready", "status": "True", "reason": "Reconciled"},
        ],
    },
}
BARE_SERVER: dict[str, Any] = {
    "kind": "MCPServer",
    "metadata": {"name": "new", "creationTimestamp": CREATED},
    "spec": {"url": "https://new.example.com/mcp"},
}


def _column(kind: str, name: str) -> PrinterColumn:
    (column,) = [column for column in PRINTER_COLUMNS[kind] if column.name == name]
    return column


def test_columns_per_kind() -> None:
    table = {
        kind: [(c.name, c.type, c.json_path, c.priority) for c in columns] for kind, columns in PRINTER_COLUMNS.items()
    }
    ready = ("Ready", "string", '.status.conditions[?(@.type=="Ready")].status', 0)
    synced = ("Synced", "string", '.status.conditions[?(@.type=="Synced")].status', 0)
    age = ("Age", "date", ".metadata.creationTimestamp", 0)
    reason = ("Reason", "string", '.status.conditions[?(@.type=="Ready")].reason', 1)
    assert table == {
        "MCPServer": [
            ("Transport", "string", ".status.transport", 0),
            ("Auth", "string", ".status.authType", 0),
            ("Enabled", "boolean", ".status.enabled", 0),
            ("Tools", "integer", ".status.tools.count", 0),
            ready,
            synced,
            age,
            ("URL", "string", ".spec.url", 1),
            ("OAuth", "string", ".status.oauth.summary", 1),
            ("Upstream", "string", '.status.conditions[?(@.type=="Upstream")].reason', 1),
            reason,
        ],
        "MCPConnection": [
            ("Server", "string", ".spec.serverRef", 0),
            ("Scope", "string", ".spec.scope", 0),
            ("Subject", "string", ".spec.subject", 0),
            ("Mode", "string", ".spec.credentialMode", 0),
            ready,
            synced,
            age,
            reason,
        ],
        "MCPAccessGrant": [
            ("Server", "string", ".spec.target.serverRef", 0),
            ("Connection", "string", ".spec.target.connectionRef", 0),
            ready,
            synced,
            age,
            reason,
        ],
        "MCPTemplateBinding": [("Template", "string", ".spec.template", 0), ready, synced, age, reason],
    }
    assert all(column.description for columns in PRINTER_COLUMNS.values() for column in columns)


def test_crd_column_entries() -> None:
    assert _column("MCPServer", "URL").as_crd_column() == {
        "name": "URL",
        "type": "string",
        "jsonPath": ".spec.url",
        "priority": 1,
        "description": "Endpoint URL.",
    }
    assert "priority" not in _column("MCPServer", "Tools").as_crd_column()


def _reaches(schema: dict[str, Any], path: str) -> bool:
    """Whether a column's fields exist in the CRD schema; `.metadata` is the API server's ObjectMeta."""
    if path.startswith(".metadata."):
        return path == ".metadata.creationTimestamp"
    node = schema
    for step in parse_json_path(path):
        if hasattr(step, "field_path"):
            if node.get("type") != "array" or step.field_path[0] not in node["items"]["properties"]:
                return False
            node = node["items"]
            continue
        if node.get("type") == "array":
            node = node["items"]
        if step.name not in node.get("properties", {}):
            return False
        node = node["properties"][step.name]
    return True


@pytest.mark.parametrize("info", KINDS, ids=lambda info: info.kind)
def test_every_column_path_exists_in_the_schema(info: Any) -> None:
    schema = build_crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for column in PRINTER_COLUMNS[info.kind]:
        assert _reaches(schema, column.json_path), column


CASES = [
    ("Transport", SERVER, "sse"),
    ("Auth", SERVER, "bearer"),
    ("Enabled", SERVER, "false"),
    ("Tools", SERVER, "12"),
    ("Ready", SERVER, "True"),
    ("Synced", SERVER, "False"),
    ("Age", SERVER, "5m"),
    ("URL", SERVER, "https://crm.example.com/mcp"),
    ("Reason", SERVER, "Reconciled"),
    (
        "OAuth",
        {**SERVER, "status": {"oauth": {"connected": 3, "summary": "3 connected, 1 reauth"}}},
        "3 connected, 1 reauth",
    ),
    ("OAuth", {**SERVER, "status": {"oauth": {"connected": 0, "summary": "not connected"}}}, "not connected"),
    # Servers of any other auth type have no rollup.
    ("OAuth", SERVER, NONE),
    # Before the first reconcile there is no status to show the effective values from.
    ("Transport", BARE_SERVER, NONE),
    ("Enabled", BARE_SERVER, NONE),
    ("Auth", BARE_SERVER, NONE),
    ("Tools", BARE_SERVER, NONE),
    ("Ready", BARE_SERVER, NONE),
    ("Reason", BARE_SERVER, NONE),
    ("Ready", {**SERVER, "status": {"conditions": [{"type": "Synced", "status": "True"}]}}, NONE),
    ("Ready", {**SERVER, "status": {"conditions": []}}, NONE),
    ("Ready", {**SERVER, "status": None}, NONE),
    ("Tools", {**SERVER, "status": {"tools": {"count": 3.0}}}, "3"),
    ("Tools", {**SERVER, "status": {"tools": {"count": "many"}}}, NONE),
    ("Tools", {**SERVER, "status": {"tools": {"count": True}}}, NONE),
    ("Tools", {**SERVER, "status": {"tools": None}}, NONE),
]


@pytest.mark.parametrize(("name", "obj", "expected"), CASES)
def test_column_value(name: str, obj: dict[str, Any], expected: str) -> None:
    assert column_value(obj, _column("MCPServer", name), now=NOW) == expected


def _created(value: Any) -> dict[str, Any]:
    return {"metadata": {"creationTimestamp": value}}


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2025-11-02T11:59:30Z", "30s"),
        ("2025-11-02T11:58:30Z", "1m30s"),
        ("2025-11-02T09:00:00Z", "3h"),
        ("2025-10-31T07:00:00Z", "2d5h"),
        ("2025-09-01T12:00:00Z", "62d"),
        ("2025-11-02T12:00:00+01:00", "1h"),
        (dt.datetime(2025, 11, 2, 11, 0, tzinfo=dt.UTC), "1h"),  # YAML loaders give datetimes
        (dt.datetime(2025, 11, 2, 11, 0), "1h"),  # naive means UTC, as Kubernetes timestamps are
        ("2025-11-02T12:00:00.5Z", "0s"),  # clock skew below a second
        ("2025-11-02T12:05:00Z", "<invalid>"),
        ("yesterday", NONE),
        (17, NONE),
        (None, NONE),
    ],
)
def test_age(created: Any, expected: str) -> None:
    assert column_value(_created(created), AGE, now=NOW) == expected


def test_age_with_a_naive_now() -> None:
    assert column_value(_created("2025-11-02T11:00:00Z"), AGE, now=NOW.replace(tzinfo=None)) == "1h"


@pytest.mark.parametrize(
    ("column", "obj", "expected"),
    [
        (PrinterColumn("Active", "string", ".spec.active"), {"spec": {"active": False}}, "false"),
        (PrinterColumn("Active", "boolean", ".spec.active"), {"spec": {"active": True}}, "true"),
        (PrinterColumn("Active", "boolean", ".spec.active"), {"spec": {"active": "yes"}}, NONE),
        (PrinterColumn("Gen", "string", ".metadata.generation"), {"metadata": {"generation": 4}}, "4"),
        (PrinterColumn("Ratio", "number", ".status.ratio"), {"status": {"ratio": 0.5}}, "0.5"),
        (PrinterColumn("Empty", "string", ".spec.subject"), {"spec": {"subject": ""}}, ""),
        (PrinterColumn("Subj", "string", ".spec.subject"), {"spec": "not-a-map"}, NONE),
        (
            PrinterColumn("First", "string", ".status.conditions[?(@.type=='Ready')].reason"),
            {"status": {"conditions": [{"type": "Ready", "reason": "A"}, {"type": "Ready", "reason": "B"}]}},
            "A",
        ),
        (
            PrinterColumn("Nested", "string", '.items[?(@.meta.kind=="x")].value'),
            {"items": [{"meta": {"kind": "y"}, "value": 1}, {"meta": {"kind": "x"}, "value": 2}]},
            "2",
        ),
        (
            PrinterColumn("Typed filter", "string", '.items[?(@.ok=="true")].name'),
            {"items": [{"ok": True, "name": "a"}, {"ok": "true", "name": "b"}]},
            "b",
        ),
        (
            PrinterColumn("Names", "string", ".status.tools.names"),
            {"status": {"tools": {"names": ["a", "b"]}}},
            '["a","b"]',
        ),
        (
            PrinterColumn("Each", "string", ".spec.servers.serverRef"),
            {"spec": {"servers": [{"serverRef": "crm"}]}},
            "crm",
        ),
    ],
    ids=lambda value: value.name if isinstance(value, PrinterColumn) else "",
)
def test_column_types_and_paths(column: PrinterColumn, obj: dict[str, Any], expected: str) -> None:
    assert column_value(obj, column, now=NOW) == expected


@pytest.mark.parametrize("path", ["", "spec.url", "{.spec.url}", ".spec[0]", ".spec..url", '.a[?(@.b!="c")]', ".a[*]"])
def test_unsupported_paths_fail_early(path: str) -> None:
    with pytest.raises(ValueError, match="JSONPath"):
        parse_json_path(path)


def test_rows_for_every_kind_from_real_objects() -> None:
    objects = {
        "MCPConnection": {
            "metadata": {"creationTimestamp": CREATED},
            "spec": {"serverRef": "crm", "scope": "user", "subject": "ana", "credentialMode": "shared"},
        },
        "MCPAccessGrant": {"metadata": {"creationTimestamp": CREATED}, "spec": {"target": {"connectionRef": "c"}}},
        "MCPTemplateBinding": {"metadata": {"creationTimestamp": CREATED}, "spec": {"template": "support"}},
    }
    rows = {
        kind: [column_value(obj, column, now=NOW) for column in PRINTER_COLUMNS[kind]] for kind, obj in objects.items()
    }
    assert rows == {
        "MCPConnection": ["crm", "user", "ana", "shared", NONE, NONE, "5m", NONE],
        "MCPAccessGrant": [NONE, "c", NONE, NONE, "5m", NONE],
        "MCPTemplateBinding": ["support", NONE, NONE, "5m", NONE],
    }
    assert kind_for("mcpgrant").kind == "MCPAccessGrant"
