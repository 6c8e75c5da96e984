"""Start and stop one operator: open the registry, connect to the API server, serve metrics, run kopf.

`run_operator` is the blocking entry point `mcp-reconciler run` calls. `Operator` is the embeddable form
(tests, benchmarks): `await Operator(config).run(stop_flag=..., ready_flag=...)` runs kopf in the current
event loop with its own handler registry and settings, so several operators can share one process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import kopf
from kubernetes.aio import client as aclient

from reconciler.operator.cluster import Cluster, access_of, load_client_configuration
from reconciler.operator.config import (
    DEFAULT_PEERING_NAME,
    OperatorConfig,
    build_kopf_settings,
    kopf_connection_limit,
)
from reconciler.operator.events import EventSink, KopfEventSink
from reconciler.operator.handled import HandledSpecs
from reconciler.operator.handlers import build_handlers
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.peering import (
    STANDALONE,
    AlwaysOpen,
    PeeringCheck,
    PeeringGate,
    PeeringState,
    ResyncGate,
    own_identity,
)
from reconciler.operator.reconciling import ObjectReconciler
from reconciler.operator.serving import RegistryHealth, build_app, start_server
from reconciler.operator.upstream import UpstreamChecker
from reconciler.registry import open_registry

UPSTREAM_TOKEN_ENV = "MCP_RECONCILER_UPSTREAM_TOKEN"
log = logging.getLogger("mcp_reconciler.operator")


class Operator:
    """One operator process's worth of collaborators, built when `run` starts and closed when it ends."""

    def __init__(
        self,
        config: OperatorConfig,
        *,
        environ: Mapping[str, str] | None = None,
        events: EventSink | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.metrics = OperatorMetrics()
        self.port: int | None = None
        """The bound `/metrics` + `/healthz` port once serving (useful with `config.port = 0`)."""
        self._environ = environ if environ is not None else dict(os.environ)
        self._events = events or KopfEventSink()
        self._rng = rng
        self.peering: PeeringState = STANDALONE
        """What `/healthz` reports about peering: ready, or what this instance waits for and the ways out."""

    async def _watch_peering(self, check: PeeringCheck) -> None:
        """Re-check every few seconds, so `/healthz` and the log follow the peering object appearing or going."""
        while True:
            await asyncio.sleep(self.config.peering_check_seconds)
            previous, self.peering = self.peering, await check.check()
            _log_peering(self.peering, previous)

    async def run(
        self,
        *,
        stop_flag: asyncio.Event | None = None,
        ready_flag: asyncio.Event | None = None,
    ) -> None:
        """Run until `stop_flag` is set (or, without one, until SIGINT/SIGTERM, which kopf handles)."""
        config = self.config
        threads = ThreadPoolExecutor(max_workers=config.registry_threads, thread_name_prefix="registry")
        loop = asyncio.get_running_loop()
        registry = await loop.run_in_executor(
            threads, functools.partial(open_registry, config.registry_url, manager=config.manager)
        )
        log.info("registry %s open; serving %s", registry.url, ", ".join(config.namespaces) or "all namespaces")
        runner = None
        watcher: asyncio.Task[None] | None = None
        cluster: Cluster | None = None
        reconciler: ObjectReconciler | None = None
        upstream: UpstreamChecker | None = None
        try:
            configuration, in_cluster = await load_client_configuration(
                kubeconfig=config.kubeconfig, context=config.kube_context, environ=self._environ
            )
            configuration.connection_pool_maxsize = config.api_connections
            cluster = Cluster(
                aclient.ApiClient(configuration),
                request_timeout=config.request_timeout,
                tenant_cache_seconds=config.tenant_cache_seconds,
            )
            identity = own_identity(self._environ)
            gate: ResyncGate = AlwaysOpen()
            if not config.standalone:
                gate = PeeringGate(
                    cluster.read_peering,
                    name=config.peering_name,
                    identity=identity,
                    priority=config.priority,
                    clusterwide=config.clusterwide,
                )
            reconciler = ObjectReconciler(
                registry=registry,
                cluster=cluster,
                events=self._events,
                metrics=self.metrics,
                config=config,
                registry_threads=threads,
                rng=self._rng,
                gate=gate,
            )
            if not config.standalone:
                check = PeeringCheck(
                    cluster.read_peering,
                    name=config.peering_name,
                    namespaces=config.namespaces,
                    clusterwide=config.clusterwide,
                )
                self.peering = await check.check()
                _log_peering(self.peering, None)
                watcher = asyncio.create_task(self._watch_peering(check), name="peering check")
            if config.port is not None:
                health = RegistryHealth(registry.ping, cache_seconds=config.health_cache_seconds, executor=threads)
                app = build_app(metrics=self.metrics, health=health, peering=lambda: self.peering)
                runner, self.port = await start_server(app, host=config.listen_host, port=config.port)
            handled = HandledSpecs()  # kopf's diff base, shared by its settings and the finalizer
            upstream = UpstreamChecker(
                record=reconciler.record_upstream,
                allow_private=config.allow_private_networks,
                interval=config.upstream_interval,
                token=config.upstream_token,
                gate=gate,
            )
            await kopf.operator(
                registry=build_handlers(
                    reconciler=reconciler,
                    access=access_of(configuration, in_cluster=in_cluster),
                    upstream=upstream,
                    handled=handled,
                    connection_limit=kopf_connection_limit(config),
                ),
                settings=build_kopf_settings(config, handled=handled),
                namespaces=list(config.namespaces),
                clusterwide=config.clusterwide,
                stop_flag=stop_flag,
                ready_flag=ready_flag,
                memo=kopf.Memo(),
                identity=cast(Any, identity),  # kopf's Identity is a NewType of str it does not export
            )
        finally:
            if watcher is not None:
                watcher.cancel()
            if upstream is not None:
                await upstream.close()
            if reconciler is not None:
                await reconciler.close()
            if runner is not None:
                await runner.cleanup()
            if cluster is not None:
                await cluster.close()
            await loop.run_in_executor(threads, registry.close)
            threads.shutdown(wait=False)


def _log_peering(state: PeeringState, previous: PeeringState | None) -> None:
    """Say so when the instance starts waiting (and again when it stops): a silent wait strands a newcomer."""
    if previous is not None and previous.ready == state.ready:
        return
    if state.ready:
        log.info("peering: %s", state.message)
    else:
        log.warning("peering: %s", state.message)


def run_operator(
    namespaces: Sequence[str] = (),
    *,
    registry_url: str | None = None,
    allow_private_networks: bool = False,
    probe: bool = True,
    port: int | None = 8080,
    standalone: bool = False,
    peering_name: str = DEFAULT_PEERING_NAME,
    priority: int = 0,
    resync_interval: float = 300.0,
    upstream_interval: float = 3600.0,
    kubeconfig: Path | None = None,
    platform_namespace: str | None = None,
    public_url: str | None = None,
) -> None:
    """Run the operator until SIGINT/SIGTERM (blocking; `mcp-reconciler run` calls this).

    `namespaces`: kopf namespace patterns (`team-*`, `a,b,!c`); empty serves every namespace. `registry_url`:
    None resolves `$MCP_RECONCILER_REGISTRY`, else the default SQLite file. `port`: `/metrics` and `/healthz`
    (None: no server). `probe`: contact the MCP servers (discovery, tool snapshots, rotation checks). Without
    `standalone`, the kopf peering object `peering_name` must exist in each
    served namespace (the chart creates it) so that only one instance is active. `platform_namespace`: the
    platform tenant whose featured servers every exported ConfigMap offers last. `public_url`: where the
    reconciler is reachable, for its OAuth callback and CIMD client id (`--public-url`). `upstream_interval`:
    seconds between checks of the Registry API an imported MCPServer came from.
    """
    config = OperatorConfig(
        namespaces=tuple(namespaces),
        registry_url=registry_url,
        allow_private_networks=allow_private_networks,
        probe=probe,
        port=port,
        standalone=standalone,
        peering_name=peering_name,
        priority=priority,
        resync_interval=resync_interval,
        upstream_interval=upstream_interval,
        kubeconfig=kubeconfig,
        upstream_token=os.environ.get(UPSTREAM_TOKEN_ENV) or None,
        platform_namespace=platform_namespace,
        public_url=public_url,
    )
    asyncio.run(Operator(config).run())
