"""Tool snapshots: walking every `tools/list` page within bounds, and the pure helpers that fingerprint, hash,
diff and filter tool lists.

`probing.py` calls `fetch_all_tools` during a probe; the pure helpers the engine calls (`snapshot_hash`,
`diff_tools`, `filter_tool_names`) live in `tool_lists.py`, which needs no mcp SDK. The listing also
keeps the freshness hints a 2026-07-28 server attaches to every page (`ttlMs`, `cacheScope`), which the engine uses
to schedule the next probe and to say whose view the snapshot is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import mcp_types

from reconciler.probe.classification import ProbeFailure
from reconciler.probe.tool_lists import diff_tools as diff_tools  # re-exported: their home before they moved
from reconciler.probe.tool_lists import filter_tool_names as filter_tool_names
from reconciler.probe.tool_lists import snapshot_hash as snapshot_hash
from reconciler.probe.tool_lists import tool_fingerprint
from reconciler.records import ToolAnnotationHints, ToolRecord

PageFetcher = Callable[[str | None], Awaitable[mcp_types.ListToolsResult]]
CacheScope = Literal["public", "private"]


@dataclass(frozen=True)
class ToolListing:
    """Every tool of one listing, the pages it took, and the server's freshness hints for the whole list.

    `ttl_ms` and `cache_scope` are None when the server sent no hints (protocol revisions before 2026-07-28, whose
    results the SDK strips of them). Across pages the most cautious hint wins: the shortest `ttlMs`, and `private`
    when any page is private, because the list is only as fresh and as shareable as its least page.
    """

    tools: list[ToolRecord]
    pages: int
    ttl_ms: int | None = None
    cache_scope: CacheScope | None = None


def _merge_ttl(current: int | None, page: mcp_types.ListToolsResult) -> int | None:
    if "ttl_ms" not in page.model_fields_set:
        return current
    return page.ttl_ms if current is None else min(current, page.ttl_ms)


def _merge_scope(current: CacheScope | None, page: mcp_types.ListToolsResult) -> CacheScope | None:
    if "cache_scope" not in page.model_fields_set:
        return current
    return "private" if "private" in (current, page.cache_scope) else "public"


def tool_record(tool: mcp_types.Tool) -> ToolRecord:
    """The registry's view of one listed tool, with its fingerprint."""
    title = tool.title if tool.title is not None else (tool.annotations.title if tool.annotations else None)
    schema = dict(tool.input_schema)
    return ToolRecord(
        name=tool.name,
        title=title,
        description=tool.description,
        input_schema=schema,
        fingerprint=tool_fingerprint(tool.name, title, tool.description, schema),
        annotations=_hints(tool.annotations),
    )


def _hints(annotations: mcp_types.ToolAnnotations | None) -> ToolAnnotationHints:
    if annotations is None:
        return ToolAnnotationHints()
    return ToolAnnotationHints(
        read_only_hint=annotations.read_only_hint,
        destructive_hint=annotations.destructive_hint,
        idempotent_hint=annotations.idempotent_hint,
        open_world_hint=annotations.open_world_hint,
    )


async def fetch_all_tools(
    fetch_page: PageFetcher, *, max_pages: int, max_tools: int, on_page: Callable[[int], None] | None = None
) -> ToolListing:
    """Every tool across every page, the number of pages and the freshness hints; a server past either bound fails
    the probe.

    Exceeding a bound is a protocol-class failure rather than a silent truncation: a partial snapshot would make
    every later diff report tools as removed.
    """
    tools: list[ToolRecord] = []
    cursor: str | None = None
    pages = 0
    ttl_ms: int | None = None
    scope: CacheScope | None = None
    while True:
        if on_page is not None:
            on_page(pages + 1)
        page = await fetch_page(cursor)
        pages += 1
        tools.extend(tool_record(tool) for tool in page.tools)
        ttl_ms, scope = _merge_ttl(ttl_ms, page), _merge_scope(scope, page)
        if len(tools) > max_tools:
            raise ProbeFailure("protocol", f"server lists more than {max_tools} tools (max_tools)")
        cursor = page.next_cursor
        if not cursor:
            return ToolListing(tools=tools, pages=pages, ttl_ms=ttl_ms, cache_scope=scope)
        if pages >= max_pages:
            raise ProbeFailure("protocol", f"server returned more than {max_pages} pages of tools (max_pages)")
