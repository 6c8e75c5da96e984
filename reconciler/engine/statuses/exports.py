"""A binding's `status.export`: where its `spec.export` document went and whether it could be written.

Pure; called by the operator's exports (`operator/exports.py`) after it tried the ConfigMap. The section is an
`api.binding.ExportStatus`, dumped as written (camelCase, only the fields set).
"""

from __future__ import annotations

from typing import Any

from reconciler.api.binding import ExportStatus


def _dump(section: ExportStatus) -> dict[str, Any]:
    return section.model_dump(mode="json", by_alias=True, exclude_unset=True)


def export_written(config_map: str, key: str, *, servers: int) -> dict[str, Any]:
    return _dump(ExportStatus(config_map=config_map, key=key, state="Written", servers=servers))


def export_conflict(config_map: str, key: str, *, message: str) -> dict[str, Any]:
    """A ConfigMap of that name exists that the binding does not control: left alone."""
    return _dump(ExportStatus(config_map=config_map, key=key, state="Conflict", message=message))


def export_failed(config_map: str, key: str, *, message: str) -> dict[str, Any]:
    """The API refused or could not be reached; retried at the next pass."""
    return _dump(ExportStatus(config_map=config_map, key=key, state="Failed", message=message))
