"""What to probe and how: `ProbeSettings` (limits and timeouts, shared by every probe in a run) and `ProbeTarget`
(one server, with its already-resolved headers).

Built by the engine and the CLI from specs and the reconciler's own flags; read by every other probe module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Transport = Literal["streamable-http", "sse", "websocket"]
TRANSPORTS: tuple[Transport, ...] = ("streamable-http", "sse", "websocket")
MIN_SECRET_LENGTH = 4


@dataclass(frozen=True)
class ProbeSettings:
    """Limits for a probe run; the defaults suit a reconciler probing many tenants' servers."""

    allow_private_networks: bool = False
    """The reconciler-wide switch; a target also needs its own `allow_private` to reach private addresses."""
    connect_timeout: float = 5
    request_timeout: float = 10
    total_timeout: float = 30
    max_concurrency: int = 16
    max_pages: int = 50
    max_response_bytes: int = 4 * 1024 * 1024
    max_tools: int = 2000

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "request_timeout", "total_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("max_concurrency", "max_pages", "max_response_bytes", "max_tools"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


@dataclass(frozen=True)
class ProbeTarget:
    """One MCP server to probe. Header values are secrets: they never appear in repr, logs, messages or results."""

    tenant: str
    server: str
    url: str
    transport: Transport = "streamable-http"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    allow_private: bool = False
    """The server's `spec.network.allowPrivate`."""
    discover_auth: bool = True
    list_tools: bool = True

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {self.transport!r}; expected one of {', '.join(TRANSPORTS)}")
        # A private copy, so a caller mutating its dict cannot change a frozen target.
        object.__setattr__(self, "headers", dict(self.headers))

    def secret_values(self) -> tuple[str, ...]:
        """Header values and the credential inside them (`Bearer <token>`), longest first, for scrubbing text before
        it leaves the probe. Values shorter than four characters are skipped: scrubbing them would mangle text."""
        found: set[str] = set()
        for value in self.headers.values():
            credential = value.partition(" ")[2].strip()
            found.update(part for part in (value.strip(), credential) if len(part) >= MIN_SECRET_LENGTH)
        return tuple(sorted(found, key=len, reverse=True))
