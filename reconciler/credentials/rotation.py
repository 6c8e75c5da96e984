"""Rotating credentials in place: decide what a changed Secret calls for, and read what verifying the new
credential against the live server said, before the registry row is updated. Pure.

The engine calls `plan_rotation` for every credential whose fingerprint it tracks (server auth, secret headers,
connection tokens). On `VERIFY` it builds the probe target with the NEW headers and has the probe verify it
(`reconciler.probe.verify_credential`), whose result is also the server's regular probe for this pass (tools,
discovery), so a rotation costs one probe per server; `verdict` then says whether to update the row (`APPLY`:
write the new fingerprint, no delete/re-register) or keep the last good credential and report `RotationFailed`.
A transport failure or timeout proves nothing about the credential and does not count as a failed attempt.

    previous == new                          → UNCHANGED
    new missing (Secret or key gone)         → KEEP_LAST_GOOD
    new == last verified                     → APPLY
    not yet tried / backoff elapsed          → VERIFY
    failed, backoff running                  → RETRY_AFTER (delay)
    failed max_attempts times                → KEEP_LAST_GOOD until the Secret changes again
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol


class RotationAction(StrEnum):
    UNCHANGED = "unchanged"
    VERIFY = "verify"
    APPLY = "apply"
    KEEP_LAST_GOOD = "keep-last-good"
    RETRY_AFTER = "retry-after"


@dataclass(frozen=True)
class RotationPolicy:
    """Backoff between verification attempts of one new credential: `initial * factor**(failures-1)`, capped."""

    initial_backoff: dt.timedelta = dt.timedelta(seconds=30)
    factor: float = 2.0
    max_backoff: dt.timedelta = dt.timedelta(minutes=30)
    max_attempts: int = 8

    def backoff(self, failures: int) -> dt.timedelta:
        if failures <= 0:
            return dt.timedelta(0)
        seconds = self.initial_backoff.total_seconds() * self.factor ** (failures - 1)
        return min(dt.timedelta(seconds=seconds), self.max_backoff)


@dataclass(frozen=True)
class RotationDecision:
    action: RotationAction
    reason: str
    retry_after: dt.timedelta | None = None
    """With RETRY_AFTER: how long until the next verification attempt."""

    @property
    def rotation_failed(self) -> bool:
        """Whether status should say `RotationFailed` (the last good credential is still in use)."""
        return self.action in (RotationAction.KEEP_LAST_GOOD, RotationAction.RETRY_AFTER)


def plan_rotation(
    *,
    previous_fingerprint: str | None,
    new_fingerprint: str | None,
    last_verified_fingerprint: str | None,
    failures: int,
    now: dt.datetime,
    last_failure_at: dt.datetime | None = None,
    policy: RotationPolicy = RotationPolicy(),
) -> RotationDecision:
    """What to do about one credential. Pure.

    `previous_fingerprint`: what the registry row holds; `new_fingerprint`: the Secret's value now (None: missing);
    `last_verified_fingerprint`: the last value the live server accepted; `failures`: failed verifications of
    `new_fingerprint` so far (the caller resets it when the fingerprint changes); `last_failure_at`: when the
    last one failed.
    """
    if new_fingerprint is None:
        return RotationDecision(
            RotationAction.KEEP_LAST_GOOD, "the Secret or its key is missing; the last good credential stays"
        )
    if new_fingerprint == previous_fingerprint:
        return RotationDecision(RotationAction.UNCHANGED, "the credential did not change")
    if previous_fingerprint is None and failures == 0:
        # A first credential has nothing to fall back to: it is applied, and the regular probe reports on it.
        return RotationDecision(RotationAction.APPLY, "first credential")
    if new_fingerprint == last_verified_fingerprint:
        return RotationDecision(RotationAction.APPLY, "the new credential was verified against the live server")
    if failures >= policy.max_attempts:
        return RotationDecision(
            RotationAction.KEEP_LAST_GOOD,
            f"the new credential failed verification {failures} times; keeping the last good one until the Secret "
            "changes again",
        )
    if failures > 0 and last_failure_at is not None:
        wait_until = last_failure_at + policy.backoff(failures)
        if now < wait_until:
            return RotationDecision(
                RotationAction.RETRY_AFTER,
                f"the new credential failed verification {failures} time(s); next attempt after backoff",
                retry_after=wait_until - now,
            )
    return RotationDecision(RotationAction.VERIFY, "the credential changed; verify it against the live server")


Verdict = Literal["verified", "rejected", "inconclusive"]


class ProbeOutcome(Protocol):
    """What `verdict` reads of a verification probe (the probe's `ProbeResult` has it)."""

    @property
    def ok(self) -> bool: ...

    @property
    def error_class(self) -> str | None: ...


def verdict(result: ProbeOutcome) -> Verdict:
    """What a verification probe says about the credential. Pure.

    `verified`: the server accepted it (the probe succeeded, or failed downstream of authentication);
    `rejected`: an auth-class failure (401/403, OAuth errors, a token short of a scope); `inconclusive`: the
    server could not be asked (transport, timeout, TLS, blocked, not MCP) - no evidence either way, so it is not a
    failed attempt.
    """
    if result.ok or result.error_class == "downstream":
        return "verified"
    if result.error_class in ("auth", "insufficient_scope"):
        return "rejected"
    return "inconclusive"
