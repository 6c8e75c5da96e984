"""A small MCP client transport over websockets (subprotocol `mcp`), yielding the same (read, write) streams as the
SDK's own transports, so negotiation, listing and classification have one code path above the transport.

The mcp SDK dropped its websocket transport; `transports.open_transport` calls `websocket_client` for targets
with `transport: websocket`. The connection goes through the SSRF guard: the socket is opened to a checked
address first and handed to `websockets`, which then cannot follow redirects or use a proxy.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import mcp_types
import pydantic
from mcp.shared.message import SessionMessage
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from reconciler.probe.ssrf import connect_checked_socket

if TYPE_CHECKING:
    from mcp.client._transport import TransportStreams

    from reconciler.probe.transports import ProbeHttp

MCP_SUBPROTOCOL = Subprotocol("mcp")


class _WithoutWireDebug(logging.LoggerAdapter[logging.Logger]):
    """websockets logs every handshake header at DEBUG, credentials included; its DEBUG output is never emitted."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if level > logging.DEBUG:
            super().log(level, msg, *args, **kwargs)


WIRE_LOGGER = _WithoutWireDebug(logging.getLogger(__name__), {})


def websocket_url(url: str) -> str:
    """The ws(s) URL for an http(s) URL (a ws(s) URL is kept). Pure."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme.lower(), parts.scheme.lower())
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


@asynccontextmanager
async def websocket_client(
    url: str,
    *,
    headers: Mapping[str, str],
    http: ProbeHttp,
    allow_private: bool,
    connect_timeout: float,
    max_message_bytes: int,
) -> AsyncIterator[TransportStreams]:
    """Connect, then pump JSON-RPC text frames into and out of the SDK's message streams until the caller exits."""
    ws_url = websocket_url(url)
    parts = urlsplit(ws_url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    sock = await connect_checked_socket(
        host, port, resolver=http.resolver, allow_private=allow_private, timeout=connect_timeout
    )
    tls: dict[str, Any] = {"ssl": http.ssl_context, "server_hostname": host} if secure else {}
    try:
        connection = connect(
            ws_url,
            sock=sock,
            proxy=None,
            subprotocols=[MCP_SUBPROTOCOL],
            additional_headers=dict(headers),
            open_timeout=connect_timeout,
            close_timeout=connect_timeout,
            ping_interval=None,
            compression=None,
            max_size=max_message_bytes,
            logger=WIRE_LOGGER,
            **tls,
        )
    except BaseException:
        sock.close()
        raise

    async with connection as websocket:
        read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](0)

        async def pump_in() -> None:
            async with read_writer:
                async for frame in websocket:
                    try:
                        message = mcp_types.jsonrpc_message_adapter.validate_json(frame, by_name=False)
                    except pydantic.ValidationError as exc:
                        await read_writer.send(exc)
                        continue
                    await read_writer.send(SessionMessage(message))

        async def pump_out() -> None:
            async with write_reader:
                async for session_message in write_reader:
                    await websocket.send(session_message.message.model_dump_json(by_alias=True, exclude_unset=True))

        async with read_stream, write_stream, anyio.create_task_group() as tasks:
            tasks.start_soon(pump_in)
            tasks.start_soon(pump_out)
            yield read_stream, write_stream
            tasks.cancel_scope.cancel()
