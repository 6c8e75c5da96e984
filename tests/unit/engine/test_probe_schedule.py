"""The probe interval: `spec.discovery.interval` as the floor, stretched (never shortened) by the server's `ttlMs`."""

from __future__ import annotations

import datetime as dt

import pytest

from reconciler.engine.probing import MAX_TTL_SECONDS, probe_interval
from reconciler.registry.records import ProbeStateRecord

AT = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
HOUR = 3600.0


def state(ttl_ms: int | None) -> ProbeStateRecord:
    return ProbeStateRecord(tenant="acme", server="s", probed_at=AT, list_ttl_ms=ttl_ms)


@pytest.mark.parametrize(
    ("interval", "recorded", "expected"),
    [
        (HOUR, None, HOUR),  # no probe state yet
        (HOUR, state(None), HOUR),  # a pre-2026 server, or a failed probe: no hint
        (HOUR, state(0), HOUR),  # "immediately stale" does not mean "probe on every resync"
        (HOUR, state(10 * 60 * 1000), HOUR),  # shorter than the interval: the interval stands
        (600.0, state(2 * 3600 * 1000), 2 * HOUR),  # longer: the server vouches for its list that long
        (HOUR, state(365 * 24 * 3600 * 1000), MAX_TTL_SECONDS),  # capped: health is still checked daily
        (2 * MAX_TTL_SECONDS, state(3600 * 1000), 2 * MAX_TTL_SECONDS),  # the cap never cuts the interval
    ],
)
def test_probe_interval(interval: float, recorded: ProbeStateRecord | None, expected: float) -> None:
    assert probe_interval(interval, recorded) == expected
