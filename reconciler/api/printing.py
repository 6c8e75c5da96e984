"""The `kubectl get` columns of the four kinds, and a small evaluator that prints them the way kubectl does.

The CRD generator turns `PRINTER_COLUMNS` into `additionalPrinterColumns`; the CLI's `get` table calls
`column_value` on the same columns, so a table printed without a cluster matches `kubectl get`. No I/O here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.api.durations import format_duration
from reconciler.api.times import format_time, parse_time

__all__ = ["NONE", "PRINTER_COLUMNS", "ColumnType", "PrinterColumn", "column_value", "parse_json_path"]

ColumnType = Literal["string", "integer", "number", "boolean", "date"]

NONE = "<none>"
"""What kubectl prints for a value the path does not reach."""


@dataclass(frozen=True)
class PrinterColumn:
    """One column of `kubectl get` (an `additionalPrinterColumns` entry); priority 1 shows only with `-o wide`."""

    name: str
    type: ColumnType
    json_path: str
    priority: int = 0
    description: str = ""

    def as_crd_column(self) -> dict[str, Any]:
        """The CRD's `additionalPrinterColumns` entry; priority 0 is left out as the API server's default."""
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.priority:
            column["priority"] = self.priority
        if self.description:
            column["description"] = self.description
        return column


def _condition_path(condition_type: str, field: str) -> str:
    return f'.status.conditions[?(@.type=="{condition_type}")].{field}'


_READY = PrinterColumn("Ready", "string", _condition_path("Ready", "status"), description="Ready condition status.")
_SYNCED = PrinterColumn(
    "Synced", "string", _condition_path("Synced", "status"), description="Whether the registry matches the spec."
)
_AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp", description="Time since the object was created.")
_REASON = PrinterColumn(
    "Reason", "string", _condition_path("Ready", "reason"), priority=1, description="Reason of the Ready condition."
)

PRINTER_COLUMNS: dict[str, tuple[PrinterColumn, ...]] = {
    "MCPServer": (
        # The effective values from status: the CRDs carry no defaults, so the spec path would print <none>.
        PrinterColumn("Transport", "string", ".status.transport", description="MCP transport in effect."),
        PrinterColumn("Auth", "string", ".status.authType", description="Auth type in effect."),
        PrinterColumn("Enabled", "boolean", ".status.enabled", description="Offered to agents."),
        PrinterColumn("Tools", "integer", ".status.tools.count", description="Tools in the last snapshot."),
        _READY,
        _SYNCED,
        _AGE,
        PrinterColumn("URL", "string", ".spec.url", priority=1, description="Endpoint URL."),
        PrinterColumn(
            "OAuth",
            "string",
            ".status.oauth.summary",
            priority=1,
            description="Members' own tokens (oauthAuthorizationCode): connected, expiring, needing re-authorization.",
        ),
        PrinterColumn(
            "Upstream",
            "string",
            _condition_path("Upstream", "reason"),
            priority=1,
            description="Imported from a Registry API: UpstreamActive, UpstreamDeprecated or UpstreamDeleted.",
        ),
        _REASON,
    ),
    "MCPConnection": (
        PrinterColumn("Server", "string", ".spec.serverRef", description="The MCPServer this connection reaches."),
        PrinterColumn("Scope", "string", ".spec.scope", description="platform, agent or user."),
        PrinterColumn("Subject", "string", ".spec.subject", description="Agent or member id."),
        PrinterColumn("Mode", "string", ".spec.credentialMode", description="shared or perMember."),
        _READY,
        _SYNCED,
        _AGE,
        _REASON,
    ),
    "MCPAccessGrant": (
        PrinterColumn("Server", "string", ".spec.target.serverRef", description="Granted MCPServer."),
        PrinterColumn("Connection", "string", ".spec.target.connectionRef", description="Granted MCPConnection."),
        _READY,
        _SYNCED,
        _AGE,
        _REASON,
    ),
    "MCPTemplateBinding": (
        PrinterColumn("Template", "string", ".spec.template", description="Agent template id."),
        _READY,
        _SYNCED,
        _AGE,
        _REASON,
    ),
}


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Filter:
    """`[?(@.a.b=="value")]`: keep the list items whose field equals the literal."""

    field_path: tuple[str, ...]
    value: str


_Step = _Field | _Filter

_FIELD = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)")
_FILTER = re.compile(r"""\[\?\(\s*@((?:\.[A-Za-z_][A-Za-z0-9_-]*)+)\s*==\s*(?:"([^"]*)"|'([^']*)')\s*\)\]""")


def parse_json_path(path: str) -> tuple[_Step, ...]:
    """Parse the kubectl JSONPath subset the columns use; ValueError on anything else, so a typo fails early."""
    steps: list[_Step] = []
    position = 0
    while position < len(path):
        field = _FIELD.match(path, position)
        if field is not None:
            steps.append(_Field(field.group(1)))
            position = field.end()
            continue
        condition = _FILTER.match(path, position)
        if condition is not None:
            value = condition.group(2) if condition.group(2) is not None else condition.group(3)
            steps.append(_Filter(tuple(condition.group(1).split(".")[1:]), value))
            position = condition.end()
            continue
        raise ValueError(f'unsupported JSONPath {path!r} at position {position}: use .field and [?(@.field=="x")]')
    if not steps:
        raise ValueError(f"empty JSONPath {path!r}")
    return tuple(steps)


def _lookup(value: Any, names: Sequence[str]) -> Any:
    for name in names:
        if not isinstance(value, Mapping) or name not in value:
            return None
        value = value[name]
    return value


def _find(obj: Any, steps: Sequence[_Step]) -> list[Any]:
    """All results in document order; a field step over a list applies to each item, as kubectl does."""
    current: list[Any] = [obj]
    for step in steps:
        found: list[Any] = []
        for value in current:
            if isinstance(step, _Field):
                items = value if isinstance(value, list) else [value]
                found.extend(item[step.name] for item in items if isinstance(item, Mapping) and step.name in item)
            elif isinstance(value, list):
                found.extend(item for item in value if _matches(item, step))
        current = found
    return current


def _matches(item: Any, step: _Filter) -> bool:
    # Like kubectl, a string literal only equals a string: `@.ok=="true"` does not match a boolean.
    candidate = _lookup(item, step.field_path)
    return isinstance(candidate, str) and candidate == step.value


def _go_text(value: Any) -> str:
    """Scalars printed the way Go's `%v` prints decoded JSON (`true`, `3`, `1.5`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return format_time(value)
    if isinstance(value, Mapping | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return str(value)


def _parse_time(value: Any) -> dt.datetime | None:
    moment = value if isinstance(value, dt.datetime) else parse_time(value)
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _age(value: Any, now: dt.datetime) -> str:
    moment = _parse_time(value)
    if moment is None:
        return NONE
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    seconds = (now - moment).total_seconds()
    # kubectl's HumanDuration: slightly in the future is clock skew, further is nonsense.
    if seconds < -1:
        return "<invalid>"
    return format_duration(max(seconds, 0.0))


def column_value(obj: Mapping[str, Any], column: PrinterColumn, *, now: dt.datetime) -> str:
    """The cell `kubectl get` prints for this column: the first match, `<none>` when the path finds nothing."""
    results = _find(obj, parse_json_path(column.json_path))
    if not results or results[0] is None:
        return NONE
    value = results[0]
    if column.type == "date":
        return _age(value, now)
    if column.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return NONE
        return str(int(value))
    if column.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return NONE
        return _go_text(value)
    if column.type == "boolean":
        return _go_text(value) if isinstance(value, bool) else NONE
    return _go_text(value)
