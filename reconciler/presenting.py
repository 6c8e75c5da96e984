"""Human and machine renderings of plans, reports and registry objects for the CLI.

Called only by `cli.py`; pure string building so output can be tested without a terminal. Colour is
added only when the caller says the stream is a TTY.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import yaml

from reconciler.api import KINDS
from reconciler.api.common import GROUP_VERSION
from reconciler.api.conditions import PROBE_FAILURE_REASONS, Reason
from reconciler.api.printing import PRINTER_COLUMNS, column_value
from reconciler.api.times import format_time
from reconciler.engine.planning import Action, Plan, Verb
from reconciler.registry.records import KIND_OF_TABLE, ResourceRecord, SourceRef

if TYPE_CHECKING:
    # Only `test` shows probe results, and only `plan` a tool impact (its module lists tools through the probe's
    # filters): `get` starts without the probe's mcp SDK.
    from reconciler.engine.impact import ToolDelta, ToolImpact
    from reconciler.probe import AuthDiscovery, ProbeResult

_COLOURS = {
    Verb.CREATE: "32",
    Verb.UPDATE: "33",
    Verb.REPAIR: "33",
    Verb.ADOPT: "36",
    Verb.DELETE: "31",
    Verb.ORPHAN: "35",
    Verb.CONFLICT: "31;1",
    Verb.NOOP: "2",
}
_SYMBOLS = {
    Verb.CREATE: "+",
    Verb.UPDATE: "~",
    Verb.REPAIR: "~",
    Verb.ADOPT: "~",
    Verb.DELETE: "-",
    Verb.ORPHAN: "-",
    Verb.CONFLICT: "!",
    Verb.NOOP: " ",
}


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if colour else text


def _show(value: Any) -> str:
    return "<unset>" if value is None else json.dumps(value, sort_keys=True)


def describe_action(action: Action) -> str:
    table, tenant, name = action.key
    if action.source is not None:
        return f"{action.source.kind} {action.source.namespace}/{action.source.name}"
    return f"{KIND_OF_TABLE[table]} row {tenant}/{name}"


def plan_text(plan: Plan, *, colour: bool = False, show_noop: bool = False) -> str:
    lines: list[str] = []
    for action in plan.actions:
        if action.verb is Verb.NOOP and not (show_noop or action.changes or action.message):
            continue
        head = f"{_SYMBOLS[action.verb]} {describe_action(action)}: {action.verb}"
        lines.append(_paint(head, _COLOURS[action.verb], colour))
        if action.message:
            lines.append(f"    {action.message}")
        for change in action.changes:
            lines.append(f"    {change.path}: {_show(change.before)} → {_show(change.after)}")
    for warning in plan.warnings:
        lines.append(_paint(f"warning: {warning}", "33", colour))
    lines.append(plan_summary(plan))
    return "\n".join(lines)


def plan_summary(plan: Plan) -> str:
    counts = plan.counts()
    if not plan.has_changes and not counts.get("conflict"):
        return f"No changes. {counts.get('noop', 0)} objects up to date."
    order = ("create", "update", "repair", "adopt", "delete", "orphan", "conflict")
    parts = [f"{counts[verb]} to {verb}" for verb in order if counts.get(verb)]
    return "Plan: " + ", ".join(parts) + f"; {counts.get('noop', 0)} unchanged."


UNKNOWN_UNTIL_PROBED = "unknown until probed"


def _tool(impact: ToolImpact, tenant: str, name: str) -> str:
    return f"{name} (destructive)" if impact.is_destructive(tenant, name) else name


def _delta_head(delta: ToolDelta) -> str:
    subjects = f" ({', '.join(delta.subjects)})" if delta.subjects else ""
    return f"{delta.kind} {delta.tenant}/{delta.name}{subjects}"


def impact_text(impact: ToolImpact) -> str:
    """The tools agents gain and lose, per template and grant; empty when the plan changes no tools."""
    if impact.empty:
        return ""
    lines = ["Tool impact:"]
    for delta in impact.deltas:
        lines.append(f"  {_delta_head(delta)}:")
        lines.extend(f"    + {_tool(impact, delta.tenant, name)}" for name in delta.gained)
        lines.extend(f"    - {_tool(impact, delta.tenant, name)}" for name in delta.lost)
        lines.extend(f"    ? {server}: {UNKNOWN_UNTIL_PROBED}" for server in delta.unknown)
    return "\n".join(lines)


def impact_json(impact: ToolImpact) -> list[dict[str, Any]]:
    return [
        {
            "kind": delta.kind,
            "tenant": delta.tenant,
            "name": delta.name,
            "subjects": list(delta.subjects),
            "gained": list(delta.gained),
            "lost": list(delta.lost),
            "unknownUntilProbed": list(delta.unknown),
            "destructive": sorted(
                name for name in (*delta.gained, *delta.lost) if impact.is_destructive(delta.tenant, name)
            ),
        }
        for delta in impact.deltas
    ]


def plan_markdown(plan: Plan, impact: ToolImpact) -> str:
    """The plan and its tool impact as a pull-request comment (GitHub-flavoured markdown)."""
    lines = ["### mcp-reconciler plan", "", f"**{plan_summary(plan)}**", ""]
    shown = [a for a in plan.actions if a.verb is not Verb.NOOP or a.changes or a.message]
    if shown:
        lines += ["| | object | action | changes |", "|---|---|---|---|"]
        for action in shown:
            changes = "<br>".join(
                f"`{c.path}`: {_cell(_show(c.before))} → {_cell(_show(c.after))}" for c in action.changes
            )
            if action.message:
                changes = (changes + "<br>" if changes else "") + _cell(action.message)
            lines.append(f"| {_SYMBOLS[action.verb]} | {_cell(describe_action(action))} | {action.verb} | {changes} |")
        lines.append("")
    for warning in plan.warnings:
        lines.append(f"> ⚠️ {_cell(warning)}")
    if not impact.empty:
        lines += ["", "#### What agents gain and lose", ""]
        for delta in impact.deltas:
            lines.append(f"- **{_cell(_delta_head(delta))}**")
            for name in delta.gained:
                flag = " ⚠️ destructive" if impact.is_destructive(delta.tenant, name) else ""
                lines.append(f"  - gains `{name}`{flag}")
            for name in delta.lost:
                flag = " ⚠️ destructive" if impact.is_destructive(delta.tenant, name) else ""
                lines.append(f"  - loses `{name}`{flag}")
            for server in delta.unknown:
                lines.append(f"  - `{server}`: {UNKNOWN_UNTIL_PROBED}")
    return "\n".join(lines).rstrip() + "\n"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell: pipes escaped, newlines as breaks."""
    return text.replace("|", "\\|").replace("\n", "<br>")


