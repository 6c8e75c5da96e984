"""Former home of the status builder, kept as a re-export: the builders live in `reconciler.engine.statuses`."""

from reconciler.engine.statuses.building import StatusInputs, base_conditions, build_status, build_status_model

__all__ = ["StatusInputs", "base_conditions", "build_status", "build_status_model"]
