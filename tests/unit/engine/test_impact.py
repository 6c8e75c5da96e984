"""Tool impact of a plan: (rows before, plan, snapshots) → tools gained, lost, unknown; pure and table-driven."""

from __future__ import annotations

import datetime as dt

import mcp_types
import pytest

from reconciler.engine.impact import ToolImpact, plan_tool_impact
from reconciler.engine.planning import Action, Plan, Verb
from reconciler.presenting import impact_text
from reconciler.probe.listing import tool_record
from reconciler.records import ToolAnnotationHints
from reconciler.registry.records import (
    BindingRecord,
    BoundServerRecord,
    ConnectionRecord,
    GrantRecord,
    GrantSubjectRecord,
    Record,
    RowKey,
    ServerRecord,
    ToolRecord,
    ToolSnapshotRecord,
    key_of,
)

AT = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def snap(server: str, *tools: str, destructive: tuple[str, ...] = ()) -> ToolSnapshotRecord:
    records = tuple(
        ToolRecord(
            name=name,
            annotations=ToolAnnotationHints(read_only_hint=name not in destructive),
        )
        for name in tools
    )
    return ToolSnapshotRecord(tenant="t", server=server, hash="h", tools=records, taken_at=AT)


SNAPSHOTS = {("t", "crm"): snap("crm", "read", "wipe", destructive=("wipe",)), ("t", "wiki"): snap("wiki", "search")}
CRM = ServerRecord(tenant="t", name="crm", url="https://crm.example.com/mcp", tools_deny=("internal_*",))
WIKI = ServerRecord(tenant="t", name="wiki", url="https://wiki.example.com/mcp")
NEW = ServerRecord(tenant="t", name="new", url="https://new.example.com/mcp")
BOUND_WIKI = BindingRecord(tenant="t", name="b", template="helper", servers=(BoundServerRecord("wiki"),))
BOUND_BOTH = BindingRecord(
    tenant="t",
    name="b",
    template="helper",
    servers=(BoundServerRecord("wiki"), BoundServerRecord("crm", tools_allow=("wipe",))),
)
FOR_ANN = BindingRecord(
    tenant="t",
    name="ann",
    template="helper",
    agents=("ann",),
    servers=(BoundServerRecord("crm", tools_allow=("wipe",)),),
)
PINNED_CRM = ServerRecord(tenant="t", name="crm", url=CRM.url, tool_policy="Pin", approved_hash="h")
READ_ONLY_CRM = BindingRecord(
    tenant="t", name="b", template="helper", servers=(BoundServerRecord("crm", tools_read_only=True),)
)
ALL_OF_CRM = BindingRecord(tenant="t", name="b", template="helper", servers=(BoundServerRecord("crm"),))
GRANT_CRM = GrantRecord(tenant="t", name="g", target_server="crm", subjects=(GrantSubjectRecord("Team", "ops"),))
LINE = ConnectionRecord(tenant="t", name="line", server="new")
GRANT_LINE = GrantRecord(
    tenant="t", name="g2", target_connection="line", subjects=(GrantSubjectRecord("Organization"),)
)


def rows(*records: Record) -> dict[RowKey, Record]:
    return {key_of(record): record for record in records}


def act(verb: Verb, desired: Record | None = None, observed: Record | None = None) -> Action:
    record = desired or observed
    assert record is not None
    return Action(verb=verb, key=key_of(record), source=None, desired=desired, observed=observed)


def summary(impact: ToolImpact) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    return [(d.kind, d.name, d.gained, d.lost, d.unknown) for d in impact.deltas]


