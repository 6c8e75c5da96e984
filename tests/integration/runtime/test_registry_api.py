"""The Registry API (v0.1) end to end: `build_serving_app` under uvicorn on 127.0.0.1, plain HTTP requests with
httpx2, SQLite and PostgreSQL registries populated through the engine. Every answer is checked against the
published schema's rules (`tests/fixtures/registry_schema.py`)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest

from reconciler.demo.serving import ServerLoop
from reconciler.engine.reconciling import EngineSettings, reconcile
from reconciler.manifests import load_folder
from reconciler.registry import Registry
from reconciler.runtime import CallerDirectory, RegistryCaller, build_serving_app, resolve
from reconciler.runtime.publishing import LIVE_META_KEY
from tests.fixtures.registry_schema import OFFICIAL, check_entry, check_list
from tests.integration.runtime.world import MANIFESTS, NAMESPACE, SECRET_VALUES, TENANT, snapshot

TOKEN = "registry-api-platform-token"
ALICE = "alice-registry-token-0001"
SUPPORT = "support-registry-token-02"
PREFIX = "local.mcp-reconciler"
MAX_PAGES = 50


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def directory(*, anonymous: bool = False) -> CallerDirectory:
    return CallerDirectory(
        platform_token=TOKEN,
        members={
            sha(ALICE): RegistryCaller(member="alice", tenants=(NAMESPACE,)),
            sha(SUPPORT): RegistryCaller(member="carol", teams=("support",)),
        },
        anonymous=anonymous,
    )


@pytest.fixture
def api(registry: Registry, world: Any) -> Iterator[str]:
    """Base URL of `serve`'s app (MCP endpoint + Registry API) on an ephemeral 127.0.0.1 port."""
    with ServerLoop() as loop:
        yield loop.serve_asgi(lambda _url: build_serving_app(registry, token=TOKEN, callers=directory()))


@pytest.fixture
def open_api(registry: Registry, world: Any) -> Iterator[str]:
    with ServerLoop() as loop:
        yield loop.serve_asgi(lambda _url: build_serving_app(registry, token=TOKEN, callers=directory(anonymous=True)))


def get(base: str, path: str, *, token: str | None = TOKEN, **params: Any) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx2.Client(timeout=10.0) as http:
        return http.get(f"{base}{path}", params=params, headers=headers)


def listing(base: str, *, token: str | None = TOKEN, **params: Any) -> dict[str, Any]:
    response = get(base, "/v0.1/servers", token=token, **params)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    check_list(document)
    return document


def names(document: dict[str, Any]) -> list[str]:
    return [entry["server"]["name"] for entry in document["servers"]]


def name(server: str) -> str:
    return f"{PREFIX}.{TENANT}/{server}"


def walk(base: str, *, limit: int, **params: Any) -> list[str]:
    """Every name of a listing, page by page through `nextCursor` (bounded)."""
    seen: list[str] = []
    cursor = None
    for _ in range(MAX_PAGES):
        page = listing(base, limit=limit, **params, **({"cursor": cursor} if cursor else {}))
        assert len(page["servers"]) <= limit
        seen.extend(names(page))
        cursor = page["metadata"].get("nextCursor")
        if not cursor:
            return seen
    raise AssertionError(f"more than {MAX_PAGES} pages")


def test_the_platform_sees_every_server_as_a_valid_server_json(registry: Registry, api: str) -> None:
    document = listing(api, limit=100)

    every = sorted(name(row.server.name) for row in registry.fetch_catalog() if row.tenant.slug == TENANT)
    assert names(document) == every
    retired = next(entry for entry in document["servers"] if entry["server"]["name"] == name("retired"))
    official = retired["_meta"][OFFICIAL]
    assert (official["status"], official["statusMessage"]) == (
        "deprecated",
        f"Disabled in {NAMESPACE}: registered but not offered to agents.",
    )
    assert retired["_meta"][LIVE_META_KEY]["enabled"] is False
    assert all(
        entry["_meta"][OFFICIAL]["status"] == "active"
        for entry in document["servers"]
        if entry["server"]["name"] != name("retired")
    )
    drive = next(entry for entry in document["servers"] if entry["server"]["name"] == name("drive"))
    assert drive["server"]["remotes"] == [
        {
            "type": "streamable-http",
            "url": "https://drive.example.com/mcp",
            "headers": [
                {"name": "X-Client", "isRequired": True, "isSecret": False},
                {"name": "X-Trace", "isRequired": True, "isSecret": True},
            ],
        }
    ]
    assert drive["_meta"][OFFICIAL]["status"] == "active"
    assert drive["_meta"][OFFICIAL]["isLatest"] is True
    live = drive["_meta"][LIVE_META_KEY]
    assert live["tools"]["count"] == 3
    assert live["tools"]["hash"] == "sha256:drive-1"
    assert live["tools"]["names"] == ["list_files", "read_file", "delete_file"]
    assert (live["tenant"], live["namespace"], live["server"]) == (TENANT, NAMESPACE, "drive")


