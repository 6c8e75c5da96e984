"""The operator's own settings, and the explicit kopf settings built from them at startup.

`run_operator` (called by `mcp-reconciler run`) builds an `OperatorConfig`; the kopf startup handler copies
`build_kopf_settings` into kopf's settings object; the reconcile loop reads intervals and limits from it.
Everything kopf would otherwise default is set here on purpose: finalizer and annotation prefixes under our
API group, a server-side label selector on Secrets, worker limits, error delays, watch timeouts, the
posting level and peering (one active instance per namespace set).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import kopf

from reconciler.api import KINDS
from reconciler.operator.annotations import CREDENTIAL_LABEL, FINALIZER, KOPF_PREFIX
from reconciler.operator.handled import HandledSpecs
from reconciler.registry import DEFAULT_MANAGER

DEFAULT_PEERING_NAME = "mcp-reconciler"
REPORTING_COMPONENT = "mcp-reconciler"


@dataclass(frozen=True)
class OperatorConfig:
    """What one operator process serves and how; immutable, passed to everything that needs a setting."""

    namespaces: tuple[str, ...] = ()
    """Namespace patterns as kopf accepts them (`team-*`, `a,b,!c`); empty serves the whole cluster."""
    registry_url: str | None = None
    """Registry database URL; None: `$MCP_RECONCILER_REGISTRY`, else the default SQLite file."""
    allow_private_networks: bool = False
    """Let probes reach loopback/private addresses (servers must also opt in with `spec.network.allowPrivate`)."""
    probe: bool = True
    """Discover auth, snapshot tools and verify rotated Secrets against the live servers. Off: rows and status
    only, and a changed Secret is applied without a check (for clusters that cannot reach their servers)."""
    manager: str = DEFAULT_MANAGER
    """Recorded on every registry row this operator owns."""
    listen_host: str = "0.0.0.0"
    """Address of the `/metrics` and `/healthz` server."""
    port: int | None = 8080
    """Port of the `/metrics` and `/healthz` server; 0 picks a free port; None disables the server."""
    standalone: bool = False
    """Run without peering. Otherwise the kopf peering object `peering_name` must exist (the chart ships it)."""
    peering_name: str = DEFAULT_PEERING_NAME
    priority: int = 0
    """Peering priority: a lower-priority instance pauses while a higher one is alive."""
    resync_interval: float = 300.0
    """Seconds between drift checks of one object, unless its poll-interval annotation says otherwise."""
    min_poll_interval: float = 10.0
    """Floor for the poll-interval annotation, so one object cannot hammer the registry."""
    jitter: float = 0.2
    """Resync intervals vary by ±this fraction."""
    retry_base_delay: float = 2.0
    """First back-off after a transient error; doubles per retry up to `retry_max_delay`."""
    retry_max_delay: float = 300.0
    worker_limit: int | None = None
    """kopf's cap on concurrent per-object workers. Keep None: a worker stays `idle_timeout` (5 s) after its
    object's last event, so a cap of N lets about N new objects a 5 s through in a burst. Registry load is bounded
    anyway (passes are batched, `batching.py`), and so are kopf's connections (`kopf_request_connections`)."""
    max_concurrent_passes: int = 32
    """Passes in flight at once (each holds API connections and parsed objects while it waits for the engine)."""
    max_concurrent_resyncs: int = 8
    """Periodic passes in flight at once, among those `max_concurrent_passes`: the passes watch events start queue
    beside at most this many drift checks, so a burst of new objects is not served behind them."""
    member_token_interval: float = 60.0
    """Seconds between sweeps renewing members' due tokens in the namespaces served (with `probe` only: the same
    network permission); 0 disables them."""
    upstream_interval: float = 3600.0
    """Seconds between checks of the Registry API an imported MCPServer came from (its upstream annotations)."""
    upstream_token: str | None = field(default=None, repr=False)
    """Bearer token for those registries (`$MCP_RECONCILER_UPSTREAM_TOKEN`); never printed."""
    registry_threads: int = 2
    """Threads running registry transactions: a global bound on concurrent database work. They run nothing else:
    probes wait on the event loop, so servers that never answer cannot hold them."""
    probe_concurrency: int = 64
    """MCP servers probed at once across all namespaces. A probe waiting on a server that never answers holds a
    slot until the probe timeout, and costs only a socket and a task meanwhile: keep the bound well above the
    number of such servers, so that they leave room for the others."""
    api_connections: int = 8
    """Connection pool of the operator's own API client (status writes, tenant and Secret reads)."""
    kopf_request_connections: int = 16
    """kopf's connections for its requests (finalizer patches, Events), on top of one per watch stream (see
    `kopf_connection_limit`). Unbounded, a burst of new objects opened one connection per request in flight, each
    with asyncio's 256 KiB TLS read buffer: 121 connections for 3,000 new objects, about 27 MB of the peak."""
    error_delays: tuple[float, ...] = (1, 2, 5, 10, 30, 60, 120, 300)
    """kopf's back-off for unexpected handler exceptions (our own errors set their delay explicitly)."""
    watch_server_timeout: int = 300
    """Seconds the API server keeps one watch request open before kopf reconnects."""
    watch_client_timeout: int = 330
    request_timeout: float = 60.0
    """Bound on every non-watch API request."""
    tenant_cache_seconds: float = 5.0
    """Passes within this many seconds of a namespace's tenant read (its label and ConfigMap `mcp-tenant`) reuse it.
    Nothing watches tenants: a change reaches the objects at their next pass either way, at most this much later."""
    platform_namespace: str | None = None
    """The platform tenant whose featured servers every exported document offers last (None: no platform)."""
    export_debounce: float = 0.5
    """Seconds a namespace's exported ConfigMaps wait after a change they depend on (one refresh per burst)."""
    first_status_delay: float = 2.0
    """Seconds a new object's first pass may take before its status shows Ready and Synced `Unknown` meanwhile; a
    pass done sooner writes its outcome as the first status (the Argo CD health check reads a missing status as
    Progressing, as it reads `Unknown`)."""
    health_cache_seconds: float = 5.0
    """`/healthz` pings the registry at most this often."""
    peering_check_seconds: float = 10.0
    """How often a mandatory-peering instance re-checks that its peering object exists (for the log and `/healthz`)."""
    public_url: str | None = None
    """Where the reconciler is reachable (`--public-url`, the chart's `publicUrl`): the OAuth callback
    `{public URL}/oauth/callback`, and the CIMD client id `{public URL}/oauth/client-metadata.json`."""
    kubeconfig: Path | None = None
    """Explicit kubeconfig; None: `$KUBECONFIG` or `~/.kube/config`, else the in-cluster service account."""
    kube_context: str | None = None
    log_level: int = logging.INFO

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


