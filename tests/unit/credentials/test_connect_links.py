"""Connect links, pure: what a link names, that only this registry's key makes one, and that it stops holding.

(key, target, expiry) → token → (key, token, now) → the target or `LinkRefused` with the member-facing reason.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.credentials.connect_links import (
    MAX_LINK_CHARS,
    LinkRefused,
    LinkTarget,
    connect_url,
    link_key,
    read_link,
    sign_link,
)

STORE_KEY = bytes(range(32))
KEY = link_key(STORE_KEY)
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
ALICE = LinkTarget(namespace="acme", server="crm", member="alice")


def signed(target: LinkTarget = ALICE, *, key: bytes = KEY, expires_at: dt.datetime = NOW + HOUR) -> str:
    return sign_link(key, target, expires_at=expires_at)


def with_payload(token: str, change: Callable[[dict[str, object]], None]) -> str:
    """The token with its payload edited and its MAC kept: what a member who edits a link can make."""
    version, payload, mac = token.split(".")
    document = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    change(document)
    edited = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    return f"{version}.{edited}.{mac}"


def test_a_link_names_its_login_and_holds_until_it_expires() -> None:
    token = signed()

    assert read_link(KEY, token, now=NOW) == ALICE
    assert read_link(KEY, token, now=NOW + HOUR - dt.timedelta(seconds=1)) == ALICE
    with pytest.raises(LinkRefused, match=r"expired at 2026-06-01T13:00:00\+00:00: ask for a fresh one"):
        read_link(KEY, token, now=NOW + HOUR)


def test_a_link_can_name_the_per_member_connection_the_login_goes_through() -> None:
    through = LinkTarget(namespace="acme", server="crm", member="alice", connection="crm-members")

    assert read_link(KEY, signed(through), now=NOW) == through
    with pytest.raises(LinkRefused, match="not issued by this reconciler or was altered"):
        read_link(KEY, with_payload(signed(through), lambda d: d.pop("con")), now=NOW)


def test_the_link_key_is_derived_and_never_the_store_key_itself() -> None:
    assert KEY != STORE_KEY and len(KEY) == 32
    assert link_key(STORE_KEY) == KEY, "every process holding the store key derives the same link key"
    assert link_key(bytes(32)) != KEY


def test_a_link_carries_names_only() -> None:
    url = connect_url("https://reconciler.example/", signed())

    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "reconciler.example", "/oauth/connect")
    (token,) = parse_qs(parts.query)["link"]
    assert read_link(KEY, token, now=NOW) == ALICE
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert set(payload) == {"ns", "srv", "mem", "exp"}, "no token, secret or key travels in a link"
    assert STORE_KEY.hex() not in url and base64.urlsafe_b64encode(KEY).decode().rstrip("=") not in url


FORGERIES: dict[str, Callable[[str], str]] = {
    "another member": lambda t: with_payload(t, lambda d: d.update(mem="mallory")),
    "another server": lambda t: with_payload(t, lambda d: d.update(srv="billing")),
    "another namespace": lambda t: with_payload(t, lambda d: d.update(ns="globex")),
    "a later expiry": lambda t: with_payload(t, lambda d: d.update(exp=int(d["exp"]) + 86400)),  # type: ignore[call-overload]
    "another key": lambda t: signed(key=link_key(bytes(32))),
    "the store key itself": lambda t: signed(key=STORE_KEY),
    "another version": lambda t: "v2." + t.removeprefix("v1."),
    "no mac": lambda t: t.rsplit(".", 1)[0],
    "a truncated mac": lambda t: t[:-2],
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_an_altered_or_foreign_link_is_refused(forge: Callable[[str], str]) -> None:
    with pytest.raises(LinkRefused, match="not issued by this reconciler or was altered"):
        read_link(KEY, forge(signed()), now=NOW)


@pytest.mark.parametrize(
    ("token", "message"),
    [("", "incomplete"), ("x" * (MAX_LINK_CHARS + 1), "longer than 2048"), ("garbage", "not issued by")],
    ids=["empty", "too-long", "garbage"],
)
def test_what_is_no_link_at_all_is_refused_clearly(token: str, message: str) -> None:
    with pytest.raises(LinkRefused, match=message):
        read_link(KEY, token, now=NOW)
