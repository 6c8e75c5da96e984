"""Parsing `WWW-Authenticate` challenges (RFC 9110 §11.6.1, RFC 6750 §3): pure, no I/O.

`classification.py` reads a 401/403 answer's header with `parse_challenges` to tell an `insufficient_scope`
refusal (SEP-835 step-up: the server names the scopes it wants) from other auth failures, and to word the
message. The grammar allows several challenges in one header, each either a `token68` or comma-separated
`name=value` parameters whose value is a token or a quoted string with backslash escapes, so a split on commas
or a regex misreads `scope="a, b"` or a second challenge's parameters. Challenges never carry the client's token,
so what is parsed here is safe to show.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["AuthChallenge", "MalformedChallenge", "challenged_scopes", "parse_challenges"]

_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_TOKEN68 = frozenset("-._~+/" + string.ascii_letters + string.digits)
_WHITESPACE = " \t"
INSUFFICIENT_SCOPE = "insufficient_scope"


class MalformedChallenge(ValueError):
    """The header does not follow the challenge grammar; the message says where."""


@dataclass(frozen=True)
class AuthChallenge:
    """One challenge: its scheme as sent, and its parameters (names lower-cased, as they compare) or token68."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)
    token68: str | None = None

    def is_scheme(self, name: str) -> bool:
        """Schemes compare case-insensitively (`Bearer`, `bearer`)."""
        return self.scheme.lower() == name.lower()

    def param(self, name: str) -> str | None:
        return self.params.get(name.lower())


def parse_challenges(header: str) -> tuple[AuthChallenge, ...]:
    """Every challenge in a `WWW-Authenticate` value, in order; raises `MalformedChallenge` on bad syntax."""
    return _Scanner(header).challenges()


def challenged_scopes(header: str | None) -> tuple[str, ...] | None:
    """The scopes a Bearer `insufficient_scope` challenge names (possibly none); None when the header is not one.

    A malformed header is not an `insufficient_scope` challenge: the caller falls back to a plain auth failure.
    """
    if not header:
        return None
    try:
        challenges = parse_challenges(header)
    except MalformedChallenge:
        return None
    for challenge in challenges:
        if challenge.is_scheme("Bearer") and challenge.param("error") == INSUFFICIENT_SCOPE:
            return tuple(dict.fromkeys((challenge.param("scope") or "").split()))
    return None


class _Scanner:
    """A cursor over the header. `#rule` lists allow empty elements, so stray commas are skipped."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def challenges(self) -> tuple[AuthChallenge, ...]:
        found: list[AuthChallenge] = []
        self._skip_separators()
        while not self._done():
            found.append(self._challenge())
            self._skip_separators()
        return tuple(found)

    def _challenge(self) -> AuthChallenge:
        scheme = self._token("an auth scheme")
        before = self.at
        self._skip(_WHITESPACE)
        if self._done() or self._peek() == ",":
            return AuthChallenge(scheme)
        if self.at == before:
            raise self._error("a space after the auth scheme")
        if not self._param_ahead():
            token68 = self._token68()
            self._skip(_WHITESPACE)
            if not self._done() and self._peek() != ",":
                raise self._error("',' or the end after a token68")
            return AuthChallenge(scheme, token68=token68)
        params: dict[str, str] = {}
        while True:
            name, value = self._param()
            if name in params:
                raise MalformedChallenge(f"parameter {name!r} appears twice in the {scheme} challenge")
            params[name] = value
            self._skip(_WHITESPACE)
            if self._done():
                break
            if self._peek() != ",":
                raise self._error("',' between parameters")
            mark = self.at
            self._skip_separators()
            if self._done() or not self._param_ahead():
                self.at = mark  # the next challenge starts here
                break
        return AuthChallenge(scheme, params=params)

    def _param_ahead(self) -> bool:
        """Whether `name BWS = BWS value` starts here (otherwise: a token68 or the next challenge's scheme)."""
        mark = self.at
        try:
            self._token("")
            self._skip(_WHITESPACE)
            if self._done() or self._peek() != "=":
                return False
            self.at += 1
            self._skip(_WHITESPACE)
            return not self._done() and (self._peek() == '"' or self._peek() in _TCHAR)
        except MalformedChallenge:
            return False
        finally:
            self.at = mark

    def _param(self) -> tuple[str, str]:
        name = self._token("a parameter name").lower()
        self._skip(_WHITESPACE)
        self.at += 1  # the '=' `_param_ahead` saw
        self._skip(_WHITESPACE)
        value = self._quoted() if self._peek() == '"' else self._token(f"a value for {name!r}")
        return name, value

    def _quoted(self) -> str:
        start = self.at
        self.at += 1
        chars: list[str] = []
        while not self._done():
            char = self.text[self.at]
            if char == '"':
                self.at += 1
                return "".join(chars)
            if char == "\\":
                self.at += 1
                if self._done():
                    break
                char = self.text[self.at]
            chars.append(char)
            self.at += 1
        raise MalformedChallenge(f"quoted string opened at position {start} is not closed")

    def _token(self, what: str) -> str:
        start = self.at
        while not self._done() and self.text[self.at] in _TCHAR:
            self.at += 1
        if self.at == start:
            raise self._error(what)
        return self.text[start : self.at]

    def _token68(self) -> str:
        start = self.at
        while not self._done() and self.text[self.at] in _TOKEN68:
            self.at += 1
        if self.at == start:
            raise self._error("a token68 or parameters")
        while not self._done() and self.text[self.at] == "=":
            self.at += 1
        return self.text[start : self.at]

    def _skip(self, chars: str) -> None:
        while not self._done() and self.text[self.at] in chars:
            self.at += 1

    def _skip_separators(self) -> None:
        self._skip(_WHITESPACE + ",")

    def _peek(self) -> str:
        return self.text[self.at]

    def _done(self) -> bool:
        return self.at >= len(self.text)

    def _error(self, expected: str) -> MalformedChallenge:
        found = repr(self.text[self.at]) if not self._done() else "the end"
        return MalformedChallenge(f"expected {expected} at position {self.at}, found {found}")
