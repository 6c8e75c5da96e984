"""The garbage-collector pause of a CLI pass: the collector's state is restored however the pause ends, nested and
concurrent pauses share one, a collector disabled by someone else stays disabled, the pass's cycles are collected
when it ends, and `reconcile` (the CLI's entry point) runs its whole pass under the pause, against real SQLite."""

from __future__ import annotations

import gc
import sys
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.api import MCPServer, ObjectMeta
from reconciler.api.server import MCPServerSpec
from reconciler.engine.collector import collection_paused, collection_resumed
from reconciler.engine.inputs import DesiredInput, StaticSecrets, Tenant
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.registry import open_registry


@pytest.fixture(autouse=True)
def collector_enabled() -> Iterator[None]:
    """Every test starts with the collector on, and leaves it on whatever it did."""
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    if was_enabled:
        gc.enable()
    else:
        gc.disable()


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_paused_inside_and_restored_after_a_normal_exit() -> None:
    with collection_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_restored_after_an_exception() -> None:
    with pytest.raises(RuntimeError, match="boom"), collection_paused():
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_nested_pauses_resume_only_when_the_outermost_ends() -> None:
    with collection_paused():
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner exit must not switch collection back on under the outer pause
    assert gc.isenabled()


def test_a_pause_ending_in_another_thread_does_not_end_this_one() -> None:
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with collection_paused():
            entered.set()
            leave.wait(5)

    with collection_paused():
        thread = threading.Thread(target=other)
        thread.start()
        assert entered.wait(5)
        leave.set()
        thread.join(5)
        assert not gc.isenabled()
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with collection_paused():
        assert not gc.isenabled()
        with collection_resumed():
            assert not gc.isenabled()  # not paused by us: not ours to switch on
    assert not gc.isenabled()


def test_the_pass_cycles_are_collected_when_the_pause_ends() -> None:
    with collection_paused():
        cycle = Cycle()
        alive = weakref.ref(cycle)
        del cycle
        assert alive() is not None  # nothing collects it while paused
    assert alive() is None


def test_resumed_collects_inside_a_pause_and_pauses_again() -> None:
    with collection_paused():
        with collection_resumed():
            assert gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with collection_resumed():  # outside a pause: nothing changes
        assert gc.isenabled()
    assert gc.isenabled()


def test_reconcile_runs_the_whole_pass_without_automatic_collections(tmp_path: Path) -> None:
    desired = DesiredInput(secrets=StaticSecrets())
    desired.tenants["acme"] = Tenant(namespace="acme", slug="acme")
    for i in range(20):
        spec = MCPServerSpec(url=f"https://mcp-{i}.acme.example.com/mcp")
        desired.resources.append(MCPServer(metadata=ObjectMeta(name=f"server-{i}", namespace="acme"), spec=spec))
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    during_the_pass: list[int] = []

    def count(phase: str, info: dict[str, Any]) -> None:
        frame = sys._getframe(1)
        names = set()
        while frame is not None:
            names.add(frame.f_code.co_name)
            frame = frame.f_back  # type: ignore[assignment]
        if phase == "start" and names & {"plan_pass", "run_pass"}:
            during_the_pass.append(info["generation"])

    threshold = gc.get_threshold()
    gc.set_threshold(1)  # left on, the collector would run at nearly every allocation
    gc.callbacks.append(count)
    try:
        report = reconcile(desired, registry, settings=EngineSettings())
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*threshold)
        registry.close()
    assert report.plan.counts()["create"] == 20
    assert during_the_pass == []
    assert gc.isenabled()
