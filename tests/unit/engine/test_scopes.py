"""The two scopes a driver injects into a pass: what each covers, prunes, and does with a concurrent writer or a
row still missing. Pure: no registry."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.engine.steps.passing import EngineSettings, Scope
from reconciler.engine.steps.scopes import CONCURRENT_ATTEMPTS, ObjectScope, WholeSource
from reconciler.engine.steps.sinks import ClusterStatuses, RegistryCopies
from reconciler.errors import DependencyPending, MissingReference, Problem
from reconciler.registry.errors import ConcurrentChange, RegistryBusy
from reconciler.registry.records import SourceRef
from tests.unit.engine.steps_objects import connection, server

CRM, WIKI, OTHER = server("crm"), server("wiki"), server("crm", namespace="other")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("scope", "narrowed", "targets", "tenants"),
    [
        (WholeSource(), None, [CRM, WIKI, OTHER], None),
        (WholeSource(), frozenset({"other-slug"}), [CRM, WIKI, OTHER], frozenset({"other-slug"})),
        (ObjectScope(targets=frozenset({WIKI.source})), None, [WIKI], frozenset({"acme-slug"})),
        (ObjectScope(targets=frozenset({OTHER.source, CRM.source})), None, [CRM, OTHER], {"acme-slug", "other-slug"}),
        (ObjectScope(targets=frozenset({SourceRef("MCPServer", "acme", "gone")})), None, [], frozenset()),
    ],
)
def test_select_names_the_objects_reconciled_and_the_tenants_read(
    scope: Scope, narrowed: frozenset[str] | None, targets: list[object], tenants: frozenset[str] | None
) -> None:
    chosen, read = scope.select([CRM, WIKI, OTHER], tenants=narrowed)
    assert chosen == targets
    assert read == tenants


@pytest.mark.parametrize(
    ("scope", "prune", "prunes"),
    [
        (WholeSource(), True, True),
        (WholeSource(), False, False),
        (ObjectScope(targets=frozenset()), True, False),
        (ObjectScope(targets=frozenset()), False, False),
    ],
)
def test_only_the_whole_source_prunes_and_only_when_asked(scope: Scope, prune: bool, prunes: bool) -> None:
    assert scope.prunes(EngineSettings(prune=prune)) is prunes


def test_the_whole_source_runs_again_until_its_last_attempt_and_then_reports_the_registry_busy() -> None:
    error = ConcurrentChange("moved")
    for attempt in range(1, CONCURRENT_ATTEMPTS):
        WholeSource().concurrent_change(error, attempt=attempt)  # returns: run the pass again
    with pytest.raises(RegistryBusy) as caught:
        WholeSource().concurrent_change(error, attempt=CONCURRENT_ATTEMPTS)
    assert caught.value.__cause__ is error and f"{CONCURRENT_ATTEMPTS} times" in str(caught.value)


def test_an_object_scope_hands_a_concurrent_change_to_the_operators_own_retry() -> None:
    error = ConcurrentChange("moved")
    with pytest.raises(ConcurrentChange) as caught:
        ObjectScope(targets=frozenset()).concurrent_change(error, attempt=1)
    assert caught.value is error


def test_a_missing_row_fails_the_folder_and_makes_the_operator_wait() -> None:
    error = MissingReference([Problem("MCPServer 'nope' does not exist", field="spec.serverRef")])
    with pytest.raises(MissingReference) as failed:
        WholeSource().missing_reference(error)
    assert failed.value is error
    with pytest.raises(DependencyPending) as waiting:
        ObjectScope(targets=frozenset()).missing_reference(error)
    assert waiting.value.__cause__ is error and waiting.value.delay == 2.0
    assert "waiting for referenced objects to be registered" in str(waiting.value)


def test_each_scope_brings_its_drivers_status_sink() -> None:
    assert isinstance(WholeSource().status_sink(now=NOW), RegistryCopies)
    generations = {CRM.source: 4}
    statuses = {CRM.source: {"phase": "Ready"}}
    sink = ObjectScope(targets=frozenset({CRM.source}), generations=generations, statuses=statuses).status_sink(now=NOW)
    assert sink == ClusterStatuses(generations=generations, statuses=statuses)


def test_a_connection_is_selected_like_any_object() -> None:
    shared = connection("shared", server_name="crm")
    chosen, read = ObjectScope(targets=frozenset({shared.source})).select([CRM, shared], tenants=None)
    assert chosen == [shared] and read == {"acme-slug"}
