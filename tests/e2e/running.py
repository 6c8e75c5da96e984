"""Run the real operator in-process for e2e tests: its own thread, event loop, kopf registry and stop flag.

`RunningOperator.start` returns once kopf is ready (initial listings done); `stop` sets the stop flag and
joins with a bound, re-raising whatever the operator died of, so a crashed operator fails the test.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from reconciler.operator import Operator, OperatorConfig

START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 60


@dataclass
class RunningOperator:
    config: OperatorConfig
    operator: Operator = field(init=False)
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _error: BaseException | None = None

    def __post_init__(self) -> None:
        self.operator = Operator(self.config, environ={})

    def start(self) -> RunningOperator:
        ready = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready_flag = asyncio.Event()
            task = asyncio.create_task(self.operator.run(stop_flag=self._stop, ready_flag=ready_flag))
            waiter = asyncio.create_task(ready_flag.wait())
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            ready.set()
            waiter.cancel()
            await task

        def target() -> None:
            try:
                asyncio.run(main())
            except BaseException as error:
                self._error = error
                ready.set()

        self._thread = threading.Thread(target=target, name="operator", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS):
            raise AssertionError("the operator did not become ready in time")
        if self._error is not None:
            raise AssertionError(f"the operator failed to start: {self._error!r}") from self._error
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STOP_TIMEOUT_SECONDS)
        alive = self._thread.is_alive()
        self._thread = None
        if alive:
            raise AssertionError("the operator did not stop in time")
        if self._error is not None:
            raise AssertionError(f"the operator crashed: {self._error!r}") from self._error

    @property
    def port(self) -> int | None:
        return self.operator.port
