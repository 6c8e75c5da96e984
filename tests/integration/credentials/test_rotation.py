"""Rotation in place, end to end: a changed Secret is verified against the live server with the new value before
the row changes; a rejected value keeps the last good one (with backoff); transport failures prove nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt

from reconciler.credentials import (
    RotationAction,
    fingerprint,
    plan_rotation,
    verdict,
)
from reconciler.probe import ProbeResult, verify_credential
from tests.fixtures.authorization_server import OAuthServers
from tests.integration.credentials.support import LOCAL, run, target

KEY = b"k" * 32
OLD, NEW = "tok-Rotation-Old-1a", "tok-Rotation-New-2b"


def verify(url: str, token: str) -> ProbeResult:
    probe_target = target(url, {"Authorization": f"Bearer {token}"})
    return run(lambda http: verify_credential(probe_target, settings=LOCAL, http=http))


def test_verification_verdicts(oauth_servers: OAuthServers) -> None:
    oauth_servers.echo.required = {"Authorization": f"Bearer {NEW}"}
    accepted = verify(oauth_servers.echo.url, NEW)
    assert verdict(accepted) == "verified" and accepted.tools is not None  # the pass's probe, tools included
    assert verdict(verify(oauth_servers.echo.url, OLD)) == "rejected"
    refused = verify("http://127.0.0.1:9/mcp", NEW)
    assert refused.error_class == "transport" and verdict(refused) == "inconclusive"


def test_listing_is_forced_so_an_open_discovery_cannot_pass_for_verification(oauth_servers: OAuthServers) -> None:
    oauth_servers.echo.required = {"Authorization": f"Bearer {NEW}"}
    probe_target = dataclasses.replace(
        target(oauth_servers.echo.url, {"Authorization": f"Bearer {OLD}"}), list_tools=False
    )
    result = run(lambda http: verify_credential(probe_target, settings=LOCAL, http=http))
    assert verdict(result) == "rejected"


@dataclasses.dataclass
class Tracked:
    """What the engine keeps per credential between passes (status / probe state)."""

    row: str
    verified: str
    failures: int = 0
    failed_at: dt.datetime | None = None


def test_a_failing_new_value_keeps_the_last_good_one_then_applies_once_the_server_takes_it(
    oauth_servers: OAuthServers,
) -> None:
    echo = oauth_servers.echo
    echo.required = {"Authorization": f"Bearer {OLD}"}
    old_print, new_print = fingerprint(KEY, OLD), fingerprint(KEY, NEW)
    start = dt.datetime.now(dt.UTC)
    tracked = Tracked(row=old_print, verified=old_print)
    probes = 0

    def step(now: dt.datetime) -> RotationAction:
        nonlocal probes
        decision = plan_rotation(
            previous_fingerprint=tracked.row,
            new_fingerprint=new_print,
            last_verified_fingerprint=tracked.verified,
            failures=tracked.failures,
            now=now,
            last_failure_at=tracked.failed_at,
        )
        if decision.action is RotationAction.VERIFY:
            probes += 1
            outcome = verdict(verify(echo.url, NEW))
            if outcome == "verified":
                tracked.verified = new_print
            elif outcome == "rejected":
                tracked.failures += 1
                tracked.failed_at = now
        elif decision.action is RotationAction.APPLY:
            tracked.row = new_print  # the in-place update: same row, new fingerprint
        return decision.action

    assert step(start) is RotationAction.VERIFY  # the upstream has not rotated yet: rejected
    assert tracked.failures == 1 and tracked.row == old_print
    assert step(start + dt.timedelta(seconds=5)) is RotationAction.RETRY_AFTER  # backoff, no probe
    assert probes == 1

    echo.required = {"Authorization": f"Bearer {NEW}"}  # the upstream now accepts the new value
    assert step(start + dt.timedelta(seconds=31)) is RotationAction.VERIFY
    assert step(start + dt.timedelta(seconds=32)) is RotationAction.APPLY
    assert tracked.row == new_print and probes == 2
    assert step(start + dt.timedelta(seconds=33)) is RotationAction.UNCHANGED
