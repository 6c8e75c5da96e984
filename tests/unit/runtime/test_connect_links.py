"""Which waiting servers a connect link can fix, decided: (server, connections, tokens, caller) → the member whose
own login makes the server ready and the perMember connection it goes through, or None when the fix is someone
else's. Pure, like `test_deciding`."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from reconciler.records import ORGANIZATION_MEMBER
from reconciler.registry.lookups import BoundServerRow, ResolutionInputs
from reconciler.registry.records import MemberHeaderRecord
from reconciler.runtime.deciding import Caller, decide
from reconciler.runtime.resolution import ServerState
from tests.unit.runtime.test_deciding import (
    ALICE,
    APPROVED,
    NOW,
    PLATFORM_TENANT,
    TENANT,
    Case,
    bearer_server,
    conn,
    decide_one,
    org,
    platform_org,
    platform_server,
    server,
    token,
)
from tests.unit.runtime.test_token_expiry import CODE_SERVER, PER_MEMBER, THROUGH_CONNECTION, expiring

N, REAUTH, R = ServerState.NEEDS_CONNECTION, ServerState.NEEDS_REAUTHORIZATION, ServerState.READY
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
EXPIRED_THROUGH = expiring(token("crm-members"), LONG_AGO)

WITH_VALUES = (dataclasses.replace(PER_MEMBER[0], member_headers=(MemberHeaderRecord("x-workspace", "workspace"),)),)
"""A perMember connection that also asks each member for a stored value: a login cannot supply it."""

CASES: dict[str, tuple[Case, str | None, str | None]] = {
    "code server, never connected": (Case(server=CODE_SERVER, state=N), "alice", None),
    "code server, expired beyond refresh": (
        Case(server=CODE_SERVER, tokens=(expiring(token(), LONG_AGO),), state=REAUTH),
        "alice",
        None,
    ),
    "code server, connected": (Case(server=CODE_SERVER, tokens=(expiring(token(), None),), state=R), None, None),
    "code server, no member given": (Case(server=CODE_SERVER, caller=Caller(agent="tutor"), state=N), None, None),
    "the organization's token expired: an administrator reconnects": (
        Case(server=CODE_SERVER, tokens=(expiring(token(user=ORGANIZATION_MEMBER), LONG_AGO),), state=REAUTH),
        None,
        None,
    ),
    "per-member connection, never connected": (
        Case(server=CODE_SERVER, state=N, **THROUGH_CONNECTION),  # type: ignore[arg-type]
        "alice",
        "crm-members",
    ),
    "per-member connection, expired beyond refresh": (
        Case(server=CODE_SERVER, tokens=(EXPIRED_THROUGH,), state=REAUTH, **THROUGH_CONNECTION),  # type: ignore[arg-type]
        "alice",
        "crm-members",
    ),
    "per-member connection asking for stored values": (
        Case(server=CODE_SERVER, connections=WITH_VALUES, grants=(org(on_connection="crm-members"),), state=N),
        None,
        None,
    ),
    "per-member connection of a bearer server: the member's token is no login": (
        Case(server=bearer_server(), state=N, **THROUGH_CONNECTION),  # type: ignore[arg-type]
        None,
        None,
    ),
    "a bearer server no connection reaches: an administrator's fix": (
        Case(server=bearer_server(), connections=(conn("bob-own", "user", "bob"),), state=N),
        None,
        None,
    ),
}  # fmt: skip


@pytest.mark.parametrize(("case", "member", "connection"), CASES.values(), ids=CASES.keys())
def test_the_member_whose_login_fixes_the_server(case: Case, member: str | None, connection: str | None) -> None:
    decision = decide_one(case)

    assert decision.state is case.state, decision.explain
    assert (decision.connect_member, decision.connect_connection) == (member, connection)


def test_the_platforms_featured_code_server_gets_no_link() -> None:
    """A login there would be kept under the platform tenant, where no decision for the member looks."""
    own = BoundServerRow(server=server(), binding="b", snapshot_hash=APPROVED)
    inputs = ResolutionInputs(tenant=TENANT, bound=(own,), grants=(org(),), bindings=("b",))
    featured = platform_server(auth_type="oauthAuthorizationCode", auth={})
    platform = ResolutionInputs(
        tenant=PLATFORM_TENANT,
        bound=(BoundServerRow(server=featured, snapshot_hash=APPROVED),),
        grants=(platform_org(),),
    )

    decisions = decide(inputs, caller=ALICE, template="t", namespace_tools=False, now=NOW, platform=platform)

    (offered,) = decisions.servers[1:]
    assert offered.state is N and offered.connect_member is None
