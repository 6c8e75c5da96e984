"""The agent-facing MCP endpoint: the registry, read-only, as an MCP server over streamable HTTP.

Built by `build_mcp_app` (tests serve it with uvicorn on 127.0.0.1) and run by `serve_mcp` (the CLI's
`serve-mcp`). Agents get four tools — list servers with their health, show one server's tool snapshot and
discovery result, resolve a template for a member, and plan proposed manifests — and nothing that writes.
Every HTTP request must carry `Authorization: Bearer <token>` (compared in constant time); anything else gets
401 with `WWW-Authenticate`. The exceptions are the reconciler's CIMD client metadata documents and its JWKS, which
`serve --public-url` publishes for authorization servers to fetch anonymously (`ClientMetadataRoute`). Parsing YAML and
planning are the manifests loader's and the engine's jobs, which this package may not import: the driver injects
a `ManifestPlanner` (`reconciler.engine.proposing.DryRunPlanner`), and without one the `plan` tool is not offered.
"""

from __future__ import annotations

import hmac
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import anyio
import anyio.to_thread
import uvicorn
from mcp.server import MCPServer
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.credentials.assertions import PUBLIC_MEMBERS
from reconciler.credentials.identity import (
    CLIENT_METADATA_PATH,
    JWKS_FILE,
    client_credentials_metadata_document,
    client_metadata_document,
    tenant_client_path,
)
from reconciler.probe import diff_tools, filter_tool_names
from reconciler.registry import Registry, open_registry
from reconciler.registry.managers import DEFAULT_MANAGER
from reconciler.registry.records import ServerRecord, ToolSnapshotRecord
from reconciler.runtime.connect_service import Connector, ConnectRoutes, ConnectService
from reconciler.runtime.linking import registry_link_key
from reconciler.runtime.membership import MemberCoverage, plan_member_coverage
from reconciler.runtime.publishing import DEFAULT_NAME_PREFIX
from reconciler.runtime.registry_api import CallerDirectory, PathDispatcher, build_registry_api
from reconciler.runtime.renewing import OnDemandRenewal
from reconciler.runtime.resolving import UnknownTenant, resolve

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
MCP_PATH = "/mcp"
MAX_MANIFEST_BYTES = 1024 * 1024
"""Largest YAML text `plan` accepts: a proposal, not a fleet."""
REALM = "mcp-reconciler"


class ManifestPlanner(Protocol):
    """Answers the `plan` tool: what applying YAML manifests would change in `registry`, as JSON; writes nothing."""

    def __call__(self, registry: Registry, manifests: str, *, prune: bool) -> dict[str, Any]: ...


log = logging.getLogger("mcp_reconciler.runtime")


class BearerTokenGate:
    """ASGI middleware: HTTP requests without the right bearer token get 401 and never reach the MCP app.

    A static token rather than the SDK's OAuth resource-server settings: there is no authorization server to
    advertise, so the 401 names the realm (RFC 6750) instead of pointing at protected-resource metadata.
    """

    def __init__(self, app: ASGIApp, *, token: str) -> None:
        if not token:
            raise ValueError("the MCP endpoint needs a non-empty bearer token")
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        scheme, _, presented = Headers(scope=scope).get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), self._token):
            await self._app(scope, receive, send)
            return
        challenge = f'Bearer realm="{REALM}"'
        description = "a bearer token is required"
        if presented:
            challenge += ', error="invalid_token"'
            description = "the bearer token is not valid"
        response = JSONResponse(
            {"error": "invalid_token" if presented else "unauthorized", "error_description": description},
            status_code=401,
            headers={"WWW-Authenticate": challenge},
        )
        await response(scope, receive, send)


