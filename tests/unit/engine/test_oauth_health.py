"""`status.oauth`: an authorization-code server's member tokens rolled up from one tally (pure), whether members
are expected to connect, and how the report keeps the section (Test Connection keeps the stored one)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from reconciler.api import MCPServerStatus
from reconciler.api.printing import PRINTER_COLUMNS, column_value
from reconciler.engine.planning import Verb
from reconciler.engine.statuses.oauth import EXPIRY_HORIZON, expects_members, horizon, oauth_health
from reconciler.engine.statuses.probes import ProbeSections
from reconciler.engine.statuses.reporting import reported_status
from reconciler.registry.records import ConnectionRecord, MemberTokenTally, ServerRecord
from tests.unit.engine.test_statuses import T0, inputs, server

AUTH_CODE = {"type": "oauthAuthorizationCode", "pkce": "public"}
CODE_SERVER = ServerRecord(tenant="acme", name="s", auth_type="oauthAuthorizationCode")


def shared(**fields: Any) -> ConnectionRecord:
    return ConnectionRecord(**({"tenant": "acme", "name": "c", "server": "s"} | fields))


@pytest.mark.parametrize(
    ("tally", "expected", "summary"),
    [
        (None, {"connected": 0, "membersExpected": True}, "not connected"),
        (MemberTokenTally(connected=3), {"connected": 3}, "3 connected"),
        (
            MemberTokenTally(connected=3, expiring=1, needs_reauthorization=1, without_refresh_token=2),
            {"connected": 3, "expiringWithin24h": 1, "needsReauthorization": 1, "withoutRefreshToken": 2},
            "3 connected, 1 expiring, 1 reauth",
        ),
    ],
)
def test_the_rollup_is_the_tally_with_a_compact_summary(
    tally: MemberTokenTally | None, expected: dict[str, int], summary: str
) -> None:
    health = oauth_health(tally, members_expected=True).model_dump(by_alias=True)

    assert health["summary"] == summary
    assert {key: health[key] for key in expected} == expected
    assert health["membersExpected"] is True


def test_nothing_connected_is_only_a_problem_when_members_are_expected() -> None:
    assert oauth_health(None, members_expected=True).summary == "not connected"
    assert oauth_health(None, members_expected=False).summary == "0 connected"


@pytest.mark.parametrize(
    ("server_record", "connections", "expected"),
    [
        (CODE_SERVER, [], True),
        (CODE_SERVER, [shared(credential_mode="perMember")], True),
        (CODE_SERVER, [shared(credential_mode="perMember", active=False)], False),
        (CODE_SERVER, [shared(secret_ref="acme/org-token#token")], False),
        (CODE_SERVER, [shared(server="other")], True),
        (CODE_SERVER, [shared(tenant="beta")], True),
        (ServerRecord(tenant="acme", name="s", auth_type="oauthAuthorizationCode", enabled=False), [], False),
        (ServerRecord(tenant="acme", name="s", auth_type="bearer"), [], False),
    ],
)
def test_members_are_expected_where_each_must_connect_their_own_account(
    server_record: ServerRecord, connections: list[ConnectionRecord], expected: bool
) -> None:
    assert expects_members(server_record, connections) is expected


def test_the_horizon_is_a_day_ahead() -> None:
    assert horizon(T0) == T0 + EXPIRY_HORIZON == T0 + dt.timedelta(hours=24)


def test_the_report_writes_the_rollup_and_the_column_prints_it() -> None:
    obj = server(auth=AUTH_CODE)
    health = oauth_health(MemberTokenTally(connected=2, needs_reauthorization=1), members_expected=True)

    status = reported_status(inputs(obj, Verb.NOOP), probe=ProbeSections(), oauth=health)

    assert status["oauth"] == {
        "connected": 2,
        "expiringWithin24h": 0,
        "needsReauthorization": 1,
        "withoutRefreshToken": 0,
        "membersExpected": True,
        "summary": "2 connected, 1 reauth",
    }
    assert MCPServerStatus.model_validate(status).oauth == health
    column = next(c for c in PRINTER_COLUMNS["MCPServer"] if c.name == "OAuth")
    assert column_value({"status": status}, column, now=T0) == "2 connected, 1 reauth"
    # The same counts again: the same document, so nothing is written.
    again = reported_status(inputs(obj, Verb.NOOP, previous=status), probe=ProbeSections(), oauth=health)
    assert again == status


def test_test_connection_keeps_the_stored_rollup_and_other_servers_have_none() -> None:
    obj = server(auth=AUTH_CODE)
    stored = {"oauth": {"connected": 0, "membersExpected": True, "summary": "not connected"}}

    status = reported_status(inputs(obj, Verb.NOOP, previous=stored), probe=ProbeSections())

    assert status["oauth"]["summary"] == "not connected"
    assert "oauth" not in reported_status(inputs(server(), Verb.NOOP, previous=stored), probe=ProbeSections())
