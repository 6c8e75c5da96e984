"""The MCP Registry API (v0.1) over the registry: `GET /v0.1/servers`, `/versions` and `/versions/{version}`.

Built by `build_registry_api` and mounted next to the agent MCP endpoint by `build_serving_app`, which
`serve_mcp` (the CLI's `serve`) runs; tests serve it with uvicorn on 127.0.0.1. Read-only: every answer is
built from `Registry.fetch_catalog` by `publishing.py`.

Who sees what. Every request is mapped to a `RegistryCaller` from its bearer token (`CallerDirectory`):

- the serving token (the one the MCP endpoint takes) is the platform's: every server (a disabled one as
  `deprecated`), and deleted ones;
- a token listed in the callers file is a member: `member`, `teams` and optionally `tenants`. The file holds
  only each token's SHA-256, so it can live in git or a ConfigMap. A member sees, in each of its tenants, the
  servers a grant opens to them (the same decision `resolve` makes without a template: a grant naming the
  member, one of their teams or the organization, on the server or one of its connections);
- with `anonymous` set, a request without a token sees what grants to the organization open, which is what an
  IDE gallery that sends no credentials gets. Otherwise it gets 401.

With a platform tenant (`serve --platform-namespace`), its featured servers are listed to every caller exactly as
`resolve` offers them as the last fallback: featured, enabled, and opened by a grant naming the Organization in the
platform namespace. Their entries are the platform's own (its name prefix, its live facts); nothing of the caller's
tenant goes into them, and no caller sees another tenant's servers through them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from reconciler.registry import Registry
from reconciler.runtime.choosing import Caller
from reconciler.runtime.publishing import (
    DEFAULT_NAME_PREFIX,
    InvalidQuery,
    build_entry,
    entry_name,
    entry_status,
    page_entries,
    parse_flag,
    parse_query,
    registry_name,
    removed_entry,
)
from reconciler.runtime.resolution import ServerState
from reconciler.runtime.resolving import fetch_decisions

API_PREFIX = "/v0.1"
REALM = "mcp-reconciler"
TOKEN_HASH_LENGTH = 64


@dataclass(frozen=True)
class RegistryCaller:
    """Who a request speaks for. `platform` sees everything; otherwise grants decide, per tenant."""

    platform: bool = False
    member: str | None = None
    teams: tuple[str, ...] = ()
    tenants: tuple[str, ...] | None = None
    """Slugs or namespaces the caller belongs to; None: every tenant."""


PLATFORM = RegistryCaller(platform=True)
ANONYMOUS = RegistryCaller()


@dataclass(frozen=True)
class CallerDirectory:
    """Bearer token → caller. `platform_token` is kept as given; members are known by their tokens' SHA-256."""

    platform_token: str
    members: Mapping[str, RegistryCaller] = field(default_factory=dict)
    anonymous: bool = False

    def caller_for(self, authorization: str) -> RegistryCaller | None:
        """The caller for an `Authorization` header value ('' when absent); None: refuse with 401."""
        scheme, _, presented = authorization.partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            return ANONYMOUS if self.anonymous and not authorization else None
        if hmac.compare_digest(presented.encode(), self.platform_token.encode()):
            return PLATFORM
        digest = hashlib.sha256(presented.encode()).hexdigest()
        for known, caller in self.members.items():
            if hmac.compare_digest(known, digest):
                return caller
        return None


