"""Which scopes to ask for when a server refuses a token for lack of scope (SEP-835 step-up authorization).

Pure. A server that answers `403` with `WWW-Authenticate: Bearer error="insufficient_scope", scope="…"` names the
scopes the request needs (the probe records them as `lastTest.challengedScopes`); a client re-authorizes with the
union of what it already asks for and what was challenged, so a step-up never loses a scope another tool needs.
The connect flow that re-authorizes calls `step_up_scopes`; nothing else does yet.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["step_up_scopes"]


def step_up_scopes(configured: Iterable[str], challenged: Iterable[str]) -> tuple[str, ...]:
    """The configured scopes, then each challenged scope not among them: an order-preserving union.

    Blank entries are dropped and duplicates kept once, so the result can be joined into a `scope` parameter.
    A scope with whitespace inside cannot be sent (RFC 6749 §3.3 separates scopes by spaces): `ValueError`.
    """
    union: dict[str, None] = {}
    for scope in (*configured, *challenged):
        if not scope.strip():
            continue
        if scope != scope.strip() or any(char.isspace() for char in scope):
            raise ValueError(f"scope {scope!r} contains whitespace; scopes are space-separated tokens (RFC 6749 §3.3)")
        union.setdefault(scope, None)
    return tuple(union)
