"""Fixtures of the tests of the operator's passes: a real SQLite registry, the API server and the Event sink faked
at our own seams (`tests/fixtures/operator_seams.py`), and a reconciler over them that does not probe."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.operator.config import OperatorConfig
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.reconciling import ObjectReconciler
from reconciler.registry import Registry, open_registry
from tests.fixtures.operator_seams import FakeCluster, RecordingSink
from tests.unit.operator.bodies import NOW


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    opened = open_registry(f"sqlite:///{tmp_path / 'registry.db'}")
    yield opened
    opened.close()


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def reconciler(registry: Registry, cluster: FakeCluster, sink: RecordingSink) -> ObjectReconciler:
    # A first pass writes one status however busy the machine (the slow path has its own test).
    config = OperatorConfig(retry_base_delay=2.0, retry_max_delay=60.0, probe=False, first_status_delay=60.0)
    return ObjectReconciler(
        registry=registry,
        cluster=cluster,
        events=sink,
        metrics=OperatorMetrics(),
        config=config,
        rng=random.Random(0),
        clock=lambda: NOW,
    )
