"""Former home of the condition setters, kept as a re-export: they live in `reconciler.engine.statuses.conditions`."""

from reconciler.engine.statuses.conditions import (
    ConditionDict,
    condition,
    credentials_invalid,
    credentials_unknown,
    credentials_valid,
    find,
    first_sight,
    merge_conditions,
    not_ready,
    observe_only,
    ready,
    ready_unknown,
    sync_failed,
    synced,
)

__all__ = [
    "ConditionDict",
    "condition",
    "credentials_invalid",
    "credentials_unknown",
    "credentials_valid",
    "find",
    "first_sight",
    "merge_conditions",
    "not_ready",
    "observe_only",
    "ready",
    "ready_unknown",
    "sync_failed",
    "synced",
]
