"""`status.oauth` of an `oauthAuthorizationCode` server: its members' tokens rolled up, and whether members are
expected to connect at all.

Pure; the report step calls `oauth_health` for every authorization-code server of a pass with the tallies the
observe step read in one grouped query (`Registry.tally_member_tokens`), and the CLI's `get` calls it with the
tallies read when it lists, so the `OAuth` column of `get -o wide` and of `kubectl get -o wide` reads the same.
Only counts go in, so a status changes when a count does and a pass that finds the same counts writes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from reconciler.api.server import OAuthHealth
from reconciler.registry.records import ConnectionRecord, MemberTokenTally, ServerRecord

__all__ = [
    "EXPIRY_HORIZON",
    "MEMBER_AUTHORIZED",
    "NOT_CONNECTED",
    "counts_members",
    "expects_members",
    "horizon",
    "oauth_health",
    "summary",
]

EXPIRY_HORIZON = dt.timedelta(hours=24)
"""Tokens lapsing within this are counted as expiring."""
MEMBER_AUTHORIZED = "oauthAuthorizationCode"
PER_MEMBER = "perMember"
NOT_CONNECTED = "not connected"


def horizon(now: dt.datetime) -> dt.datetime:
    """The moment up to which a token counts as expiring, for a tally taken at `now`."""
    return now + EXPIRY_HORIZON


def expects_members(server: ServerRecord, connections: Iterable[ConnectionRecord]) -> bool:
    """Whether members must each connect their own account for the server to be of use: an enabled
    authorization-code server with no connection of its own, or with an active `perMember` (organization-level)
    connection. A server reached only through shared connections expects nobody."""
    if server.auth_type != MEMBER_AUTHORIZED or not server.enabled:
        return False
    own = [c for c in connections if c.tenant == server.tenant and c.server == server.name]
    return not own or any(c.credential_mode == PER_MEMBER and c.active for c in own)


def counts_members(record: object) -> bool:
    """A connection each member connects their own account through: its `status.connectedMembers` counts who did
    (an inactive one too, so its count does not go stale while it is off)."""
    return isinstance(record, ConnectionRecord) and record.credential_mode == PER_MEMBER


def summary(tally: MemberTokenTally, *, members_expected: bool) -> str:
    """`3 connected, 1 expiring, 1 reauth` (zero counts left out), or `not connected`."""
    if tally.connected == 0:
        return NOT_CONNECTED if members_expected else "0 connected"
    parts = [f"{tally.connected} connected"]
    if tally.expiring:
        parts.append(f"{tally.expiring} expiring")
    if tally.needs_reauthorization:
        parts.append(f"{tally.needs_reauthorization} reauth")
    return ", ".join(parts)


def oauth_health(tally: MemberTokenTally | None, *, members_expected: bool) -> OAuthHealth:
    """The `oauth` section from one server's tally (None: no token stored)."""
    counted = tally or MemberTokenTally()
    return OAuthHealth(
        connected=counted.connected,
        expiring_within24h=counted.expiring,
        needs_reauthorization=counted.needs_reauthorization,
        without_refresh_token=counted.without_refresh_token,
        members_expected=members_expected,
        summary=summary(counted, members_expected=members_expected),
    )
