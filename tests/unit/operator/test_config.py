"""kopf settings are set explicitly from the operator's config, and the public surface is pinned."""

from __future__ import annotations

import asyncio
import logging

import kopf
import pytest

import reconciler.operator
from reconciler.operator.config import OperatorConfig, build_kopf_settings, kopf_connection_limit
from reconciler.operator.handled import HandledSpecs
from reconciler.operator.handlers import bounded_session


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


@pytest.mark.parametrize(
    ("namespaces", "limit"),
    [
        ((), 6 + 2 + 16),  # the whole cluster: one watch stream per kind, Secrets, peering; CRDs, Namespaces
        (("a", "b"), 6 * 2 + 2 + 16),  # each namespace its own streams
        (("a", "team-*"), None),  # a pattern matches namespaces known only at run time: no bound
        (("a,b",), None),
        (("!c",), None),
    ],
)
def test_kopf_connections_count_its_watch_streams(namespaces: tuple[str, ...], limit: int | None) -> None:
    assert kopf_connection_limit(OperatorConfig(namespaces=namespaces)) == limit


def test_kopf_session_is_bounded_and_authenticates_as_kopf_would() -> None:
    info = kopf.ConnectionInfo(server="https://k:6443", token="t0ken", insecure=True, default_namespace="ns")

    async def built() -> tuple[int | None, str, tuple[str, str | None], bool]:
        bounded = bounded_session(info, limit=24)  # aiohttp makes sessions on a running loop only
        session = bounded.aiohttp_session
        try:
            connector = session.connector
            return (
                connector.limit if connector is not None else None,
                session.headers["Authorization"],
                (bounded.server, bounded.default_namespace),
                session.trust_env,
            )
        finally:
            await session.close()

    assert asyncio.run(built()) == (24, "Bearer t0ken", ("https://k:6443", "ns"), False)


def test_public_names() -> None:
    assert reconciler.operator.__all__ == ["Operator", "OperatorConfig", "run_operator"]
