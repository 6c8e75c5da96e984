"""`UtcDateTime` binds what its composed processing binds, when it remembers its last answer too. Pure."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from reconciler.registry.schema import UtcDateTime

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
VALUES = [
    NOW,
    NOW,  # the same object again: remembered
    dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC),  # equal, another object
    None,
    dt.datetime(2026, 3, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),  # the same moment elsewhere
    dt.datetime(2026, 3, 1, 12, 0),  # naive: taken as UTC
    NOW,
]


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.psycopg.dialect()], ids=["sqlite", "postgresql"])
def test_a_remembered_timestamp_binds_as_it_would_afresh(dialect: Dialect) -> None:
    remembering = UtcDateTime().bind_processor(dialect)
    assert remembering is not None
    afresh = sa.types.TypeDecorator.bind_processor(UtcDateTime(), dialect)
    assert afresh is not None
    assert [remembering(value) for value in VALUES] == [afresh(value) for value in VALUES]
