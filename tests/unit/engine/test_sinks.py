"""The two status sinks: where the previous status and generation of an object come from, when a stored status
still holds, and which copies the CLI's sink writes. Pure: no registry."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from reconciler.api.common import dump_spec
from reconciler.engine.desired import DesiredObject
from reconciler.engine.planning import Action, FieldChange, Verb
from reconciler.engine.steps.sinks import ClusterStatuses, RegistryCopies
from reconciler.registry.records import ResourceRecord
from tests.unit.engine.steps_objects import server

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
EARLIER = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
CRM = server("crm", labels={"team": "a"}, generation=7)
HASH = "hash-1"
READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Connected"}]}
HELD_BACK = {"conditions": [{"type": "CredentialsValid", "status": "False", "reason": "RotationFailed"}]}


def copy(obj: DesiredObject = CRM, **fields: Any) -> ResourceRecord:
    meta = obj.resource.metadata
    values: dict[str, Any] = {
        "kind": obj.resource.kind,
        "namespace": meta.namespace,
        "name": meta.name,
        "tenant": obj.tenant.slug,
        "generation": 3,
        "spec_hash": HASH,
        "spec": dump_spec(obj.resource.spec),
        "labels": dict(meta.labels),
        "annotations": dict(meta.annotations),
        "status": READY,
        "uid": "u-1",
        "created_at": EARLIER,
    }
    return ResourceRecord(**(values | fields))


def noop(**fields: Any) -> Action:
    return Action(Verb.NOOP, CRM.key, CRM.source, **fields)


def copies(*stored: ResourceRecord) -> RegistryCopies:
    return RegistryCopies(now=NOW, previous={(r.kind, r.namespace, r.name): r for r in stored})


@pytest.mark.parametrize(
    ("stored", "action", "probed", "stands"),
    [
        (copy(), noop(), False, True),
        ((), noop(), False, False),  # never stored
        (copy(status={}), noop(), False, False),  # stored without a status
        (copy(spec_hash="hash-0"), noop(), False, False),  # the spec changed
        (copy(), Action(Verb.UPDATE, CRM.key, CRM.source), False, False),
        (copy(), noop(changes=(FieldChange("url", "a", "b"),)), False, False),
        (copy(), noop(message="rotation held back"), False, False),
        (copy(), noop(), True, False),  # probed this pass: the probe state moved
        (copy(status=HELD_BACK), noop(), False, False),  # depends on the last run, not on the rows
    ],
)
def test_a_stored_status_stands_only_when_nothing_it_is_built_from_moved(
    stored: ResourceRecord | tuple[()], action: Action, probed: bool, stands: bool
) -> None:
    sink = copies(*([] if stored == () else [stored]))  # type: ignore[list-item]
    result = sink.standing(CRM, action, spec_hash=HASH, probed=probed)
    if not stands:
        assert result is None
        return
    assert result is not None and isinstance(stored, ResourceRecord)
    assert (result.generation, result.status, result.status_changed) == (stored.generation, stored.status, False)
    assert sink.pending == []  # the copy shows what the manifest says: nothing to write


def test_a_standing_status_still_rewrites_a_copy_whose_labels_moved() -> None:
    sink = copies(copy(labels={"team": "b"}))
    result = sink.standing(CRM, noop(), spec_hash=HASH, probed=False)
    assert result is not None and result.status == READY
    (written,) = sink.pending
    assert (written.labels, written.status, written.generation, written.uid) == ({"team": "a"}, READY, 3, "u-1")


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ([], (1, None)),
        ([copy()], (3, READY)),
        ([copy(spec_hash="hash-0")], (4, READY)),  # a new spec is a new generation
    ],
)
def test_the_cli_counts_generations_in_its_copies(stored: list[ResourceRecord], expected: tuple[int, Any]) -> None:
    assert copies(*stored).previous_of(CRM, spec_hash=HASH) == expected


@pytest.mark.parametrize(
    ("generations", "statuses", "expected"),
    [
        ({CRM.source: 12}, {CRM.source: READY}, (12, READY)),
        ({CRM.source: None}, {}, (7, None)),  # the object's own metadata.generation
        ({}, {}, (7, None)),
    ],
)
def test_the_operator_takes_generations_and_statuses_from_the_api_server(
    generations: dict[Any, int | None], statuses: dict[Any, Any], expected: tuple[int, Any]
) -> None:
    sink = ClusterStatuses(generations=generations, statuses=statuses)
    assert sink.previous_of(CRM, spec_hash=HASH) == expected
    assert sink.standing(CRM, noop(), spec_hash=HASH, probed=False) is None  # rebuilt every pass


@pytest.mark.parametrize(
    ("stored", "status", "generation", "writes"),
    [
        ([copy()], READY, 3, False),  # what `get` shows already
        ([copy()], {"conditions": []}, 3, True),
        ([copy()], READY, 4, True),
        ([copy(annotations={"note": "old"})], READY, 3, True),
        ([], READY, 1, True),  # first copy
    ],
)
def test_the_cli_writes_a_copy_only_when_what_get_shows_changes(
    stored: list[ResourceRecord], status: dict[str, Any], generation: int, writes: bool
) -> None:
    sink = copies(*stored)
    sink.keep(CRM, spec_hash=HASH, status=status, generation=generation)
    assert bool(sink.pending) is writes
    if writes:
        (written,) = sink.pending
        assert (written.status, written.generation, written.spec_hash) == (status, generation, HASH)
        assert written.created_at == (stored[0].created_at if stored else NOW)
        # Noted once: keeping the same status again writes nothing more.
        sink.pending = []
        sink.keep(CRM, spec_hash=HASH, status=status, generation=generation)
        assert sink.pending == []
