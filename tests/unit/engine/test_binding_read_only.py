"""A binding's Ready message on `tools.readOnly` (pure): from which servers it admits read-only tools, and why it
admits none from the others."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.engine.statuses.bindings import read_only_conditions
from reconciler.registry.records import BindingRecord, BoundServerRecord, ServerRecord, ToolSnapshotRecord

APPROVED = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
TRUST = "annotations from untrusted servers must not be trusted (MCP specification)"


def server(name: str, **fields: object) -> ServerRecord:
    return ServerRecord(tenant="acme", name=name, url=f"https://{name}.example/mcp", **fields)  # type: ignore[arg-type]


def snapshot(name: str, hash_: str) -> ToolSnapshotRecord:
    return ToolSnapshotRecord(
        tenant="acme", server=name, hash=hash_, tools=(), taken_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    )


PINNED = server("pinned", tool_policy="Pin", approved_hash=APPROVED)


@pytest.mark.parametrize(
    ("record", "snapshots", "message"),
    [
        (PINNED, [snapshot("pinned", APPROVED)], "readOnly admits the read-only tools of pinned"),
        (
            server("pinned"),
            [],
            f"readOnly admits no tools from pinned (not pinned (spec.tools.policy: Track)): {TRUST}",
        ),
        (
            server("pinned", tool_policy="Pin"),
            [],
            f"readOnly admits no tools from pinned (pinned without an approvedHash): {TRUST}",
        ),
        (
            PINNED,
            [],
            f"readOnly admits no tools from pinned (no tool snapshot yet to compare with the approvedHash): {TRUST}",
        ),
        (
            PINNED,
            [snapshot("pinned", OTHER)],
            f"readOnly admits no tools from pinned (its latest tool snapshot {OTHER} is not the approved {APPROVED})",
        ),
        (None, [], "readOnly admits no tools from pinned (the server is not in the registry)"),
    ],
    ids=["pinned-approved", "tracked", "no-approved-hash", "never-probed", "not-approved", "missing"],
)
def test_the_ready_message_says_what_read_only_admits(
    record: ServerRecord | None, snapshots: list[ToolSnapshotRecord], message: str
) -> None:
    binding = BindingRecord(
        tenant="acme", name="b", template="t", servers=(BoundServerRecord("pinned", tools_read_only=True),)
    )
    servers = {} if record is None else {"pinned": record}

    (ready,) = read_only_conditions(binding, servers=servers, snapshots={"pinned": snapshots})

    assert (ready["type"], ready["status"]) == ("Ready", "True"), "admitting nothing is the binding working"
    assert ready["message"].startswith(message)


def test_a_standing_risk_change_on_a_pinned_server_admits_nothing() -> None:
    binding = BindingRecord(
        tenant="acme", name="b", template="t", servers=(BoundServerRecord("pinned", tools_read_only=True),)
    )

    (ready,) = read_only_conditions(
        binding,
        servers={"pinned": PINNED},
        snapshots={"pinned": [snapshot("pinned", APPROVED)]},
        tool_risk={"pinned": ["readOnlyHint of wipe: false → true"]},
    )

    assert ready["message"].startswith(
        f"readOnly admits no tools from pinned (its tools changed risk (readOnlyHint of wipe: false → true)): {TRUST}"
    )


def test_both_kinds_of_server_in_one_binding_and_none_without_read_only() -> None:
    binding = BindingRecord(
        tenant="acme",
        name="b",
        template="t",
        servers=(
            BoundServerRecord("pinned", tools_read_only=True),
            BoundServerRecord("tracked", tools_read_only=True),
            BoundServerRecord("plain"),
        ),
    )
    servers = {"pinned": PINNED, "tracked": server("tracked"), "plain": server("plain")}

    (ready,) = read_only_conditions(binding, servers=servers, snapshots={"pinned": [snapshot("pinned", APPROVED)]})

    assert ready["message"] == (
        "readOnly admits the read-only tools of pinned; readOnly admits no tools from tracked "
        f"(not pinned (spec.tools.policy: Track)): {TRUST}, so readOnly admits tools only from a server whose tool "
        "set is pinned and approved (spec.tools.policy: Pin with a matching approvedHash); from any other server it "
        "admits none"
    )
    plain = BindingRecord(tenant="acme", name="b", template="t", servers=(BoundServerRecord("plain"),))
    assert read_only_conditions(plain, servers=servers, snapshots={}) == []