def plan_json(plan: Plan, impact: ToolImpact | None = None) -> str:
    actions = []
    for action in plan.actions:
        table, tenant, name = action.key
        actions.append(
            {
                "action": str(action.verb),
                "kind": action.source.kind if action.source else KIND_OF_TABLE[table],
                "namespace": action.source.namespace if action.source else None,
                "name": action.source.name if action.source else name,
                "table": table,
                "tenant": tenant,
                "row": name,
                "changes": [{"path": c.path, "before": c.before, "after": c.after} for c in action.changes],
                "message": action.message,
            }
        )
    summary = {verb: plan.counts().get(verb, 0) for verb in (str(v) for v in Verb)}
    return json.dumps(
        {
            "changes": plan.has_changes,
            "summary": summary,
            "actions": actions,
            "warnings": list(plan.warnings),
            "toolImpact": [] if impact is None else impact_json(impact),
        },
        indent=2,
        sort_keys=False,
    )


def _timestamp(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    return format_time(moment)


def as_object(resource: ResourceRecord) -> dict[str, Any]:
    """A stored resource as the Kubernetes object `kubectl get -o json` would print."""
    metadata: dict[str, Any] = {
        "name": resource.name,
        "namespace": resource.namespace,
        "generation": resource.generation,
    }
    if resource.created_at is not None:
        metadata["creationTimestamp"] = _timestamp(resource.created_at)
    if resource.uid:
        metadata["uid"] = resource.uid
    if resource.labels:
        metadata["labels"] = dict(resource.labels)
    if resource.annotations:
        metadata["annotations"] = dict(resource.annotations)
    return {
        "apiVersion": GROUP_VERSION,
        "kind": resource.kind,
        "metadata": metadata,
        "spec": resource.spec,
        "status": resource.status,
    }


def as_list(objects: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "items": list(objects), "kind": "List", "metadata": {"resourceVersion": ""}}


def dump(document: Any, output: str) -> str:
    if output == "json":
        return json.dumps(document, indent=4)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True).rstrip("\n")


