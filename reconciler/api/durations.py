"""Kubernetes/Go duration strings (`30s`, `10m`, `1h30m`), parsed and printed the same way everywhere.

Used by the models (validation), the CLI (printing ages) and the engine (intervals).
"""

from __future__ import annotations

import functools
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_DURATION = "8760h"
"""Longest duration accepted anywhere (one year): the registry stores intervals as 32-bit seconds, and no
interval, age or timeout of the reconciler means anything beyond a year."""
MAX_DURATION_SECONDS = 8760 * 3600
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


@functools.lru_cache(maxsize=256)
def parse_duration(text: str, *, bounded: bool = True) -> float:
    """Return seconds for a Go-style duration; raise ValueError naming the bad text.

    Durations longer than `MAX_DURATION` are refused unless `bounded` is false (the models check the bound
    themselves, to name the field in their message). Remembered: a fleet spells its few intervals thousands of
    times (every server's row and every resync's probe schedule read one).
    """
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}: use the Kubernetes form, e.g. 30s, 10m, 1h")
    seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(text))
    if bounded and seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"duration {text!r} is longer than {MAX_DURATION} (one year)")
    return seconds


def format_duration(seconds: float) -> str:
    """Print a duration the way kubectl prints ages: the two largest units, no zeros."""
    total = int(seconds)
    if total < 0:
        total = 0
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h" if hours and days < 10 else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes and hours < 10 else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs}s" if secs and minutes < 10 else f"{minutes}m"
    return f"{secs}s"
