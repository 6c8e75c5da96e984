"""The one timestamp format the reconciler writes: RFC 3339 in UTC, to the second (`2026-01-02T03:04:05Z`).

Used by every status builder, the CLI's renderings and the `kubectl get` column values, so a time reads the
same wherever it is shown. `Timestamp` is the model field type that serialises the same way.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any

from pydantic import AfterValidator

__all__ = ["Timestamp", "format_time", "parse_time"]

ZERO = dt.timedelta(0)


def format_time(moment: dt.datetime) -> str:
    """`moment` in UTC, to the second; a naive time is taken to be UTC already (as the registry returns it)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    elif moment.tzinfo is not dt.UTC:
        moment = moment.astimezone(dt.UTC)
    return _format_utc(moment)


@functools.lru_cache(maxsize=64)
def _format_utc(moment: dt.datetime) -> str:
    # Cached: a pass stamps every status it builds with the same `now` (twice per object, 20,000 times in a cold
    # apply of 10,000 objects). Keyed by UTC times only, where equal means the same instant.
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> dt.datetime | None:
    """A timestamp read back from a status (ours or an older writer's); None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _in_utc_to_the_second(moment: dt.datetime) -> dt.datetime:
    if moment.microsecond == 0 and moment.utcoffset() == ZERO:
        return moment  # as read back from a status: already in the one format
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).replace(microsecond=0)


Timestamp = Annotated[dt.datetime, AfterValidator(_in_utc_to_the_second)]
"""A status time: parsed from any RFC 3339 text and held in UTC to the second, so that it serialises (in JSON
mode) exactly as `format_time` writes it."""
