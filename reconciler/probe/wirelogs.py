"""Keeps header values out of the HTTP library's DEBUG log, whoever configured logging and at whatever level.

httpcore2 logs every response's headers verbatim at DEBUG (`receive_response_headers.complete return_value=
(..., [(b'www-authenticate', b'...')])`), so a server that quotes the presented token in a challenge, a cookie or
any header would put a credential in the log of a host running with the root logger at DEBUG. `ProbeHttp` calls
`withhold_header_values()` when a run starts, before any request is sent; it installs a filter on httpcore2's
loggers that rewrites those records to the event and the status code. Request headers are never in httpcore2's
messages (it logs `<Request [b'POST']>`), and websockets' handshake log is muted in `websocket.py`.
"""

from __future__ import annotations

import logging
import re

WIRE_LOGGERS = (
    "httpcore2.http11",
    "httpcore2.http2",
    "httpcore2.connection",
    "httpcore2.proxy",
    "httpcore2.socks",
)
"""httpcore2 logs through these module loggers; a filter on a logger does not apply to its children, so each one."""

_STATUS = re.compile(r"return_value=\((?:b'HTTP/[0-9.]+', )?(\d{3})\b")


class HeaderValuesWithheld(logging.Filter):
    """Rewrites header-carrying trace records to `<event> status=<code> (header values withheld)`; keeps the rest."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        event, _, rest = message.partition(" ")
        if "headers" in event and rest:
            status = _STATUS.search(rest)
            record.msg = f"{event} status={status.group(1)} (header values withheld)" if status else event
            record.args = None
        return True


_FILTER = HeaderValuesWithheld()


def withhold_header_values() -> None:
    """Install the filter on every httpcore2 logger (idempotent: the same filter object is added only once)."""
    for name in WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