@pytest.mark.parametrize(
    ("before", "actions", "expected"),
    [
        pytest.param(
            rows(CRM, WIKI, BOUND_WIKI),
            [act(Verb.UPDATE, BOUND_BOTH, BOUND_WIKI)],
            [("template", "helper", ("crm:wipe",), (), ())],
            id="a binding adds a server, narrowed by the binding's allow",
        ),
        pytest.param(
            rows(CRM, WIKI, BOUND_BOTH),
            [act(Verb.DELETE, observed=WIKI)],
            [("template", "helper", (), ("wiki:search",), ())],
            id="a deleted server takes its tools away",
        ),
        pytest.param(
            rows(CRM, GRANT_CRM),
            [act(Verb.DELETE, observed=GRANT_CRM)],
            [("grant", "g", (), ("crm:read", "crm:wipe"), ())],
            id="a removed grant",
        ),
        pytest.param(
            rows(),
            [act(Verb.CREATE, NEW), act(Verb.CREATE, LINE), act(Verb.CREATE, GRANT_LINE)],
            [("grant", "g2", (), (), ("new",))],
            id="a new server is unknown until probed, also through a connection grant",
        ),
        pytest.param(
            rows(CRM, GRANT_CRM),
            [act(Verb.UPDATE, ServerRecord(tenant="t", name="crm", url="https://elsewhere.example.com/mcp"), CRM)],
            [("grant", "g", (), ("crm:read", "crm:wipe"), ("crm",))],
            id="a moved URL makes the snapshot stale",
        ),
        pytest.param(
            rows(CRM, WIKI, BOUND_WIKI),
            [act(Verb.CREATE, FOR_ANN)],
            [("agent", "ann", ("crm:wipe",), (), ())],
            id="a binding for one agent changes that agent's tools, not the template's",
        ),
        pytest.param(
            rows(CRM, WIKI, BOUND_WIKI, FOR_ANN),
            [act(Verb.UPDATE, BOUND_BOTH, BOUND_WIKI)],
            [("template", "helper", ("crm:wipe",), (), ())],
            id="what every agent gains, an agent that already had it gains nothing more",
        ),
        pytest.param(
            rows(CRM, WIKI, BOUND_WIKI, FOR_ANN),
            [act(Verb.DELETE, observed=WIKI)],
            [("template", "helper", (), ("wiki:search",), ()), ("agent", "ann", (), ("wiki:search",), ())],
            id="a server every agent had is lost by the template and by each named agent",
        ),
        pytest.param(
            rows(CRM, GRANT_CRM),
            [act(Verb.ORPHAN, observed=CRM)],
            [],
            id="an orphaned row keeps its tools",
        ),
        pytest.param(
            rows(CRM, GRANT_CRM),
            [act(Verb.UPDATE, ServerRecord(tenant="t", name="crm", url=CRM.url, enabled=False), CRM)],
            [("grant", "g", (), ("crm:read", "crm:wipe"), ())],
            id="a disabled server offers nothing",
        ),
        pytest.param(
            rows(PINNED_CRM, ALL_OF_CRM),
            [act(Verb.UPDATE, READ_ONLY_CRM, ALL_OF_CRM)],
            [("template", "helper", (), ("crm:wipe",), ())],
            id="readOnly on a pinned, approved server keeps its read-only tools",
        ),
        pytest.param(
            rows(CRM, ALL_OF_CRM),
            [act(Verb.UPDATE, READ_ONLY_CRM, ALL_OF_CRM)],
            [("template", "helper", (), ("crm:read", "crm:wipe"), ())],
            id="readOnly on a tracked server admits none of its tools",
        ),
    ],
)
def test_tools_gained_lost_and_unknown(
    before: dict[RowKey, Record], actions: list[Action], expected: list[tuple[str, ...]]
) -> None:
    impact = plan_tool_impact(Plan(actions=tuple(actions)), before, SNAPSHOTS)

    assert summary(impact) == expected
    assert impact.is_destructive("t", "crm:wipe")
    assert not impact.is_destructive("t", "crm:read")


@pytest.mark.parametrize(
    ("annotations", "destructive"),
    [
        (None, True),
        (mcp_types.ToolAnnotations(read_only_hint=True), False),
        (mcp_types.ToolAnnotations(read_only_hint=True, destructive_hint=True), False),
        (mcp_types.ToolAnnotations(destructive_hint=False), False),
        (mcp_types.ToolAnnotations(destructive_hint=True), True),
        (mcp_types.ToolAnnotations(idempotent_hint=True), True),
    ],
)
def test_the_destructive_flag_follows_the_mcp_defaults(
    annotations: mcp_types.ToolAnnotations | None, destructive: bool
) -> None:
    tool = mcp_types.Tool(name="t", input_schema={"type": "object"}, annotations=annotations)

    record = tool_record(tool)

    assert record.destructive is destructive
    assert record.fingerprint == tool_record(mcp_types.Tool(name="t", input_schema={"type": "object"})).fingerprint


def test_an_agent_section_names_its_template() -> None:
    impact = plan_tool_impact(Plan(actions=(act(Verb.CREATE, FOR_ANN),)), rows(CRM, WIKI, BOUND_WIKI), SNAPSHOTS)

    [delta] = impact.deltas
    assert (delta.kind, delta.tenant, delta.name, delta.subjects) == ("agent", "t", "ann", ("template helper",))
    assert impact_text(impact) == "Tool impact:\n  agent t/ann (template helper):\n    + crm:wipe (destructive)"
