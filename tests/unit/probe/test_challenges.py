"""The `WWW-Authenticate` parser (RFC 9110 §11.6.1, RFC 6750 §3), table-driven: quoted strings with commas and
escapes, several challenges in one header, token68, and the errors bad syntax gets."""

from __future__ import annotations

import pytest

from reconciler.probe.challenges import AuthChallenge, MalformedChallenge, challenged_scopes, parse_challenges
from reconciler.probe.discovery import Challenge


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer", (AuthChallenge("Bearer"),)),
        ('Bearer realm="mcp"', (AuthChallenge("Bearer", {"realm": "mcp"}),)),
        (
            'Bearer error="insufficient_scope", scope="files:read files:write"',
            (AuthChallenge("Bearer", {"error": "insufficient_scope", "scope": "files:read files:write"}),),
        ),
        ("Bearer error=invalid_token", (AuthChallenge("Bearer", {"error": "invalid_token"}),)),
        ('Bearer ERROR = "x" ,Scope="a"', (AuthChallenge("Bearer", {"error": "x", "scope": "a"}),)),
        ('Bearer error_description="a, b = c"', (AuthChallenge("Bearer", {"error_description": "a, b = c"}),)),
        (r'Bearer realm="say \"hi\" \\ bye"', (AuthChallenge("Bearer", {"realm": 'say "hi" \\ bye'}),)),
        ('Bearer scope=""', (AuthChallenge("Bearer", {"scope": ""}),)),
        ("Basic dXNlcjpwYXNz==", (AuthChallenge("Basic", token68="dXNlcjpwYXNz=="),)),
        (
            'Basic realm="x", Bearer error="insufficient_scope", scope="a b"',
            (
                AuthChallenge("Basic", {"realm": "x"}),
                AuthChallenge("Bearer", {"error": "insufficient_scope", "scope": "a b"}),
            ),
        ),
        (
            'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"',
            (
                AuthChallenge("Newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
                AuthChallenge("Basic", {"realm": "simple"}),
            ),
        ),
        ("Negotiate, Bearer", (AuthChallenge("Negotiate"), AuthChallenge("Bearer"))),
        ("Basic abc=, Bearer x=y", (AuthChallenge("Basic", token68="abc="), AuthChallenge("Bearer", {"x": "y"}))),
        (" , Bearer a=b ,, ", (AuthChallenge("Bearer", {"a": "b"}),)),
        ("", ()),
    ],
)
def test_challenges_are_parsed_by_the_grammar(header: str, expected: tuple[AuthChallenge, ...]) -> None:
    assert parse_challenges(header) == expected


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ('Bearer realm="open', "quoted string opened at position 13 is not closed"),
        ("Bearer a=b c", "expected ',' between parameters at position 11"),
        ("Bearer a=1, a=2", "parameter 'a' appears twice in the Bearer challenge"),
        ('="x"', "expected an auth scheme at position 0"),
        ("Basic abc def", "expected ',' or the end after a token68 at position 10"),
        ('Bearer"x"', "expected a space after the auth scheme at position 6"),
    ],
)
def test_bad_syntax_is_a_clear_error(header: str, said: str) -> None:
    with pytest.raises(MalformedChallenge, match="^" + said.replace("(", r"\(").replace(")", r"\)")):
        parse_challenges(header)


def test_names_compare_case_insensitively() -> None:
    (challenge,) = parse_challenges('bearer Resource_Metadata="http://127.0.0.1/.well-known/x"')
    assert challenge.is_scheme("Bearer") and challenge.param("RESOURCE_METADATA") == "http://127.0.0.1/.well-known/x"


@pytest.mark.parametrize(
    ("header", "scopes"),
    [
        ('Bearer error="insufficient_scope", scope="a b"', ("a", "b")),
        ('Bearer error="insufficient_scope", scope="  a   b a "', ("a", "b")),
        ('Bearer error="insufficient_scope"', ()),
        ('Basic realm="x", Bearer error="insufficient_scope", scope="files:write"', ("files:write",)),
        ('Bearer error="invalid_token", scope="a"', None),
        ('DPoP error="insufficient_scope", scope="a"', None),
        ('Bearer error="insufficient_scope", scope="a', None),
        ("", None),
        (None, None),
    ],
)
def test_challenged_scopes_come_only_from_a_bearer_insufficient_scope_challenge(
    header: str | None, scopes: tuple[str, ...] | None
) -> None:
    assert challenged_scopes(header) == scopes


@pytest.mark.parametrize(
    ("header", "name", "value"),
    [
        ('Bearer resource_metadata="http://x/.well-known/r", scope="a b"', "scope", "a b"),
        ('Basic realm="scope=wrong", Bearer scope="right"', "scope", "right"),
        ('Basic scope="basic-only"', "scope", "basic-only"),
        ('Bearer error="invalid_token", error_description="scope=\\"no\\""', "scope", None),
        ('Bearer resource_metadata=http://x/r, scope="unclosed', "resource_metadata", "http://x/r"),
        (None, "scope", None),
    ],
    ids=["bearer", "another-challenge-first", "no-bearer", "inside-a-quoted-string", "malformed-loose", "none"],
)
def test_discovery_reads_the_bearer_challenges_parameters(header: str | None, name: str, value: str | None) -> None:
    assert Challenge(status=401, www_authenticate=header).parameter(name) == value
