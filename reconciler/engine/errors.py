"""Compatibility re-export: the error tree lives in `reconciler.errors`, below every layer that raises it."""

from reconciler.errors import (
    InvalidInput,
    MissingReference,
    OwnershipConflict,
    PermanentError,
    Problem,
    ReconcilerError,
    RetryableError,
)

__all__ = [
    "InvalidInput",
    "MissingReference",
    "OwnershipConflict",
    "PermanentError",
    "Problem",
    "ReconcilerError",
    "RetryableError",
]