def test_live_facts_carry_health_last_probe_and_discovered_auth(api: str) -> None:
    document = listing(api, search="quarantined")

    [entry] = document["servers"]
    live = entry["_meta"][LIVE_META_KEY]
    assert live["health"]["ok"] is False
    assert live["health"]["errorClass"] == "auth"
    assert live["health"]["blockedReason"] == "quarantined by an administrator"
    assert live["lastProbe"] == "2026-01-02T03:04:05Z"
    assert live["auth"]["discovered"] == {"requiresAuth": True, "authorizationServers": ["https://as.example.com"]}
    assert live["tools"] is None


def test_auth_becomes_a_secret_header_and_no_value_or_reference_is_ever_served(api: str) -> None:
    response = get(api, "/v0.1/servers", limit=100)
    search = next(entry for entry in response.json()["servers"] if entry["server"]["name"] == name("search"))

    assert search["server"]["remotes"][0]["headers"] == [
        {"name": "X-API-Key", "description": "API key", "isRequired": True, "isSecret": True}
    ]
    assert search["_meta"][LIVE_META_KEY]["auth"] == {"type": "apiKey", "headerName": "X-API-Key", "discovered": None}
    for value in SECRET_VALUES.values():
        assert value not in response.text
    assert "creds#" not in response.text  # no secret references either
    for entry in response.json()["servers"]:
        for remote in entry["server"].get("remotes", []):
            assert all("value" not in header for header in remote.get("headers", []))


def test_pages_follow_next_cursor_and_cover_the_listing_once(api: str) -> None:
    everything = names(listing(api, limit=100))

    assert walk(api, limit=3) == everything
    assert walk(api, limit=1) == everything
    first = listing(api, limit=2)
    assert first["metadata"]["count"] == 2
    assert "nextCursor" in first["metadata"]
    assert "nextCursor" not in listing(api, limit=100)["metadata"]


def test_search_and_version_filter_the_listing(api: str) -> None:
    assert names(listing(api, search="DRIV")) == [name("drive")]
    drive = listing(api, search="drive")["servers"][0]
    version = drive["server"]["version"]

    assert names(listing(api, search="drive", version="latest")) == [name("drive")]
    assert name("drive") in names(listing(api, version=version, limit=100))
    assert names(listing(api, version="9.9.9")) == []


def test_updated_since_returns_changes_and_deletions(registry: Registry, api: str, tmp_path: Path) -> None:
    everything = listing(api, limit=100)
    newest = max(dt.datetime.fromisoformat(e["_meta"][OFFICIAL]["updatedAt"]) for e in everything["servers"])
    since = newest.isoformat().replace("+00:00", "Z")
    assert names(listing(api, updated_since=since)) == []

    # A new tool snapshot for drive, and crm removed from the manifests (pruned, so audited as deleted).
    with registry.transaction() as tx:
        later = snapshot("drive", ("list_files",), hash_="sha256:drive-2")
        tx.put_tool_snapshot(type(later)(**{**later.__dict__, "taken_at": dt.datetime.now(dt.UTC)}))
    folder = tmp_path / "without-crm"
    folder.mkdir()
    kept = [doc for doc in MANIFESTS.split("\n---\n") if "name: crm" not in doc and "serverRef: crm}" not in doc]
    (folder / "world.yaml").write_text("\n---\n".join(kept).replace("    - serverRef: crm\n", ""))
    reconcile(load_folder(folder), registry, settings=EngineSettings())

    changed = listing(api, updated_since=since)
    by_name = {entry["server"]["name"]: entry for entry in changed["servers"]}
    assert set(by_name) == {name("drive"), name("crm")}
    assert by_name[name("drive")]["_meta"][LIVE_META_KEY]["tools"]["names"] == ["list_files"]
    deleted = by_name[name("crm")]
    assert deleted["_meta"][OFFICIAL]["status"] == "deleted"
    assert "remotes" not in deleted["server"]
    assert name("crm") not in names(listing(api, limit=100))
    assert name("crm") in names(listing(api, limit=100, include_deleted="true"))


