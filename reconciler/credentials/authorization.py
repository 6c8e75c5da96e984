"""What a runtime needs to send a member through the authorization-code flow (PKCE, S256), built by the reconciler.

The reconciler cannot log in for a human. For `oauthAuthorizationCode` servers it registers the client
(`registration.py`) and publishes `authorization_url_template(...)` in status: the authorize endpoint with
`response_type=code`, the client id, `code_challenge_method=S256`, scope and resource filled in, and
`{redirect_uri}`, `{state}` and `{code_challenge}` left as placeholders (RFC 6570 style) for the runtime to fill
per login. `fill_authorization_url` and `new_pkce` are the runtime's half (used by tests and the demo).
Per-member connections: the engine counts the members' own tokens (`engine/authorizing.connected_members`),
which the reconciler never touches.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
from collections.abc import Sequence
from urllib.parse import quote, urlencode, urlsplit

REDIRECT_URI_PLACEHOLDER = "{redirect_uri}"
STATE_PLACEHOLDER = "{state}"
CODE_CHALLENGE_PLACEHOLDER = "{code_challenge}"


def authorization_url_template(
    *,
    auth_url: str,
    client_id: str,
    scopes: Sequence[str] = (),
    resource: str | None = None,
) -> str:
    """The authorize URL a runtime opens for a member, with per-login values as placeholders. Pure."""
    params: list[tuple[str, str]] = [("response_type", "code"), ("client_id", client_id)]
    if scopes:
        params.append(("scope", " ".join(scopes)))
    if resource:
        params.append(("resource", resource))
    params.append(("code_challenge_method", "S256"))
    fixed = urlencode(params, quote_via=quote)
    placeholders = "&".join(
        [
            f"redirect_uri={REDIRECT_URI_PLACEHOLDER}",
            f"state={STATE_PLACEHOLDER}",
            f"code_challenge={CODE_CHALLENGE_PLACEHOLDER}",
        ]
    )
    separator = "&" if urlsplit(auth_url).query else "?"
    return f"{auth_url}{separator}{fixed}&{placeholders}"


def fill_authorization_url(template: str, *, redirect_uri: str, state: str, code_challenge: str) -> str:
    """The runtime's half: one login's URL from the template (values percent-encoded)."""
    return (
        template.replace(REDIRECT_URI_PLACEHOLDER, quote(redirect_uri, safe=""))
        .replace(STATE_PLACEHOLDER, quote(state, safe=""))
        .replace(CODE_CHALLENGE_PLACEHOLDER, quote(code_challenge, safe=""))
    )


VERIFIER_ALPHABET = string.ascii_letters + string.digits + "-._~"
"""RFC 7636's unreserved characters; a verifier of 128 of them is the longest the RFC allows."""


def new_pkce() -> tuple[str, str]:
    """A fresh (code_verifier, S256 code_challenge) pair (RFC 7636 §4.1-4.2), as the MCP SDK makes them."""
    verifier = "".join(secrets.choice(VERIFIER_ALPHABET) for _ in range(128))
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge
