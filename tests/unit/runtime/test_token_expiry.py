"""Members' tokens past their expiry, decided: (token expiry, refresh token, credential path, now) → state.

Pure, like `test_deciding`: the decision gets `now` injected, so the same rows decide differently a second
apart. A token that cannot be refreshed is `needs_reauthorization` (the member reconnects), never `ready`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from reconciler.registry.lookups import BoundServerRow, ResolutionInputs
from reconciler.registry.records import UserTokenRecord
from reconciler.runtime.deciding import ServerDecision, decide
from reconciler.runtime.resolution import ServerState
from tests.unit.runtime.test_deciding import (
    ALICE,
    NOW,
    PLATFORM,
    TENANT,
    USER,
    Case,
    conn,
    decide_one,
    member,
    org,
    server,
    token,
)

CODE_SERVER = server(auth_type="oauthAuthorizationCode")
SECOND = dt.timedelta(seconds=1)
REAUTH = ServerState.NEEDS_REAUTHORIZATION


def expiring(record: UserTokenRecord, at: dt.datetime | None, *, refreshable: bool = False) -> UserTokenRecord:
    reference = "local:acme/member-x#oauth-refresh-token" if refreshable else None
    return dataclasses.replace(record, expires_at=at, refresh_token_ref=reference)


PER_MEMBER = (conn("crm-members", mode="perMember"),)
THROUGH_CONNECTION = {"connections": PER_MEMBER, "grants": (org(on_connection="crm-members"),)}

CASES: dict[str, tuple[dict[str, object], UserTokenRecord, ServerState]] = {
    # the member's own token for the server (no connection)
    "own token, no expiry": ({}, expiring(token(), None), ServerState.READY),
    "own token, valid a second longer": ({}, expiring(token(), NOW + SECOND), ServerState.READY),
    "own token, expires this instant": ({}, expiring(token(), NOW), REAUTH),
    "own token, expired in 2020": ({}, expiring(token(), dt.datetime(2020, 1, 1, tzinfo=dt.UTC)), REAUTH),
    "own token, expired, refreshable": ({}, expiring(token(), NOW - SECOND, refreshable=True), ServerState.BLOCKED),
    # a per-member connection's token
    "per-member, valid": (THROUGH_CONNECTION, expiring(token("crm-members"), NOW + SECOND), ServerState.READY),
    "per-member, expired": (THROUGH_CONNECTION, expiring(token("crm-members"), NOW - SECOND), REAUTH),
    "per-member, expired, refreshable": (
        THROUGH_CONNECTION,
        expiring(token("crm-members"), NOW - SECOND, refreshable=True),
        ServerState.BLOCKED,
    ),
}


@pytest.mark.parametrize(("fields", "record", "state"), CASES.values(), ids=CASES.keys())
def test_expiry_decides_the_state(fields: dict[str, object], record: UserTokenRecord, state: ServerState) -> None:
    decision = decide_one(Case(server=CODE_SERVER, tokens=(record,), state=state, **fields))  # type: ignore[arg-type]

    assert decision.state is state
    if state is not ServerState.READY:
        assert decision.headers == (), "an expired token is never sent"
        assert decision.connection == ("crm-members" if fields else None)
        assert decision.scope is (PLATFORM if fields else USER)


def test_needs_reauthorization_says_why_and_tells_the_member_to_reconnect() -> None:
    expired = expiring(token(), dt.datetime(2020, 1, 1, tzinfo=dt.UTC))

    decision = decide_one(Case(server=CODE_SERVER, tokens=(expired,)))

    assert decision.state is REAUTH
    assert decision.reason is not None
    assert "expired at 2020-01-01T00:00:00+00:00" in decision.reason
    assert "cannot be refreshed" in decision.reason
    assert decision.action is not None and decision.action.startswith("reconnect your crm account")
    assert decision.explain[-1] == "state: needs_reauthorization"
    assert decision.tools == ("read", "write"), "the member sees what reconnecting gets them"
    assert str(REAUTH) == "needs_reauthorization" != str(ServerState.NEEDS_CONNECTION)


def test_the_same_rows_decide_by_the_injected_now() -> None:
    expires = NOW + dt.timedelta(hours=1)
    record = expiring(token(), expires)

    assert _decide_at(expires - SECOND, record).state is ServerState.READY
    assert _decide_at(expires + SECOND, record).state is REAUTH


def test_an_expired_per_member_token_loses_to_a_usable_platform_connection() -> None:
    """Platform connections are tried usable-first: an expired member token is not usable."""
    shared = conn("crm-shared")
    members = conn("crm-members", mode="perMember")
    expired = expiring(token("crm-members"), NOW - SECOND)

    decision = decide_one(Case(connections=(members, shared), grants=(org(), member()), tokens=(expired,)))

    assert decision.state is ServerState.READY
    assert decision.connection == "crm-shared"


def _decide_at(now: dt.datetime, record: UserTokenRecord) -> ServerDecision:
    row = BoundServerRow(server=CODE_SERVER, binding="b", snapshot_hash=None, tool_names=())
    inputs = ResolutionInputs(tenant=TENANT, bound=(row,), grants=(org(),), tokens=(record,), bindings=("b",))
    (decision,) = decide(inputs, caller=ALICE, template="t", namespace_tools=False, now=now).servers
    return decision
