"""The handlers the operator registers with kopf: shapes that decide how it scales."""

from __future__ import annotations

from typing import Any, cast

from reconciler.operator.cluster import KubeAccess
from reconciler.operator.handlers import build_handlers
from reconciler.operator.reconciling import ObjectReconciler


def test_no_kopf_index_is_declared() -> None:
    """With any index declared, kopf's start-up waits for every existing object to be indexed, waking every
    waiting worker per object listed: minutes at 10,000 objects (see `operator/indexing.py`)."""
    registry = build_handlers(reconciler=cast(ObjectReconciler, object()), access=KubeAccess(server="https://k"))
    indexing: Any = registry._indexing  # kopf keeps no public view of its index handlers
    assert not indexing.get_all_handlers()
    watching: Any = registry._watching
    assert {handler.id for handler in watching.get_all_handlers()} == {"index", "credential"}