def build_mcp_server(
    registry: Registry,
    *,
    plan_manifests: ManifestPlanner | None = None,
    platform_tenant: str | None = None,
    public_url: str | None = None,
    renewing: OnDemandRenewal | None = None,
) -> MCPServer:
    """The read-only MCP server over an open registry (no transport, no auth: see `build_mcp_app`).

    `platform_tenant`: the platform whose featured servers `resolve_template` offers every tenant last.
    `public_url`: where the connect service listens; `resolve_template` then hands members connect links.
    `renewing`: `resolve_template` first renews the due tokens it hands out, as the CLI's `resolve` does (None:
    it renews nothing). Only token rows and sealed values change: nothing a registration declares.
    """
    with _host_logging_kept():
        server = MCPServer(
            "mcp-reconciler-registry",
            version="1.0.0",
            instructions=(
                "Read-only view of the MCP server registry: which servers exist and how healthy they are, their "
                "tool snapshots, what a template resolves to for a member, and what a proposed manifest would "
                "change. Nothing here writes."
            ),
        )

    @server.tool(title="List MCP servers")
    def list_servers(tenant: str | None = None) -> dict[str, Any]:
        """Registered MCP servers with their health (last test, blocked reason, Ready condition, and how many
        members connected each per-member credential, with a warning when nobody has).

        `tenant`: a tenant slug or namespace; every tenant when omitted.
        """
        return list_server_health(registry, tenant=tenant)

    @server.tool(title="Show an MCP server")
    def show_server(tenant: str, server: str) -> dict[str, Any]:
        """One server's latest tool snapshot (with what changed since the previous one) and discovery result."""
        return describe_server(registry, tenant=tenant, server=server)

    kept_renewal = renewing.kept_renewal(registry) if renewing is not None else None

    @server.tool(title="Resolve a template")
    def resolve_template(
        tenant: str,
        template: str | None = None,
        agent: str | None = None,
        user: str | None = None,
        teams: list[str] | None = None,
        namespace_tools: bool = False,
        explain: bool = False,
    ) -> dict[str, Any]:
        """The effective MCP servers a template gets for an agent and member (header values always masked)."""
        resolution = resolve(
            registry,
            tenant,
            template=template,
            agent=agent,
            user=user,
            teams=tuple(teams or ()),
            namespace_tools=namespace_tools,
            explain=explain,
            platform_tenant=platform_tenant,
            public_url=public_url,
            renew_tokens=renewing is not None,
            renewal=kept_renewal() if kept_renewal is not None else None,
            client_credentials=renewing.client_credentials if renewing is not None else None,
        )
        return resolution.to_json()

    if plan_manifests is not None:
        planner = plan_manifests

        @server.tool(title="Plan manifests (dry run)")
        def plan(manifests: str, prune: bool = False) -> dict[str, Any]:
            """What applying these YAML manifests would change in the registry; writes nothing.

            `prune`: also show deletions of rows, in the manifests' tenants, that the manifests no longer declare.
            """
            if len(manifests.encode()) > MAX_MANIFEST_BYTES:
                raise ValueError(f"manifests are limited to {MAX_MANIFEST_BYTES} bytes")
            return planner(registry, manifests, prune=prune)

    return server


def build_mcp_app(
    registry: Registry,
    *,
    token: str,
    plan_manifests: ManifestPlanner | None = None,
    host: str = DEFAULT_HOST,
    platform_tenant: str | None = None,
    public_url: str | None = None,
    renewing: OnDemandRenewal | None = None,
) -> ASGIApp:
    """The bearer-protected streamable-HTTP app (served at `/mcp`); the caller keeps `registry` open meanwhile.

    `host` is where it will listen: on 127.0.0.1/localhost the SDK also rejects foreign Host/Origin headers.
    `public_url` and `renewing` as for `build_mcp_server`.
    """
    server = build_mcp_server(
        registry,
        plan_manifests=plan_manifests,
        platform_tenant=platform_tenant,
        public_url=public_url,
        renewing=renewing,
    )
    app = server.streamable_http_app(streamable_http_path=MCP_PATH, stateless_http=True, json_response=True, host=host)
    return BearerTokenGate(app, token=token)