def load_callers(document: Any, *, source: str) -> dict[str, RegistryCaller]:
    """The callers file (`callers: [{tokenSha256, member, teams, tenants}]`) → token hash → caller.

    `ValueError` names the file, the entry and the field that is wrong.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("callers"), list):
        raise ValueError(f"{source}: expected a mapping with a `callers` list")
    callers: dict[str, RegistryCaller] = {}
    for index, entry in enumerate(document["callers"]):
        where = f"{source}: callers[{index}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected a mapping")
        unknown = set(entry) - {"tokenSha256", "member", "teams", "tenants"}
        if unknown:
            raise ValueError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        digest = entry.get("tokenSha256")
        if not isinstance(digest, str) or len(digest) != TOKEN_HASH_LENGTH or not _is_hex(digest):
            raise ValueError(f"{where}.tokenSha256: expected 64 lowercase hex digits (sha256 of the token)")
        member = entry.get("member")
        if member is not None and (not isinstance(member, str) or not member):
            raise ValueError(f"{where}.member: expected a non-empty string")
        teams = _strings(entry.get("teams", []), where=f"{where}.teams")
        tenants = None if entry.get("tenants") is None else _strings(entry["tenants"], where=f"{where}.tenants")
        if digest in callers:
            raise ValueError(f"{where}.tokenSha256: the same token is listed twice")
        callers[digest] = RegistryCaller(member=member, teams=teams, tenants=tenants)
    return callers


def _is_hex(text: str) -> bool:
    return all(char in "0123456789abcdef" for char in text)


def _strings(value: Any, *, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def visible_entries(
    registry: Registry, caller: RegistryCaller, *, prefix: str, platform_tenant: str | None = None
) -> list[dict[str, Any]]:
    """Every entry `caller` may see: the servers it is granted (every one, disabled and deleted ones included, for
    the platform), and the featured servers of `platform_tenant` that `resolve` would offer the caller."""
    rows = registry.fetch_catalog()
    if caller.platform:
        allowed = {(row.tenant.slug, row.server.name) for row in rows}
    else:
        tenants = {row.tenant.slug: row.tenant.namespace for row in rows}
        # A platform namespace nothing was applied to yet offers nothing (resolve would refuse it as unknown).
        platform = platform_tenant if platform_tenant and registry.find_tenant(platform_tenant) else None
        allowed = _granted(registry, caller, tenants=tenants, platform_tenant=platform)
    entries = [build_entry(row, prefix=prefix) for row in rows if (row.tenant.slug, row.server.name) in allowed]
    if caller.platform:
        present = {entry_name(entry) for entry in entries}
        for removed in registry.fetch_removed_servers():
            if registry_name(removed.tenant, removed.name, prefix=prefix) not in present:
                entries.append(removed_entry(removed, prefix=prefix))
    return entries


def _granted(
    registry: Registry, caller: RegistryCaller, *, tenants: Mapping[str, str], platform_tenant: str | None
) -> set[tuple[str, str]]:
    """(tenant, server) pairs a grant opens to the caller: resolution's decisions without a template, forbidden ones
    left out. A platform server is keyed by the platform tenant, the row it is published from."""
    wanted: Iterable[str] = tenants
    if caller.tenants is not None:
        # Each name means one tenant, found as `resolve` finds it (slug first): a namespace can be another tenant's
        # slug, and matching either would open both tenants to the caller.
        found = (registry.find_tenant(name) for name in dict.fromkeys(caller.tenants))
        named = {tenant.slug for tenant in found if tenant is not None}
        wanted = [slug for slug in tenants if slug in named]
    granted: set[tuple[str, str]] = set()
    who = Caller(user=caller.member, teams=tuple(dict.fromkeys(caller.teams)))
    for slug in wanted:
        _, decisions = fetch_decisions(registry, slug, template=None, caller=who, platform_tenant=platform_tenant)
        granted.update(
            (decision.server.tenant, decision.server.name)
            for decision in decisions.servers
            if decision.state is not ServerState.FORBIDDEN
        )
    return granted


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def build_registry_api(
    registry: Registry,
    *,
    callers: CallerDirectory,
    prefix: str = DEFAULT_NAME_PREFIX,
    platform_tenant: str | None = None,
) -> Starlette:
    """The v0.1 routes as a Starlette app (paths include `/v0.1`); the caller keeps `registry` open meanwhile.
    `platform_tenant`: the platform whose featured servers every caller is offered (see the module's docstring)."""

    def visible(caller: RegistryCaller) -> list[dict[str, Any]]:
        return visible_entries(registry, caller, prefix=prefix, platform_tenant=platform_tenant)

    def authorised(
        handler: Callable[[Request, RegistryCaller], Response],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            caller = callers.caller_for(request.headers.get("authorization", ""))
            if caller is None:
                presented = "authorization" in request.headers
                challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if presented else "")
                return JSONResponse(
                    {"error": "the bearer token is not valid" if presented else "a bearer token is required"},
                    status_code=401,
                    headers={"WWW-Authenticate": challenge},
                )
            try:
                return handler(request, caller)
            except InvalidQuery as err:
                return _error(400, str(err))

        return endpoint

    def list_servers(request: Request, caller: RegistryCaller) -> Response:
        query = parse_query(request.query_params)
        return JSONResponse(page_entries(visible(caller), query))

    def versions(request: Request, caller: RegistryCaller) -> Response:
        found = _named(request, caller)
        if not found:
            return _error(404, "Server not found")
        return JSONResponse({"servers": found, "metadata": {"count": len(found)}})

    def version(request: Request, caller: RegistryCaller) -> Response:
        wanted = unquote(request.path_params["version"])
        for entry in _named(request, caller):
            if wanted in ("latest", entry["server"]["version"]):
                return JSONResponse(entry)
        return _error(404, "Server not found")

    def _named(request: Request, caller: RegistryCaller) -> list[dict[str, Any]]:
        name = unquote(request.path_params["name"])
        with_deleted = parse_flag(request.query_params.get("include_deleted"), name="include_deleted")
        return [
            entry
            for entry in visible(caller)
            if entry_name(entry) == name and (with_deleted or entry_status(entry) != "deleted")
        ]

    routes = [
        Route(f"{API_PREFIX}/servers", authorised(list_servers), methods=["GET"]),
        # The name holds a `/` (`namespace/name`): clients send it encoded as %2F, some servers decode it first.
        Route(f"{API_PREFIX}/servers/{{name:path}}/versions", authorised(versions), methods=["GET"]),
        Route(f"{API_PREFIX}/servers/{{name:path}}/versions/{{version}}", authorised(version), methods=["GET"]),
    ]
    return Starlette(routes=routes)


class PathDispatcher:
    """ASGI: requests under `/v0.1` go to the Registry API, everything else (and the lifespan) to `fallback`."""

    def __init__(self, api: ASGIApp, fallback: ASGIApp) -> None:
        self._api = api
        self._fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            await self._api(scope, receive, send)
        else:
            await self._fallback(scope, receive, send)


def member_token_hash(token: str) -> str:
    """What goes into the callers file for `token` (`mcp-reconciler` never stores the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()
