"""Connect links: a URL a member opens in a browser to start their own login on one authorization-code server.

`resolve` puts one on a server that waits on the member (`needs_connection`, `needs_reauthorization`) when a
public URL is configured; the connect service (`runtime/connect_service.py`, `GET /oauth/connect?link=…`) opens it
and redirects to a fresh authorization URL with its own state and PKCE pair. A login's URL cannot be handed out
ahead of time (its state and verifier are per login), so the link names the login instead:
`v1.<payload>.<mac>`, the payload being the namespace, server, member, the `perMember` connection the login goes
through (if any) and the expiry as compact JSON in urlsafe base64, the MAC an HMAC-SHA256 under a key derived (HKDF,
a label of its own) from the registry's store key, which the resolving process and `serve` both hold already. No
token or secret travels in a link: it is a signed, expiring request "start a login for this member on this server",
as unforgeable as the store key is secret.

Pure: signing and reading, with the clock passed in. Who calls: `runtime/resolving.py` signs, the connect service
reads.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reconciler.errors import PermanentError

CONNECT_PATH = "/oauth/connect"
LINK_SECONDS = 3600
"""How long a connect link holds: long enough for a member to read a message and click, short enough that a
forwarded or logged link soon stops starting logins."""
MAX_LINK_CHARS = 2048
LINK_VERSION = "v1"
_LINK_KEY_LABEL = b"mcp-reconciler connect link signing key v1"


class LinkRefused(PermanentError):
    """A connect link that was not signed with this registry's key, was altered, or has expired."""

    reason = "ConnectLinkRefused"


@dataclass(frozen=True)
class LinkTarget:
    """Whose login a link starts, and where: names only, never a value."""

    namespace: str
    server: str
    member: str
    connection: str | None = None
    """The member's own login through this `perMember` MCPConnection of the server; None: on the server itself."""


def link_key(store_key: bytes) -> bytes:
    """The links' HMAC key, derived from the store key under its own label (RFC 5869), so a link's MAC reveals
    nothing about the key that seals tokens and no other use of the store key can produce a valid link."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LINK_KEY_LABEL).derive(store_key)


def sign_link(key: bytes, target: LinkTarget, *, expires_at: dt.datetime) -> str:
    """The link token for `target`, valid until `expires_at` (whole seconds)."""
    payload: dict[str, str | int] = {
        "ns": target.namespace,
        "srv": target.server,
        "mem": target.member,
        "exp": int(expires_at.timestamp()),
    }
    if target.connection is not None:
        payload["con"] = target.connection
    body = f"{LINK_VERSION}.{_b64(json.dumps(payload, separators=(',', ':'), sort_keys=True).encode())}"
    return f"{body}.{_mac(key, body)}"


def connect_url(public_url: str, token: str) -> str:
    """`{public URL}/oauth/connect?link=<token>`: what a member opens."""
    return f"{public_url.rstrip('/')}{CONNECT_PATH}?link={quote(token, safe='')}"


def read_link(key: bytes, token: str, *, now: dt.datetime) -> LinkTarget:
    """The target of a link this registry's key signed and that holds at `now`; `LinkRefused` saying why not
    (the wording is shown to the member, and names neither the key nor anything secret)."""
    if not token:
        raise LinkRefused("this connect link is incomplete: open the whole link you were given")
    if len(token) > MAX_LINK_CHARS:
        raise LinkRefused(f"this connect link is longer than {MAX_LINK_CHARS} characters: it is not one we issued")
    body, _, mac = token.rpartition(".")
    version, _, payload = body.partition(".")
    if version != LINK_VERSION or not payload or not hmac.compare_digest(mac, _mac(key, body)):
        raise LinkRefused(
            "this connect link was not issued by this reconciler or was altered: ask for a fresh one (resolve again)"
        )
    try:
        document = json.loads(_unb64(payload))
    except (ValueError, binascii.Error) as err:  # signed by us yet unreadable: a bug, worded all the same
        raise LinkRefused("this connect link cannot be read: ask for a fresh one (resolve again)") from err
    fields = {name: document.get(name) if isinstance(document, dict) else None for name in ("ns", "srv", "mem")}
    expiry = document.get("exp") if isinstance(document, dict) else None
    connection = document.get("con") if isinstance(document, dict) else None
    named = all(isinstance(value, str) and value for value in fields.values())
    if (
        not named
        or not isinstance(expiry, int)
        or not (connection is None or (isinstance(connection, str) and connection))
    ):
        raise LinkRefused("this connect link cannot be read: ask for a fresh one (resolve again)")
    expires_at = dt.datetime.fromtimestamp(expiry, dt.UTC)
    if now >= expires_at:
        raise LinkRefused(f"this connect link expired at {expires_at.isoformat()}: ask for a fresh one (resolve again)")
    return LinkTarget(
        namespace=str(fields["ns"]),
        server=str(fields["srv"]),
        member=str(fields["mem"]),
        connection=connection if isinstance(connection, str) else None,
    )


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
