"""Bulk writes are batched: 10,000 objects cost a constant number of INSERT statements, however many rows.

Timing against a raw bulk insert lives in `bench/registry_bench.py`; this test pins the statement count,
which is what keeps that ratio low and does not depend on how busy the machine is.
"""

from __future__ import annotations

from reconciler.registry import Registry
from tests.integration.registry.samples import fleet

TENANTS = 50
OBJECTS = 10_000
ALLOWED_SLOWDOWN = 3.0
ROUNDS = 2


def test_inserting_10k_objects_issues_one_insert_per_table(registry: Registry) -> None:
    tenants, records = fleet(tenants=TENANTS, objects_per_tenant=OBJECTS // TENANTS)
    assert len(records) == OBJECTS
    registry.reset_statement_counts()
    with registry.transaction() as transaction:
        transaction.ensure_tenants(tenants)
        ids = transaction.insert(records)
    assert len(ids) == OBJECTS
    assert registry.statement_counts["INSERT"] == 7  # tenants + 6 tables, however many rows
    assert registry.statement_counts["UPDATE"] == 0 and registry.statement_counts["DELETE"] == 0
    assert len(registry.fetch_state().rows) == OBJECTS