def table(
    objects: Iterable[Mapping[str, Any]],
    kind: str,
    *,
    wide: bool,
    with_namespace: bool,
    with_kind_prefix: bool,
    now: dt.datetime,
) -> str:
    """A `kubectl get`-style table using the same printer columns as the CRDs."""
    columns = [c for c in PRINTER_COLUMNS[kind] if wide or c.priority == 0]
    headers = (["NAMESPACE"] if with_namespace else []) + ["NAME"] + [c.name.upper() for c in columns]
    plural = next(info.plural for info in KINDS if info.kind == kind)
    rows = []
    for obj in objects:
        name = obj["metadata"]["name"]
        row = [obj["metadata"]["namespace"]] if with_namespace else []
        row.append(f"{plural}.mcp.reconciler.dev/{name}" if with_kind_prefix else name)
        row += [column_value(obj, column, now=now) for column in columns]
        rows.append(row)
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    render = [
        "   ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip()
        for line in [headers, *rows]
    ]
    return "\n".join(render)


def probe_line(result: ProbeResult) -> str:
    if result.ok:
        count = len(result.tools) if result.tools is not None else 0
        # Tools unlisted on success only when the credential waits on a person (the message says so).
        return f"Connected · {count} tools" if result.tools is not None else f"Reachable · {result.message}"
    return f"{result.error_class} error: {result.message}"


def probe_table(rows: Sequence[tuple[SourceRef, ProbeResult]]) -> str:
    """The summary after apply: one line per probed server."""
    headers = ["NAMESPACE", "SERVER", "RESULT", "DISCOVERED AUTH", "LATENCY"]
    lines = []
    for source, result in rows:
        auth = "-"
        if result.discovery is not None:
            auth = result.discovery.recommended_auth_mode or "-"
        lines.append([source.namespace, source.name, probe_line(result), auth, f"{result.latency_ms}ms"])
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *lines, strict=False)]
    return "\n".join(
        "   ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip()
        for line in [headers, *lines]
    )


def test_text(result: ProbeResult, *, colour: bool) -> str:
    if result.ok:
        text = _paint(probe_line(result), "32", colour) + f"  ({result.latency_ms} ms)"
        if result.tools:
            names = ", ".join(sorted(tool.name for tool in result.tools)[:20])
            text += f"\ntools: {names}"
        return text
    from reconciler.probe import HINTS

    hint = result.hint or HINTS.get(result.error_class or "", "")
    text = _paint(f"Failed · {result.error_class}: {result.message}", "31", colour)
    if result.error_class == "insufficient_scope":
        scopes = " ".join(result.challenged_scopes) or "(none named)"
        text += f"\nreason: {Reason.INSUFFICIENT_SCOPE}; challenged scopes: {scopes}"
    return text + (f"\nhint: {hint}" if hint else "")


def test_json(result: ProbeResult, *, applied: bool = True) -> dict[str, Any]:
    """ThinkWork's Test Connection shape: `{ok, tools, error}`, plus the class and latency; `discovery` (the
    `DiscoveryStatus` fields, camelCase) when discovery ran, and `applied: false` for discover-before-save."""
    tools = [
        {"name": tool.name, "title": tool.title, "description": tool.description}
        for tool in sorted(result.tools or (), key=lambda tool: tool.name)
    ]
    error: dict[str, Any] | None = None
    if not result.ok:
        reason = PROBE_FAILURE_REASONS.get(result.error_class or "", Reason.UNAVAILABLE)
        error = {"class": result.error_class, "reason": str(reason), "message": result.message, "hint": result.hint}
        if result.error_class == "insufficient_scope":
            error["challengedScopes"] = list(result.challenged_scopes)
    discovery = result.discovery.as_status() if result.discovery is not None else None
    document = {"ok": result.ok, "tools": tools, "error": error, "latencyMs": result.latency_ms, "discovery": discovery}
    return document if applied else {**document, "applied": False, "recorded": False}


DISCOVERY_LINES: tuple[tuple[str, str], ...] = (
    ("authorization URL", "authUrl"),
    ("token URL", "tokenUrl"),
    ("registration URL", "registerUrl"),
    ("resource", "resource"),
    ("scopes", "scopesSupported"),
    ("token endpoint auth methods", "tokenEndpointAuthMethodsSupported"),
)


def discovery_text(discovery: AuthDiscovery | None) -> str:
    """What discovery found, one fact a line, as Test Connection shows it before a server is saved."""
    if discovery is None:
        return "discovery: no answer to learn from"
    status = discovery.as_status()
    lines = [
        f"requires auth: {'yes' if discovery.requires_auth else 'no'}",
        f"recommended auth mode: {discovery.recommended_auth_mode or '(cannot tell)'}",
    ]
    if discovery.requires_auth:
        for label, key in DISCOVERY_LINES:
            value = status[key]
            shown = ", ".join(value) if isinstance(value, list) else value
            lines.append(f"{label}: {shown or '-'}")
        supported = discovery.client_id_metadata_document_supported
        lines.append(f"client ID metadata documents (CIMD): {'supported' if supported else 'not advertised'}")
    return "\n".join(lines)
