"""`ServerLoop`: one event loop in a background thread that hosts local servers (uvicorn ASGI apps, raw asyncio
servers) on 127.0.0.1 ephemeral ports, with bounded start-up and clean shutdown.

Used by `servers.start_demo_servers` (the CLI demo), the test fixtures and the probe benchmark, which hosts
hundreds of servers on one loop. Each server binds port 0 first and is built knowing its own URL, because MCP
auth metadata has to name the server's address.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp

LOCALHOST = "127.0.0.1"
_Result = TypeVar("_Result")


def bind_local_socket() -> socket.socket:
    """A TCP socket bound to an ephemeral port on 127.0.0.1 (the port is known before anything is served)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOCALHOST, 0))
    return sock


def base_url(sock: socket.socket) -> str:
    return f"http://{LOCALHOST}:{sock.getsockname()[1]}"


class ServerLoop:
    """A background event loop hosting local servers; use as a context manager (stops everything on exit)."""

    def __init__(self, *, startup_timeout: float = 15.0, shutdown_timeout: float = 10.0) -> None:
        self._startup_timeout = startup_timeout
        self._shutdown_timeout = shutdown_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._cleanups: list[Callable[[], Awaitable[None]]] = []

    def __enter__(self) -> ServerLoop:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="mcp-local-servers", daemon=True)
        self._thread.start()
        if not ready.wait(self._startup_timeout):
            raise RuntimeError("the local server loop did not start")

    def call(self, make: Callable[[], Coroutine[Any, Any, _Result]], *, timeout: float | None = None) -> _Result:
        """Run a coroutine on the server loop and wait (bounded) for its result."""
        if self._loop is None:
            raise RuntimeError("ServerLoop is not running")
        future = asyncio.run_coroutine_threadsafe(make(), self._loop)
        try:
            return future.result(timeout if timeout is not None else self._startup_timeout)
        except TimeoutError:
            future.cancel()
            raise

    def on_stop(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Register a coroutine function run on the loop at `stop()`."""
        self._cleanups.append(cleanup)

    def serve_asgi(self, build: Callable[[str], ASGIApp], *, sock: socket.socket | None = None) -> str:
        """Serve the app `build(base_url)` returns under uvicorn; returns the base URL once it accepts requests."""
        sock = sock or bind_local_socket()
        url = base_url(sock)
        app = build(url)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                lifespan="on",
                ws="none",
                log_config=None,
                access_log=False,
                timeout_graceful_shutdown=1,
            )
        )

        async def start() -> asyncio.Task[None]:
            task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError(f"server at {url} exited during start-up")
                await asyncio.sleep(0.01)
            return task

        task = self.call(start)

        async def shutdown() -> None:
            server.should_exit = True
            try:
                await asyncio.wait_for(task, self._shutdown_timeout)
            finally:
                sock.close()

        self.on_stop(shutdown)
        return url

    def serve_black_hole(self) -> str:
        """A TCP server that accepts connections and never answers: the worst kind of slow server."""
        sock = bind_local_socket()
        writers: list[asyncio.StreamWriter] = []

        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            while await reader.read(65536):
                pass

        async def start() -> asyncio.Server:
            return await asyncio.start_server(swallow, sock=sock)

        server = self.call(start)

        async def shutdown() -> None:
            server.close()
            for writer in writers:
                writer.close()
            await asyncio.wait_for(server.wait_closed(), self._shutdown_timeout)

        self.on_stop(shutdown)
        return base_url(sock)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        cleanups, self._cleanups = self._cleanups, []

        async def run_cleanups() -> None:
            # Concurrently (uvicorn polls its exit flag every 0.1 s) and independently: one server failing to
            # stop must not keep the others running.
            await asyncio.gather(*(cleanup() for cleanup in cleanups), return_exceptions=True)
            current = asyncio.current_task()
            pending = [task for task in asyncio.all_tasks() if task is not current]
            for task in pending:
                task.cancel()
            await asyncio.wait(pending, timeout=self._shutdown_timeout) if pending else None

        try:
            asyncio.run_coroutine_threadsafe(run_cleanups(), loop).result(self._shutdown_timeout * 2)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(self._shutdown_timeout)
            self._loop = None
            self._thread = None