WATCHES_PER_NAMESPACE = len(KINDS) + 2
"""kopf's watch streams per served namespace (or for the whole cluster): our kinds, Secrets, its peering objects."""
CLUSTER_WATCHES = 2
"""kopf's cluster-wide watch streams besides: CustomResourceDefinitions and Namespaces."""
_NAMESPACE_PATTERN = frozenset("*?[!,")


def kopf_connection_limit(config: OperatorConfig) -> int | None:
    """How many connections kopf's API session may hold: one per watch stream (each holds its connection for as
    long as it streams: a bound below their number would stall every request behind them) plus
    `kopf_request_connections`. None (no bound) when a namespace is a pattern: the namespaces it matches, and so
    the watch streams, are known only at run time."""
    if any(_NAMESPACE_PATTERN & set(namespace) for namespace in config.namespaces):
        return None
    served = max(1, len(config.namespaces))
    return WATCHES_PER_NAMESPACE * served + CLUSTER_WATCHES + config.kopf_request_connections


def build_kopf_settings(
    config: OperatorConfig, settings: kopf.OperatorSettings | None = None, *, handled: HandledSpecs | None = None
) -> kopf.OperatorSettings:
    """Fill kopf's settings (a fresh object, or the one kopf passes to the startup handler) from `config`.

    Storage: the diff base is `handled` (in memory, see `handled.py`: no annotation write per new or changed
    object). Progress lives in annotations under `kopf.<our group>`, never in `status` (the CRD's structural schema
    would prune `status.kopf`); kopf writes it only while a handler is being retried (the finalizer's), so an idle
    object is never patched by kopf. The periodic passes are our own loop, which kopf does not persist.
    """
    settings = settings if settings is not None else kopf.OperatorSettings()
    persistence = settings.persistence
    persistence.finalizer = FINALIZER
    persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    persistence.diffbase_storage = handled if handled is not None else HandledSpecs()

    settings.posting.enabled = True
    settings.posting.level = logging.WARNING
    settings.posting.loggers = False
    settings.posting.reporting_component = REPORTING_COMPONENT

    settings.queueing.worker_limit = config.worker_limit
    settings.queueing.error_delays = config.error_delays

    settings.watching.server_timeout = config.watch_server_timeout
    settings.watching.client_timeout = config.watch_client_timeout
    settings.watching.connect_timeout = 30.0
    settings.watching.inactivity_timeout = max(70.0, config.watch_server_timeout + 30.0)
    settings.watching.chunk_size = 500
    # Server-side: only labelled Secrets are streamed to us, never the namespace's other Secrets.
    settings.watching.label_selectors["v1", "secrets"] = CREDENTIAL_LABEL

    settings.networking.request_timeout = config.request_timeout
    settings.networking.connect_timeout = 30.0

    settings.peering.standalone = config.standalone
    settings.peering.mandatory = not config.standalone
    settings.peering.name = config.peering_name
    settings.peering.priority = config.priority
    settings.peering.clusterwide = config.clusterwide
    settings.peering.stealth = True

    settings.background.instant_exit_timeout = 0.5
    return settings
