"""The annotations and labels users put on objects to steer the operator, and the pure rules that read them.

Called by the operator's reconcile loop (pause, forced passes, per-object poll interval) and by the kopf
settings builder (finalizer name, Secret label selector). Every name lives under the API group, as the
GitOps conventions ask. No I/O.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping

from reconciler.api import API_GROUP
from reconciler.api.durations import MAX_DURATION_SECONDS

FINALIZER = f"{API_GROUP}/finalizer"
PAUSED_ANNOTATION = f"{API_GROUP}/paused"
POLL_INTERVAL_ANNOTATION = f"{API_GROUP}/poll-interval"
RECONCILE_REQUEST_ANNOTATION = f"{API_GROUP}/reconcile-requested-at"
CREDENTIAL_LABEL = f"{API_GROUP}/credential"
"""Secrets carrying this label (any value) are watched, so a change reconciles the objects using them at once."""
KOPF_PREFIX = f"kopf.{API_GROUP}"
"""kopf's bookkeeping annotations live under a sub-domain of our group, not the group itself: kopf leaves
every annotation under its storage prefix out of change detection, and users' own annotations
(`mcp.reconciler.dev/paused`, `.../reconcile-requested-at`, `.../poll-interval`) must trigger a pass."""

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_DURATION = re.compile(r"^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration (`90s`, `1h30m`, `1.5h`, `250ms`); ValueError for anything else.

    Go's syntax, not Kubernetes' subset, because Crossplane-style poll-interval annotations use `time.ParseDuration`.
    """
    stripped = text.strip()
    if stripped in ("0", "+0"):
        return 0.0
    if stripped.startswith("+"):
        stripped = stripped[1:]
    if not _GO_DURATION.fullmatch(stripped):
        raise ValueError(f"invalid duration {text!r}: use a Go duration such as 30s, 5m or 1h30m")
    return sum(float(number) * _GO_UNITS[unit] for number, unit in _GO_PART.findall(stripped))


def is_paused(annotations: Mapping[str, str]) -> bool:
    return annotations.get(PAUSED_ANNOTATION, "").strip().lower() == "true"


def reconcile_request(annotations: Mapping[str, str]) -> str | None:
    """The token of the last forced-reconcile request, echoed to `status.lastHandledReconcileAt` once handled."""
    token = annotations.get(RECONCILE_REQUEST_ANNOTATION)
    return token if token else None


def poll_interval(annotations: Mapping[str, str], *, default: float, minimum: float) -> float:
    """The object's resync interval: its annotation when valid, else `default`; never below `minimum`, never
    above a year (`MAX_DURATION_SECONDS`, the bound on every duration; a long run of digits would be infinite).

    An unparsable annotation falls back to the default instead of failing the object: the interval only tunes
    how often drift is looked for, and the object is otherwise fine.
    """
    text = annotations.get(POLL_INTERVAL_ANNOTATION)
    interval = default
    if text:
        try:
            interval = parse_go_duration(text)
        except ValueError:
            interval = default
    return min(max(interval, minimum), MAX_DURATION_SECONDS)


def jittered(interval: float, *, fraction: float, rng: random.Random) -> float:
    """`interval` spread by ±`fraction`, so objects created together do not resync together forever."""
    if fraction <= 0:
        return interval
    return interval * rng.uniform(1 - fraction, 1 + fraction)
