"""A bounded, SSRF-guarded client for another MCP Registry API (v0.1): one server's entry, or what changed.

`mcp-reconciler import --from URL --server NAME` calls `fetch_entry_sync`; the upstream lifecycle check calls
`fetch_changes`. Every request goes through `ProbeHttp`'s guarded backend (loopback and private addresses only
with `allow_private`), with the probe's timeouts and response-size bound, no redirects and no proxy from the
environment. Answers are returned as parsed JSON; validating them is `reconciler.api.serverjson`'s job.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any
from urllib.parse import quote

import httpx2

from reconciler.errors import PermanentError, RetryableError
from reconciler.probe.settings import ProbeSettings
from reconciler.probe.ssrf import BlockedDestination, url_problem
from reconciler.probe.tracing import HttpTrace, display_url
from reconciler.probe.transports import ProbeHttp, request_timeout

MAX_PAGES = 20
"""Pages of `updated_since` followed at most per check: a bound, not an expectation."""
PAGE_LIMIT = 100


class UpstreamNotFound(PermanentError):
    """The registry answered, and has no such server (or version)."""


class UpstreamUnavailable(RetryableError):
    """The registry could not be reached or gave no usable answer; try again later."""


class UpstreamRefused(PermanentError):
    """The registry's address is not allowed (SSRF guard) or its URL is not usable."""


def _base(url: str) -> str:
    problem = url_problem(url)
    if problem is not None:
        raise UpstreamRefused(f"registry {url}: {problem}")
    return url.rstrip("/")


async def _get_json(
    url: str, *, settings: ProbeSettings, allow_private: bool, token: str | None, params: dict[str, str] | None = None
) -> Any:
    headers = {"accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    shown = display_url(url)
    async with ProbeHttp() as http:
        client = http.client(
            allow_private=allow_private,
            trace=HttpTrace(),
            timeout=request_timeout(settings),
            max_response_bytes=settings.max_response_bytes,
            headers=headers,
        )
        async with client:
            try:
                response = await asyncio.wait_for(client.get(url, params=params), timeout=settings.total_timeout)
            except TimeoutError:
                raise UpstreamUnavailable(f"registry {shown}: no answer within {settings.total_timeout:g}s") from None
            except httpx2.HTTPError as err:
                if _is_blocked(err):
                    raise UpstreamRefused(f"registry {shown}: blocked: {err}") from None
                raise UpstreamUnavailable(f"registry {shown}: {type(err).__name__}: {err}") from None
    if response.status_code == 404:
        raise UpstreamNotFound(f"registry {shown}: not found")
    if response.status_code in (401, 403):
        raise UpstreamRefused(f"registry {shown}: {response.status_code} (a token may be needed)")
    if response.status_code != 200:
        raise UpstreamUnavailable(f"registry {shown}: HTTP {response.status_code}")
    try:
        return json.loads(response.content)
    except ValueError:
        raise UpstreamUnavailable(f"registry {shown}: the answer is not JSON") from None


def _is_blocked(exc: BaseException) -> bool:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, BlockedDestination):
            return True
        current = current.__cause__ or current.__context__
    return False


async def fetch_entry(
    registry: str,
    name: str,
    *,
    version: str = "latest",
    settings: ProbeSettings,
    allow_private: bool = False,
    token: str | None = None,
) -> Any:
    """`GET /v0.1/servers/{name}/versions/{version}`: one `ServerResponse`, as JSON."""
    url = f"{_base(registry)}/v0.1/servers/{quote(name, safe='')}/versions/{quote(version, safe='')}"
    return await _get_json(url, settings=settings, allow_private=allow_private, token=token)


def fetch_entry_sync(
    registry: str,
    name: str,
    *,
    version: str = "latest",
    settings: ProbeSettings,
    allow_private: bool = False,
    token: str | None = None,
) -> Any:
    return asyncio.run(
        fetch_entry(registry, name, version=version, settings=settings, allow_private=allow_private, token=token)
    )


async def fetch_changes(
    registry: str,
    *,
    since: dt.datetime | None,
    settings: ProbeSettings,
    allow_private: bool = False,
    token: str | None = None,
) -> list[Any]:
    """Every entry updated after `since` (deleted ones included), following `nextCursor` up to `MAX_PAGES`."""
    url = f"{_base(registry)}/v0.1/servers"
    params = {"limit": str(PAGE_LIMIT)}
    if since is not None:
        params["updated_since"] = since.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    else:
        params["include_deleted"] = "true"
    entries: list[Any] = []
    for _page in range(MAX_PAGES):
        document = await _get_json(url, settings=settings, allow_private=allow_private, token=token, params=params)
        if not isinstance(document, dict) or not isinstance(document.get("servers"), list):
            raise UpstreamUnavailable(f"registry {display_url(url)}: the answer is not a server list")
        entries.extend(document["servers"])
        metadata = document.get("metadata")
        cursor = metadata.get("nextCursor") if isinstance(metadata, dict) else None
        if not cursor:
            return entries
        params["cursor"] = str(cursor)
    raise UpstreamUnavailable(f"registry {display_url(url)}: more than {MAX_PAGES} pages of changes")
