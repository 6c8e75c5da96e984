"""The annotation rules users steer objects with: Go durations, clamped poll intervals, jitter, pause."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.operator.annotations import (
    PAUSED_ANNOTATION,
    POLL_INTERVAL_ANNOTATION,
    RECONCILE_REQUEST_ANNOTATION,
    is_paused,
    jittered,
    parse_go_duration,
    poll_interval,
    reconcile_request,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("1m30.5s", 90.5),
        ("0", 0.0),
        ("+10s", 10.0),
        ("100us", 0.0001),
        ("100µs", 0.0001),
        ("7ns", 7e-9),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "5 m", "1d", "-5s", "abc", "1h-5m", "s"])
def test_invalid_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_go_duration(text)


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (None, 300.0),
        ("2m", 120.0),
        ("1s", 10.0),  # clamped to the minimum
        ("not-a-duration", 300.0),  # a bad annotation falls back rather than failing the object
        ("0", 10.0),
        ("99999999999999999999h", 8760 * 3600.0),  # every duration is bounded to a year
        ("9" * 400 + "h", 8760 * 3600.0),  # would be an infinite float
    ],
)
def test_poll_interval(annotation: str | None, expected: float) -> None:
    annotations = {} if annotation is None else {POLL_INTERVAL_ANNOTATION: annotation}
    assert poll_interval(annotations, default=300.0, minimum=10.0) == expected


@given(interval=st.floats(min_value=1, max_value=1e5), fraction=st.floats(min_value=0, max_value=0.9))
def test_jitter_stays_within_its_band(interval: float, fraction: float) -> None:
    value = jittered(interval, fraction=fraction, rng=random.Random(7))
    assert interval * (1 - fraction) - 1e-6 <= value <= interval * (1 + fraction) + 1e-6


def test_jitter_spreads_objects() -> None:
    rng = random.Random(1)
    values = {round(jittered(60.0, fraction=0.2, rng=rng), 3) for _ in range(50)}
    assert len(values) > 40


@pytest.mark.parametrize(("value", "paused"), [("true", True), ("True", True), (" true ", True), ("false", False)])
def test_pause(value: str, paused: bool) -> None:
    assert is_paused({PAUSED_ANNOTATION: value}) is paused
    assert is_paused({}) is False


def test_reconcile_request_token() -> None:
    assert reconcile_request({RECONCILE_REQUEST_ANNOTATION: "2026-01-01"}) == "2026-01-01"
    assert reconcile_request({RECONCILE_REQUEST_ANNOTATION: ""}) is None
    assert reconcile_request({}) is None
