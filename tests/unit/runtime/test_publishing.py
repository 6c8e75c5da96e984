"""Registry rows → v0.1 entries, paging, query parsing and the callers file: pure, table-driven."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from reconciler.registry.catalog import CatalogRow, RemovedServer
from reconciler.registry.records import HeaderRecord, ServerRecord, TenantRecord
from reconciler.runtime import CallerDirectory, RegistryCaller, build_entry, load_callers, page_entries
from reconciler.runtime.publishing import (
    LIVE_META_KEY,
    OFFICIAL_META_KEY,
    InvalidQuery,
    Query,
    encode_cursor,
    parse_query,
    removed_entry,
)
from reconciler.runtime.registry_api import ANONYMOUS, PLATFORM, member_token_hash

AT = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
TENANT = TenantRecord(slug="acme", namespace="acme-prod")


def row(name: str = "docs", *, at: dt.datetime = AT, **fields: Any) -> CatalogRow:
    server = ServerRecord(tenant="acme", name=name, url=f"https://{name}.example.com/mcp", **fields)
    return CatalogRow(tenant=TENANT, server=server, published_at=AT, updated_at=at)


def test_an_entry_has_name_version_description_and_remote() -> None:
    entry = build_entry(row(description="Docs " * 40, display_name="Docs"))

    server = entry["server"]
    assert server["name"] == "local.mcp-reconciler.acme/docs"
    assert server["version"] == f"1.0.{int(AT.timestamp())}"
    assert len(server["description"]) == 100
    assert server["description"].endswith("…")
    assert server["title"] == "Docs"
    assert server["remotes"] == [{"type": "streamable-http", "url": "https://docs.example.com/mcp"}]
    assert entry["_meta"][OFFICIAL_META_KEY] == {
        "status": "active",
        "publishedAt": "2026-03-04T05:06:07Z",
        "updatedAt": "2026-03-04T05:06:07Z",
        "isLatest": True,
    }
    assert entry["_meta"][LIVE_META_KEY]["tools"] is None


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        ({}, None),
        (
            {"auth_type": "bearer", "auth": {"secretRef": "ns/s#k", "secretFingerprint": "fp", "scheme": "Token"}},
            [{"name": "Authorization", "description": "Token token", "isRequired": True, "isSecret": True}],
        ),
        (
            {"headers": (HeaderRecord("X-Tenant", value="acme"), HeaderRecord("X-Key", secret_ref="ns/s#k"))},
            [
                {"name": "X-Tenant", "isRequired": True, "isSecret": False},
                {"name": "X-Key", "isRequired": True, "isSecret": True},
            ],
        ),
    ],
)
def test_headers_are_published_by_name_never_by_value(fields: dict[str, Any], headers: Any) -> None:
    entry = build_entry(row(**fields))

    assert entry["server"]["remotes"][0].get("headers") == headers
    assert "ns/s#k" not in repr(entry)
    assert 'acme"' not in repr(entry["server"]["remotes"])


def test_a_websocket_server_has_no_remote_and_a_default_description() -> None:
    entry = build_entry(row(transport="websocket"))

    assert "remotes" not in entry["server"]
    assert entry["server"]["description"] == "MCP server docs of acme-prod"
    assert entry["_meta"][LIVE_META_KEY]["transport"] == "websocket"


def test_a_removed_server_is_a_deleted_entry() -> None:
    entry = removed_entry(RemovedServer(tenant="acme", name="old", removed_at=AT))

    assert entry["server"]["name"] == "local.mcp-reconciler.acme/old"
    assert entry["_meta"][OFFICIAL_META_KEY]["status"] == "deleted"
    assert entry["_meta"][OFFICIAL_META_KEY]["statusChangedAt"] == "2026-03-04T05:06:07Z"


ENTRIES = [build_entry(row(name, at=AT + dt.timedelta(minutes=i))) for i, name in enumerate("edcba")]
GONE = removed_entry(RemovedServer(tenant="acme", name="zz", removed_at=AT + dt.timedelta(hours=1)))


def page_names(query: Query, entries: list[dict[str, Any]] = ENTRIES) -> tuple[list[str], str | None]:
    page = page_entries(entries, query)
    assert page["metadata"]["count"] == len(page["servers"])
    return [e["server"]["name"].split("/")[1] for e in page["servers"]], page["metadata"].get("nextCursor")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query(), (["a", "b", "c", "d", "e"], None)),
        (Query(limit=2), (["a", "b"], encode_cursor("local.mcp-reconciler.acme/b"))),
        (
            Query(limit=2, cursor=encode_cursor("local.mcp-reconciler.acme/b")),
            (["c", "d"], encode_cursor("local.mcp-reconciler.acme/d")),
        ),
        (Query(search="ACME/C"), (["c"], None)),
        (Query(updated_since=AT + dt.timedelta(minutes=2)), (["a", "b", "zz"], None)),
        (Query(include_deleted=True, limit=100), (["a", "b", "c", "d", "e", "zz"], None)),
        (Query(version="latest"), (["a", "b", "c", "d", "e"], None)),
        (Query(version=f"1.0.{int(AT.timestamp())}"), (["e"], None)),
    ],
)
def test_paging_filters_orders_and_cuts(query: Query, expected: tuple[list[str], str | None]) -> None:
    assert page_names(query, [*ENTRIES, GONE]) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "101"}, "limit must be between 1 and 100"),
        ({"updated_since": "2026-13-01T00:00:00Z"}, "RFC 3339"),
        ({"cursor": "***"}, "not issued by this registry"),
    ],
)
def test_bad_parameters_are_refused_by_name(params: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidQuery, match=message):
        parse_query(params)


def test_good_parameters_parse() -> None:
    query = parse_query({"limit": "5", "updated_since": "2026-01-01T01:00:00+01:00", "include_deleted": "true"})

    assert query == Query(limit=5, updated_since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), include_deleted=True)


def test_tokens_map_to_callers_by_their_hash() -> None:
    alice = RegistryCaller(member="alice", teams=("sales",))
    directory = CallerDirectory(platform_token="platform-token", members={member_token_hash("alice-token"): alice})
    open_directory = CallerDirectory(platform_token="platform-token", anonymous=True)

    assert directory.caller_for("Bearer platform-token") is PLATFORM
    assert directory.caller_for("bearer alice-token") == alice
    assert directory.caller_for("Bearer other") is None
    assert directory.caller_for("Basic alice-token") is None
    assert directory.caller_for("") is None
    assert open_directory.caller_for("") is ANONYMOUS
    assert open_directory.caller_for("Bearer wrong") is None


def test_the_callers_file_is_read_and_checked_by_entry_and_field() -> None:
    digest = member_token_hash("t")
    callers = load_callers(
        {"callers": [{"tokenSha256": digest, "member": "bob", "teams": ["ops"], "tenants": ["acme"]}]}, source="c.yaml"
    )
    assert callers == {digest: RegistryCaller(member="bob", teams=("ops",), tenants=("acme",))}

    for document, message in [
        ({"callers": [{"tokenSha256": "abc"}]}, r"c.yaml: callers\[0\].tokenSha256: expected 64 lowercase hex"),
        ({"callers": [{"tokenSha256": digest, "teams": "ops"}]}, r"callers\[0\].teams: expected a list"),
        ({"callers": [{"tokenSha256": digest, "token": "x"}]}, r"callers\[0\]: unknown field 'token'"),
        ({"callers": [{"tokenSha256": digest}, {"tokenSha256": digest}]}, r"callers\[1\].tokenSha256: the same token"),
        ([], "expected a mapping with a `callers` list"),
    ]:
        with pytest.raises(ValueError, match=message):
            load_callers(document, source="c.yaml")
