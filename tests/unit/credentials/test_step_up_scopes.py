"""`step_up_scopes` (SEP-835): the scopes a client re-authorizes with after an `insufficient_scope` refusal."""

from __future__ import annotations

import pytest

from reconciler.credentials import step_up_scopes


@pytest.mark.parametrize(
    ("configured", "challenged", "expected"),
    [
        ((), (), ()),
        (("mcp:tools",), (), ("mcp:tools",)),
        ((), ("files:write",), ("files:write",)),
        (("mcp:tools",), ("mcp:tools", "files:write"), ("mcp:tools", "files:write")),
        (("b", "a"), ("c", "a", "d"), ("b", "a", "c", "d")),
        (("a", "a"), ("b", "b"), ("a", "b")),
        (("a", ""), ("  ", "b"), ("a", "b")),
        (["read"], iter(["write"]), ("read", "write")),
    ],
    ids=["nothing", "configured-only", "challenged-only", "overlap", "order", "duplicates", "blanks", "iterables"],
)
def test_the_union_keeps_configured_scopes_first_in_their_order(
    configured: tuple[str, ...], challenged: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert step_up_scopes(configured, challenged) == expected


@pytest.mark.parametrize("bad", ["a b", " a", "a\t"])
def test_a_scope_with_whitespace_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="contains whitespace; scopes are space-separated tokens"):
        step_up_scopes(("mcp:tools",), (bad,))