class ClientMetadataRoute:
    """ASGI: the reconciler's Client ID Metadata Documents (CIMD) and its JWKS, without a token, since authorization
    servers fetch them anonymously; every other request goes on to `app`.

    `GET /oauth/client-metadata.json` describes the public authorization-code client;
    `GET /oauth/tenants/{tenant}/client-credentials-metadata.json` a tenant's `private_key_jwt` client-credentials
    client, whose `jwks_uri` is `GET /oauth/tenants/{tenant}/jwks.json`: the public halves of the keys of that
    tenant's servers that use it, read from the registry (where the engine records them) on each request, so a
    rotated key is published as soon as it is applied. One client per tenant: a key in a client's JWKS signs for
    that client, and tenants supply their own keys. The documents hold no secret (the draft forbids one), and each
    JWK is rebuilt from an allow-list of public members, so no private parameter can be published."""

    def __init__(self, app: ASGIApp, *, public_url: str, registry: Registry | None = None) -> None:
        self._app = app
        self._registry = registry
        self._public_url = public_url
        self._client_metadata = client_metadata_document(public_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path"))
        tenant_file = tenant_client_path(path) if scope["type"] == "http" else None
        if scope["type"] != "http" or (path != CLIENT_METADATA_PATH and tenant_file is None):
            await self._app(scope, receive, send)
            return
        response: Response
        if scope.get("method") not in ("GET", "HEAD"):
            response = Response(status_code=405, headers={"allow": "GET, HEAD"})
        elif tenant_file is None:
            response = JSONResponse(self._client_metadata, headers={"cache-control": "public, max-age=300"})
        elif tenant_file[1] == JWKS_FILE:
            response = JSONResponse(
                published_jwks(await self._tenant_keys(tenant_file[0])), headers={"cache-control": "public, max-age=60"}
            )
        else:
            document = client_credentials_metadata_document(self._public_url, tenant=tenant_file[0])
            response = JSONResponse(document, headers={"cache-control": "public, max-age=300"})
        await response(scope, receive, send)

    async def _tenant_keys(self, tenant: str) -> list[dict[str, Any]]:
        registry = self._registry
        if registry is None:
            return []
        return await anyio.to_thread.run_sync(lambda: registry.fetch_published_client_keys(tenant=tenant))


def published_jwks(keys: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The JWKS to publish: each key's public members only (RFC 7638's, per key type) with `kid`, `alg` and
    `use: sig`; a key of an unknown type, or one already listed, is left out. Pure."""
    published: list[dict[str, Any]] = []
    for key in keys:
        members = PUBLIC_MEMBERS.get(str(key.get("kty")))
        if members is None or not all(isinstance(key.get(name), str) for name in (*members, "kid", "alg")):
            continue
        jwk = {name: key[name] for name in members} | {"kid": key["kid"], "alg": key["alg"], "use": "sig"}
        if jwk not in published:
            published.append(jwk)
    return {"keys": published}


def build_serving_app(
    registry: Registry,
    *,
    token: str,
    callers: CallerDirectory | None = None,
    plan_manifests: ManifestPlanner | None = None,
    host: str = DEFAULT_HOST,
    name_prefix: str = DEFAULT_NAME_PREFIX,
    platform_tenant: str | None = None,
    public_url: str | None = None,
    connector: Connector | None = None,
    renewing: OnDemandRenewal | None = None,
) -> ASGIApp:
    """What `serve` runs: the MCP endpoint at `/mcp` and the Registry API (v0.1) at `/v0.1`, one process.

    `callers` maps Registry API tokens to members; by default only `token` (the platform's) is known.
    `platform_tenant` reaches the MCP endpoint's `resolve_template` (see `build_mcp_server`) and the Registry API,
    which lists its featured servers to every caller the way resolution offers them. With `public_url`
    (where this app is reachable), it also publishes the CIMD document the reconciler's client id points to, and
    with a `connector` too it serves the connect service (`connect_service.py`) under `/oauth/`, which opens the
    connect links `resolve_template` hands out (signed with a key derived from the registry's store key).
    `renewing`: what `resolve_template` renews first (see `build_mcp_server`).
    """
    directory = callers or CallerDirectory(platform_token=token)
    api = build_registry_api(registry, callers=directory, prefix=name_prefix, platform_tenant=platform_tenant)
    connecting = bool(public_url) and connector is not None
    mcp_app = build_mcp_app(
        registry,
        token=token,
        plan_manifests=plan_manifests,
        host=host,
        platform_tenant=platform_tenant,
        public_url=public_url if connecting else None,
        renewing=renewing,
    )
    app: ASGIApp = PathDispatcher(api, mcp_app)
    if public_url and connector is not None:
        key = registry_link_key(registry, create=True)
        app = ConnectRoutes(app, ConnectService(connector, public_url=public_url, callers=directory, link_key=key))
    return ClientMetadataRoute(app, public_url=public_url, registry=registry) if public_url else app


def serve_mcp(
    *,
    registry_url: str | None,
    token: str,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    plan_manifests: ManifestPlanner | None = None,
    manager: str = DEFAULT_MANAGER,
    log_level: str = "info",
    callers: CallerDirectory | None = None,
    name_prefix: str = DEFAULT_NAME_PREFIX,
    platform_tenant: str | None = None,
    public_url: str | None = None,
    connector_for: Callable[[Registry], Connector] | None = None,
    renewing: OnDemandRenewal | None = None,
) -> None:
    """Serve the endpoint and the Registry API until interrupted (blocking); the registry is opened here.
    `connector_for` builds the connect service's logins over that registry (the CLI passes the engine's);
    `renewing` is what the endpoint's `resolve_template` renews first (the CLI passes the engine's minting too)."""
    registry = open_registry(registry_url, manager=manager)
    try:
        app = build_serving_app(
            registry,
            connector=connector_for(registry) if connector_for is not None else None,
            token=token,
            callers=callers,
            plan_manifests=plan_manifests,
            host=host,
            name_prefix=name_prefix,
            platform_tenant=platform_tenant,
            public_url=public_url,
            renewing=renewing,
        )
        log.info("serving the registry %s read-only at http://%s:%d%s and /v0.1", registry.url, host, port, MCP_PATH)
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        registry.close()


# -- the tools' answers (plain functions, so the CLI and tests can call them without MCP) -----------------------


def list_server_health(registry: Registry, *, tenant: str | None = None) -> dict[str, Any]:
    """Servers with health from probe state and, where the CLI stored it, the object's Ready condition; `members`
    lists each per-member credential of the server with its connected-member count (`membership.py`)."""
    slugs = None if tenant is None else [_tenant_slug(registry, tenant)]
    state = registry.fetch_state(tenants=slugs)
    probes = registry.fetch_probe_states(tenants=slugs)
    namespaces = {slug: record.namespace for slug, record in state.tenants.items()}
    statuses = {(r.namespace, r.name): r.status for r in registry.fetch_resources(kind="MCPServer")}
    members: dict[tuple[str, str], list[MemberCoverage]] = defaultdict(list)
    counts = registry.count_connected_members(tenants=slugs)
    for coverage in plan_member_coverage(state.rows.values(), counts, tenants=state.tenants):
        members[(coverage.tenant, coverage.server)].append(coverage)
    servers = []
    for key, record in sorted(state.rows.items()):
        if not isinstance(record, ServerRecord):
            continue
        _table, slug, name = key
        namespace = namespaces.get(slug, slug)
        probe = probes.get((slug, name))
        last_test = dict(probe.last_test or {}) if probe else {}
        servers.append(
            {
                "tenant": slug,
                "namespace": namespace,
                "name": name,
                "url": record.url,
                "transport": record.transport,
                "enabled": record.enabled,
                "featured": record.featured,
                "auth": record.auth_type,
                "toolPolicy": record.tool_policy,
                "managedBy": record.ownership.manager,
                "health": {
                    "ready": _condition(statuses.get((namespace, name)), "Ready"),
                    "lastTest": {k: last_test.get(k) for k in ("ok", "errorClass", "message", "latencyMs", "at")}
                    if last_test
                    else None,
                    "blockedReason": probe.blocked_reason if probe else None,
                    "probedAt": probe.probed_at.isoformat() if probe and probe.probed_at else None,
                    "members": [
                        {
                            "connection": coverage.connection,
                            "connectedMembers": coverage.connected_members,
                            "warning": coverage.warning(),
                        }
                        for coverage in members.get((slug, name), ())
                    ],
                },
            }
        )
    return {"servers": servers}


def describe_server(registry: Registry, *, tenant: str, server: str) -> dict[str, Any]:
    """A server's latest tool snapshot (each tool marked exposed or filtered), its changes and discovery."""
    slug = _tenant_slug(registry, tenant)
    record = registry.fetch_state(tenants=[slug]).get(("servers", slug, server))
    if not isinstance(record, ServerRecord):
        raise ValueError(f"server {server!r} does not exist in tenant {slug!r}")
    snapshots = registry.fetch_tool_snapshots(slug, server)
    probe = registry.fetch_probe_states(tenants=[slug]).get((slug, server))
    latest = snapshots[0] if snapshots else None
    previous = snapshots[1] if len(snapshots) > 1 else None
    exposed = set(
        filter_tool_names(
            [tool.name for tool in latest.tools] if latest else [], allow=record.tools_allow, deny=record.tools_deny
        )
    )
    changes = None
    if latest is not None and previous is not None:
        diff = diff_tools(previous.tools, latest.tools)
        changes = {"added": diff.added, "removed": diff.removed, "changed": diff.changed}
    return {
        "tenant": slug,
        "name": server,
        "url": record.url,
        "transport": record.transport,
        "toolPolicy": record.tool_policy,
        "approvedHash": record.approved_hash,
        "toolFilters": {"allow": list(record.tools_allow), "deny": list(record.tools_deny)},
        "snapshot": _snapshot_json(latest, exposed=exposed),
        "previousSnapshot": None
        if previous is None
        else {"hash": previous.hash, "takenAt": previous.taken_at.isoformat(), "count": len(previous.tools)},
        "changes": changes,
        "discovery": probe.discovery if probe else None,
        "lastTest": probe.last_test if probe else None,
        "blockedReason": probe.blocked_reason if probe else None,
    }


def _snapshot_json(snapshot: ToolSnapshotRecord | None, *, exposed: set[str]) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    return {
        "hash": snapshot.hash,
        "takenAt": snapshot.taken_at.isoformat(),
        "protocolVersion": snapshot.protocol_version,
        "serverInfo": snapshot.server_info,
        "capabilities": list(snapshot.capabilities),
        "count": len(snapshot.tools),
        "tools": [
            {"name": tool.name, "title": tool.title, "description": tool.description, "exposed": tool.name in exposed}
            for tool in snapshot.tools
        ],
    }


def _condition(status: Mapping[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for condition in (status or {}).get("conditions", []):
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return {key: condition.get(key) for key in ("status", "reason", "message")}
    return None


def _tenant_slug(registry: Registry, tenant: str) -> str:
    found = registry.find_tenant(tenant)
    if found is None:
        raise UnknownTenant(f"no tenant has slug or namespace {tenant!r}")
    return found.slug


@contextmanager
def _host_logging_kept() -> Iterator[None]:
    """`MCPServer()` calls `logging.basicConfig`; the program hosting the endpoint keeps the logging it set up."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
