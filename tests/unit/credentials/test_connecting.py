"""The pure half of a member's login: what a callback must prove before its code is exchanged, the member ids
it accepts, and the scopes a step-up asks for."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.credentials.authorization import authorization_url_template
from reconciler.credentials.connecting import (
    LoginFailed,
    begin_login,
    check_member_id,
    code_from_callback,
    metadata_url,
    with_step_up,
)
from reconciler.errors import PermanentError

ISSUER = "https://auth.example.com"
TEMPLATE = authorization_url_template(
    auth_url=f"{ISSUER}/authorize", client_id="c1", scopes=("mcp:tools",), resource="https://crm.example/mcp"
)
REDIRECT = "http://127.0.0.1:49152/oauth/callback"


def login(*, iss_required: bool = True):  # type: ignore[no-untyped-def]
    return begin_login(TEMPLATE, redirect_uri=REDIRECT, issuer=ISSUER, iss_required=iss_required)


def test_a_login_url_carries_a_fresh_state_and_s256_challenge() -> None:
    first, second = login(), login()
    query = parse_qs(urlsplit(first.authorization_url).query)
    assert query["state"] == [first.state] and query["redirect_uri"] == [REDIRECT]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["resource"] == ["https://crm.example/mcp"] and query["scope"] == ["mcp:tools"]
    assert first.state != second.state and first.code_verifier != second.code_verifier
    assert first.state not in repr(first) and first.code_verifier not in repr(first)


def test_the_callback_of_this_login_gives_its_code() -> None:
    pending = login()
    assert code_from_callback(pending, {"code": "abc", "state": pending.state, "iss": ISSUER + "/"}) == "abc"
    relaxed = login(iss_required=False)
    assert code_from_callback(relaxed, {"code": "abc", "state": relaxed.state}) == "abc"


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"code": "abc", "state": "another"}, "state"),
        ({"code": "abc", "state": "", "iss": ISSUER}, "state"),
        ({"code": "abc", "iss": "https://evil.example"}, "not https://auth.example.com"),
        ({"code": "abc"}, "no iss"),
        ({"error": "access_denied", "error_description": "the member said no", "iss": ISSUER}, "access_denied"),
        ({"iss": ISSUER}, "neither a code nor an error"),
    ],
    ids=["foreign-state", "empty-state", "mix-up", "iss-missing", "denied", "empty"],
)
def test_a_callback_that_does_not_answer_this_login_fails(params: dict[str, str], said: str) -> None:
    pending = login()
    given = {**params}
    if "state" not in given:
        given["state"] = pending.state
    with pytest.raises(LoginFailed, match=said):
        code_from_callback(pending, given)


def test_a_member_id_that_cannot_name_a_login_is_refused() -> None:
    assert check_member_id("alice@example.com") == "alice@example.com"
    for bad in ("a/b", "a#b", "", " alice", "x" * 201):
        with pytest.raises(PermanentError, match="member id"):
            check_member_id(bad)


def test_metadata_url_puts_the_well_known_path_before_the_issuer_path() -> None:
    assert metadata_url("https://a.example") == "https://a.example/.well-known/oauth-authorization-server"
    assert metadata_url("https://a.example/t/1/") == "https://a.example/.well-known/oauth-authorization-server/t/1"


def test_step_up_asks_for_the_configured_and_the_challenged_scopes() -> None:
    stepped = with_step_up(TEMPLATE, ["files:write", "mcp:tools"])
    assert parse_qs(urlsplit(stepped).query)["scope"] == ["mcp:tools files:write"]
    assert "{redirect_uri}" in stepped and "{state}" in stepped
    assert with_step_up(TEMPLATE, []) == TEMPLATE
    bare = authorization_url_template(auth_url=f"{ISSUER}/authorize", client_id="c1")
    assert parse_qs(urlsplit(with_step_up(bare, ["files:write"])).query)["scope"] == ["files:write"]