def test_versions_and_one_version_by_encoded_name(api: str) -> None:
    encoded = quote(name("drive"), safe="")
    versions = get(api, f"/v0.1/servers/{encoded}/versions")
    assert versions.status_code == 200
    check_list(versions.json())
    [entry] = versions.json()["servers"]

    latest = get(api, f"/v0.1/servers/{encoded}/versions/latest")
    exact = get(api, f"/v0.1/servers/{encoded}/versions/{quote(entry['server']['version'], safe='')}")
    assert latest.status_code == exact.status_code == 200
    check_entry(latest.json())
    assert latest.json() == exact.json() == entry
    assert get(api, f"/v0.1/servers/{encoded}/versions/0.0.1").status_code == 404
    missing = get(api, f"/v0.1/servers/{quote(name('nope'), safe='')}/versions")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Server not found"}


def test_members_see_what_their_grants_open(registry: Registry, api: str) -> None:
    alice = set(names(listing(api, token=ALICE, limit=100)))
    support = set(names(listing(api, token=SUPPORT, limit=100)))

    expected = {name(server.name) for server in resolve(registry, TENANT, user="alice").servers}
    assert alice == expected
    assert name("search") in alice  # a grant naming alice
    assert name("catalog") not in alice  # granted to team support only
    assert name("catalog") in support
    assert name("search") not in support
    assert alice < set(names(listing(api, limit=100)))
    # A member cannot read a server it may not see by name either.
    assert get(api, f"/v0.1/servers/{quote(name('catalog'), safe='')}/versions", token=ALICE).status_code == 404


def test_tokens_are_required_unless_anonymous_access_is_on(registry: Registry, api: str, open_api: str) -> None:
    missing = get(api, "/v0.1/servers", token=None)
    wrong = get(api, "/v0.1/servers", token="not-a-known-token")

    assert missing.status_code == wrong.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="mcp-reconciler"'
    assert wrong.headers["WWW-Authenticate"] == 'Bearer realm="mcp-reconciler", error="invalid_token"'
    anonymous = set(names(listing(open_api, token=None, limit=100)))
    organization = {name(server.name) for server in resolve(registry, TENANT).servers}
    assert anonymous == organization
    assert anonymous < set(names(listing(open_api, token=ALICE, limit=100)))
    assert get(open_api, "/v0.1/servers", token="not-a-known-token").status_code == 401


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "limit must be between 1 and 100"),
        ({"limit": "many"}, "limit must be an integer"),
        ({"updated_since": "yesterday"}, "updated_since must be an RFC 3339 date-time"),
        ({"updated_since": "2026-01-01T00:00:00"}, "needs a time zone offset"),
        ({"cursor": "%%%"}, "was not issued by this registry"),
        ({"include_deleted": "maybe"}, "include_deleted must be true or false"),
    ],
)
def test_bad_query_parameters_get_400_naming_the_parameter(api: str, params: dict[str, str], message: str) -> None:
    response = get(api, "/v0.1/servers", **params)

    assert response.status_code == 400
    assert message in response.json()["error"]


def test_the_mcp_endpoint_still_answers_beside_the_api(api: str) -> None:
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    with httpx2.Client(timeout=10.0) as http:
        response = http.post(f"{api}/mcp", json=request, headers={"Accept": "application/json, text/event-stream"})
    assert response.status_code == 401  # the MCP app's own gate, not the API's
