"""Rotation decisions, table-driven: (previous, new, last verified, failures, time) → what to do. Pure."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from reconciler.credentials import RotationAction, RotationPolicy, plan_rotation, verdict
from reconciler.probe import ProbeResult

NOW = dt.datetime(2025, 11, 22, 12, 0, tzinfo=dt.UTC)
OLD, NEW = "hmac-sha256:old", "hmac-sha256:new"
POLICY = RotationPolicy(initial_backoff=dt.timedelta(seconds=30), factor=2, max_backoff=dt.timedelta(minutes=5))
A = RotationAction


@pytest.mark.parametrize(
    ("previous", "new", "verified", "failures", "failed_ago", "action"),
    [
        (OLD, OLD, OLD, 0, None, A.UNCHANGED),
        (OLD, NEW, OLD, 0, None, A.VERIFY),
        (OLD, NEW, NEW, 0, None, A.APPLY),
        (None, NEW, None, 0, None, A.APPLY),  # a first credential has nothing to fall back to
        (OLD, None, OLD, 0, None, A.KEEP_LAST_GOOD),  # the Secret was deleted
        (OLD, NEW, OLD, 1, 10, A.RETRY_AFTER),  # 30 s backoff, 10 s passed
        (OLD, NEW, OLD, 1, 31, A.VERIFY),
        (OLD, NEW, OLD, 3, 100, A.RETRY_AFTER),  # 120 s backoff
        (OLD, NEW, OLD, 3, 121, A.VERIFY),
        (OLD, NEW, OLD, 7, 299, A.RETRY_AFTER),  # capped at 5 min
        (OLD, NEW, OLD, 7, 301, A.VERIFY),
        (OLD, NEW, OLD, 8, 10_000, A.KEEP_LAST_GOOD),  # max attempts
        (OLD, NEW, NEW, 3, 1, A.APPLY),  # verified after all: apply at once
    ],
)
def test_decisions(
    previous: str | None,
    new: str | None,
    verified: str | None,
    failures: int,
    failed_ago: int | None,
    action: RotationAction,
) -> None:
    decision = plan_rotation(
        previous_fingerprint=previous,
        new_fingerprint=new,
        last_verified_fingerprint=verified,
        failures=failures,
        now=NOW,
        last_failure_at=NOW - dt.timedelta(seconds=failed_ago) if failed_ago is not None else None,
        policy=POLICY,
    )
    assert decision.action is action, decision.reason
    assert decision.rotation_failed == (action in (A.KEEP_LAST_GOOD, A.RETRY_AFTER))
    if action is A.RETRY_AFTER:
        assert decision.retry_after is not None and decision.retry_after > dt.timedelta(0)
    else:
        assert decision.retry_after is None


def test_backoff_grows_and_is_capped() -> None:
    assert [POLICY.backoff(n).total_seconds() for n in range(6)] == [0, 30, 60, 120, 240, 300]


def _result(ok: bool, error_class: str | None) -> ProbeResult:
    return ProbeResult(
        ok=ok,
        error_class=error_class,
        message="",
        hint=None,
        latency_ms=1,
        at=NOW,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("ok", "error_class", "expected"),
    [
        (True, None, "verified"),
        (False, "downstream", "verified"),
        (False, "auth", "rejected"),
        (False, "insufficient_scope", "rejected"),
        (False, "transport", "inconclusive"),
        (False, "timeout", "inconclusive"),
        (False, "tls", "inconclusive"),
        (False, "blocked", "inconclusive"),
        (False, "protocol", "inconclusive"),
    ],
)
def test_verdicts(ok: bool, error_class: str | None, expected: str) -> None:
    assert verdict(_result(ok, error_class)) == expected


def test_decision_is_a_value() -> None:
    decision = plan_rotation(
        previous_fingerprint=OLD, new_fingerprint=NEW, last_verified_fingerprint=OLD, failures=0, now=NOW
    )
    assert dataclasses.replace(decision) == decision
