"""The domain error tree, below every layer that raises it. Drivers translate it: the CLI to exit codes,
the operator to kopf errors.

    ReconcilerError
    ├── PermanentError            retrying will not help until the input changes
    │   ├── InvalidInput          bad manifests/spec: names file, object and field
    │   ├── MissingReference      a reference to an object that does not exist
    │   └── OwnershipConflict     a row exists that the reconciler does not own
    └── RetryableError(delay)     transient: registry unreachable, network hiccup
        └── DependencyPending     a referenced object exists but its row is not registered yet

Messages never carry secret values; callers only ever pass references. `ErrorClass` names what kind of failure a
probe or a credential request met (the probe classifies, credentials and status reuse it), and `one_line` keeps
every message that quotes a server's text to one bounded line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ErrorClass = Literal[
    "transport", "auth", "insufficient_scope", "downstream", "timeout", "protocol", "tls", "blocked", "internal"
]

MAX_MESSAGE_LENGTH = 300


def one_line(text: str) -> str:
    """Messages are one line and bounded, whatever a server put in its error text."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_MESSAGE_LENGTH else flat[: MAX_MESSAGE_LENGTH - 1] + "…"


class ReconcilerError(Exception):
    """Root of every error the engine raises on purpose."""


class PermanentError(ReconcilerError):
    """Fails the same way until the input changes; no retry storm."""

    reason = "ReconcileError"


class RetryableError(ReconcilerError):
    """Transient failure; try again after `delay` seconds."""

    def __init__(self, message: str, *, delay: float = 5.0) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    field: str | None = None

    def render(self) -> str:
        where = []
        if self.file:
            where.append(f"{self.file}:{self.line}" if self.line else self.file)
        if self.kind:
            obj = f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"
            where.append(obj)
        if self.field:
            where.append(f"field {self.field}")
        return f"{': '.join(where)}: {self.message}" if where else self.message


class InvalidInput(PermanentError):
    """One or more problems with manifests or specs; nothing was written."""

    reason = "InvalidSpec"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [problem.render() for problem in problems]
        super().__init__(lines[0] if len(lines) == 1 else f"{len(lines)} problems:\n  " + "\n  ".join(lines))


class MissingReference(InvalidInput):
    """A reference to an object that does not exist in the same namespace."""

    reason = "MissingReference"


class DependencyPending(RetryableError):
    """The object references one that exists (in the same folder or namespace) whose registry row has not
    been written yet: its own pass will write it, so try again shortly instead of failing for good."""

    reason = "DependencyPending"


class OwnershipConflict(PermanentError):
    """A desired row collides with a row the reconciler does not own."""

    reason = "Conflict"
