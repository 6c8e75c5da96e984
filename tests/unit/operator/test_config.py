"""kopf settings are set explicitly from the operator's config, and the public surface is pinned."""

from __future__ import annotations

import logging

import kopf

import reconciler.operator
from reconciler.operator.config import OperatorConfig, build_kopf_settings
from reconciler.operator.handled import HandledSpecs


def test_kopf_settings_are_explicit() -> None:
    config = OperatorConfig(namespaces=("team-*",), worker_limit=8, error_delays=(1, 2), priority=5)
    settings = build_kopf_settings(config)
    assert settings.persistence.finalizer == "mcp.reconciler.dev/finalizer"
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert settings.persistence.progress_storage.prefix == "kopf.mcp.reconciler.dev"
    assert isinstance(settings.persistence.diffbase_storage, HandledSpecs), "no annotation write per change"
    assert settings.posting.level == logging.WARNING
    assert settings.posting.reporting_component == "mcp-reconciler"
    assert settings.queueing.worker_limit == 8
    assert tuple(settings.queueing.error_delays) == (1, 2)
    assert isinstance(settings.watching.server_timeout, int)
    selectors = {
        selector.plural or selector.any_name: value for selector, value in settings.watching.label_selectors.items()
    }
    assert selectors == {"secrets": "mcp.reconciler.dev/credential"}
    assert settings.peering.mandatory and not settings.peering.standalone
    assert settings.peering.name == "mcp-reconciler" and settings.peering.priority == 5
    assert not settings.peering.clusterwide


def test_standalone_and_clusterwide() -> None:
    settings = build_kopf_settings(OperatorConfig(standalone=True))
    assert settings.peering.standalone and not settings.peering.mandatory
    assert settings.peering.clusterwide


def test_public_names() -> None:
    assert reconciler.operator.__all__ == ["Operator", "OperatorConfig", "run_operator"]
