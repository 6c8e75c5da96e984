"""The one loop behind every object's periodic passes: order, bounds, rescheduling, hurry, forget, and stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from reconciler.operator.resyncing import ResyncScheduler


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=10))


async def until(condition: Callable[[], bool], *, seconds: float = 5.0) -> None:
    """Poll every 5 ms, `seconds` at most; fails the test when the condition never holds."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_passes_run_in_due_order_and_repeat_with_the_delay_they_return() -> None:
    ran: list[str] = []

    async def scenario() -> None:
        async def one_pass(key: str) -> float | None:
            ran.append(key)
            return 0.05 if key == "fast" else 10.0

        scheduler = ResyncScheduler(one_pass, concurrency=4)
        scheduler.track("slow", 0.04)
        scheduler.track("fast", 0.01)
        assert not scheduler.track("fast", 0.0), "a known key keeps its schedule"
        scheduler.start()
        await until(lambda: ran.count("fast") >= 3)
        await scheduler.stop()

    run(scenario)
    assert ran[:2] == ["fast", "slow"]
    assert ran.count("slow") == 1, "its next pass is 10 s away"


def test_a_pass_returning_none_drops_the_key() -> None:
    ran: list[str] = []

    async def scenario() -> None:
        async def one_pass(key: str) -> float | None:
            ran.append(key)
            return None

        scheduler = ResyncScheduler(one_pass, concurrency=1)
        scheduler.track("gone", 0.0)
        scheduler.start()
        await until(lambda: "gone" not in scheduler)
        await asyncio.sleep(0.05)
        await scheduler.stop()

    run(scenario)
    assert ran == ["gone"]


def test_no_more_than_concurrency_passes_run_at_once() -> None:
    peak = 0
    running = 0
    done: list[str] = []

    async def scenario() -> None:
        async def one_pass(key: str) -> float | None:
            nonlocal peak, running
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1
            done.append(key)
            return None

        scheduler = ResyncScheduler(one_pass, concurrency=3)
        for index in range(20):
            scheduler.track(f"object-{index}", 0.0)
        scheduler.start()
        await until(lambda: len(done) == 20)
        await scheduler.stop()

    run(scenario)
    assert peak == 3


def test_hurry_brings_a_pass_forward_and_during_a_pass_shortens_the_next_delay() -> None:
    times: list[float] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        release = asyncio.Event()

        async def one_pass(key: str) -> float | None:
            times.append(loop.time())
            if len(times) == 1:
                await release.wait()
            return 60.0

        scheduler = ResyncScheduler(one_pass, concurrency=1)
        scheduler.track("crm", 60.0)
        scheduler.start()
        scheduler.hurry("crm", 0.0)
        await until(lambda: len(times) == 1)
        scheduler.hurry("crm", 0.05)  # while its pass runs: applies to the next one, not the 60 s it returns
        release.set()
        await until(lambda: len(times) == 2)
        scheduler.hurry("unknown", 0.0)
        assert "unknown" not in scheduler
        await scheduler.stop()

    run(scenario)
    assert times[1] - times[0] < 5


def test_postpone_pushes_a_waiting_pass_back_and_leaves_a_running_one_alone() -> None:
    ran: list[str] = []

    async def scenario() -> None:
        release = asyncio.Event()

        async def one_pass(key: str) -> float | None:
            ran.append(key)
            await release.wait()
            return 60.0

        scheduler = ResyncScheduler(one_pass, concurrency=2)
        scheduler.track("checked", 0.05)
        scheduler.track("running", 0.0)
        scheduler.start()
        await until(lambda: ran == ["running"])
        assert scheduler.waiting("checked") and not scheduler.waiting("running")
        scheduler.postpone("checked", 60.0)  # a watch event's pass just checked it
        scheduler.postpone("running", 0.0)  # in flight: keeps the delay its pass returns
        scheduler.postpone("unknown", 0.0)
        await asyncio.sleep(0.2)
        assert ran == ["running"], "the postponed pass did not run at its old due time"
        assert "unknown" not in scheduler
        release.set()
        await until(lambda: scheduler.waiting("running"))
        await asyncio.sleep(0.05)
        await scheduler.stop()

    run(scenario)
    assert ran == ["running"]


def test_a_forgotten_key_is_not_rescheduled_even_mid_pass() -> None:
    ran: list[str] = []

    async def scenario() -> None:
        started = asyncio.Event()
        release = asyncio.Event()

        async def one_pass(key: str) -> float | None:
            ran.append(key)
            started.set()
            await release.wait()
            return 0.0

        scheduler = ResyncScheduler(one_pass, concurrency=1)
        scheduler.track("crm", 0.0)
        scheduler.start()
        await started.wait()
        scheduler.forget("crm")
        release.set()
        await until(lambda: scheduler.in_flight == 0)
        await asyncio.sleep(0.05)
        await scheduler.stop()
        assert "crm" not in scheduler

    run(scenario)
    assert ran == ["crm"]


def test_a_failing_pass_is_logged_and_retried_later(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[float] = []

    async def scenario() -> None:
        async def one_pass(key: str) -> float | None:
            ran.append(asyncio.get_running_loop().time())
            raise RuntimeError("bug")

        scheduler = ResyncScheduler(one_pass, concurrency=1, retry_after_bug=0.02)
        scheduler.track("crm", 0.0)
        scheduler.start()
        await until(lambda: len(ran) >= 3)
        await scheduler.stop()

    run(scenario)
    assert "periodic pass of crm failed" in caplog.text


def test_stop_cancels_passes_in_flight() -> None:
    cancelled: list[str] = []

    async def scenario() -> None:
        started = asyncio.Event()

        async def one_pass(key: str) -> float | None:
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.append(key)
                raise
            return None

        scheduler = ResyncScheduler(one_pass, concurrency=1)
        scheduler.track("crm", 0.0)
        scheduler.start()
        await started.wait()
        await scheduler.stop()

    run(scenario)
    assert cancelled == ["crm"]
