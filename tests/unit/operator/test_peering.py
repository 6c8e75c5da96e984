"""kopf's pause rule re-derived for the periodic passes: which peers block, caching, and failing closed."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

import pytest

from reconciler.operator.peering import PeeringCheck, PeeringGate, PeeringReader, blocking_peers, own_identity, peers_of

NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def entry(priority: int, *, seen_seconds_ago: float = 5, lifetime: int = 60) -> dict[str, Any]:
    lastseen = NOW - dt.timedelta(seconds=seen_seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": lastseen.isoformat()}


@pytest.mark.parametrize(
    ("others", "blocked"),
    [
        ({}, False),
        ({"low": entry(0)}, False),
        ({"high": entry(20)}, True),
        ({"same": entry(10)}, True),
        ({"high-but-dead": entry(20, seen_seconds_ago=61)}, False),
    ],
)
def test_blocking_peers_follow_kopfs_rule(others: dict[str, Any], blocked: bool) -> None:
    status = {"me": entry(10), **others}
    assert bool(blocking_peers(status, identity="me", priority=10, now=NOW)) is blocked


def test_malformed_entries_are_skipped_and_naive_times_are_utc() -> None:
    status = {
        "broken": {"priority": "high", "lastseen": NOW.isoformat()},
        "no-time": {"priority": 1},
        "not-a-map": "x",
        "naive": {"priority": 3, "lifetime": 60, "lastseen": NOW.replace(tzinfo=None).isoformat()},
    }
    peers = peers_of(status)
    assert [peer.identity for peer in peers] == ["naive"]
    assert peers[0].alive_until == NOW + dt.timedelta(seconds=60)


def test_own_identity_is_the_pod_name_when_given() -> None:
    assert own_identity({"POD_ID": "mcp-reconciler-7d9f"}) == "mcp-reconciler-7d9f"
    assert own_identity({"POD_NAME": "mcp-reconciler-7d9f"}) == "mcp-reconciler-7d9f"
    first, second = own_identity({}), own_identity({})
    assert first != second, "a random suffix tells two local instances apart"


class Reader:
    def __init__(self, status: Mapping[str, Any] | BaseException | None) -> None:
        self.status = status
        self.reads: list[tuple[str | None, str]] = []

    async def __call__(self, namespace: str | None, name: str) -> Mapping[str, Any] | None:
        self.reads.append((namespace, name))
        if isinstance(self.status, BaseException):
            raise self.status
        return self.status


def gate(reader: Reader, *, clusterwide: bool = False, clock: list[dt.datetime] | None = None) -> PeeringGate:
    times = clock if clock is not None else [NOW]
    return PeeringGate(
        reader,
        name="mcp-reconciler",
        identity="me",
        priority=10,
        clusterwide=clusterwide,
        cache_seconds=10,
        clock=lambda: times[0],
    )


def test_the_gate_opens_without_blockers_and_caches_per_namespace() -> None:
    reader = Reader({"me": entry(10), "standby": entry(0)})
    clock = [NOW]
    subject = gate(reader, clock=clock)

    async def scenario() -> list[bool]:
        verdicts = [await subject.allows("team-a"), await subject.allows("team-a"), await subject.allows("team-b")]
        clock[0] = NOW + dt.timedelta(seconds=11)
        verdicts.append(await subject.allows("team-a"))
        return verdicts

    assert asyncio.run(scenario()) == [True, True, True, True]
    assert reader.reads == [("team-a", "mcp-reconciler"), ("team-b", "mcp-reconciler"), ("team-a", "mcp-reconciler")]


def test_the_gate_closes_for_a_stronger_peer_a_missing_object_or_an_unreadable_one() -> None:
    async def verdict(status: Mapping[str, Any] | BaseException | None, *, clusterwide: bool = False) -> bool:
        reader = Reader(status)
        result = await gate(reader, clusterwide=clusterwide).allows("team-a")
        assert reader.reads == [(None if clusterwide else "team-a", "mcp-reconciler")]
        return result

    async def scenario() -> list[bool]:
        return [
            await verdict({"me": entry(10), "active": entry(20)}),
            await verdict(None),
            await verdict(RuntimeError("API down")),
            await verdict({"me": entry(10)}, clusterwide=True),
        ]

    assert asyncio.run(scenario()) == [False, False, False, True]


def _reader(objects: dict[str | None, dict[str, object] | None], calls: list[str | None]) -> PeeringReader:
    async def read(namespace: str | None, name: str) -> dict[str, object] | None:
        calls.append(namespace)
        if namespace == "broken":
            raise RuntimeError("the KopfPeering CRD is not installed")
        return objects.get(namespace)

    return read


def test_a_missing_peering_object_says_what_is_awaited_and_the_two_ways_out() -> None:
    calls: list[str | None] = []
    check = PeeringCheck(
        _reader({"a": {}}, calls), name="mcp-reconciler", namespaces=("a", "b", "broken", "team-*"), clusterwide=False
    )
    state = asyncio.run(check.check())
    assert calls == ["a", "b", "broken"]  # a pattern cannot be checked
    assert not state.ready
    assert "nothing is reconciled until the KopfPeering 'mcp-reconciler' exists in namespace b, broken" in state.message
    assert "--standalone" in state.message and "install the chart" in state.message


def test_peering_objects_that_exist_are_ready() -> None:
    calls: list[str | None] = []
    assert asyncio.run(
        PeeringCheck(_reader({None: {}}, calls), name="p", namespaces=(), clusterwide=True).check()
    ).ready
    assert calls == [None]
    state = asyncio.run(PeeringCheck(_reader({}, calls), name="p", namespaces=(), clusterwide=True).check())
    assert not state.ready and "ClusterKopfPeering 'p'" in state.message
    state = asyncio.run(PeeringCheck(_reader({}, calls), name="p", namespaces=("t-*",), clusterwide=False).check())
    assert state.ready and "not verified" in state.message
