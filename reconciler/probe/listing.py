"""Tool snapshots: walking every `tools/list` page within bounds, and the pure helpers that fingerprint, hash,
diff and filter tool lists.

`probing.py` calls `fetch_all_tools` during a probe; the engine calls the pure helpers (`snapshot_hash`,
`diff_tools`, `filter_tool_names`) when it records snapshots, applies tool policies and reports what changed.
A changed description or input schema counts as a change: that is how tool poisoning shows up. The listing also
keeps the freshness hints a 2026-07-28 server attaches to every page (`ttlMs`, `cacheScope`), which the engine uses
to schedule the next probe and to say whose view the snapshot is.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import mcp_types

from reconciler.api.server import ToolChanges
from reconciler.probe.classification import ProbeFailure
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


def _canonical_json(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _sha256(data: Any) -> str:
    return "sha256:" + hashlib.sha256(_canonical_json(data)).hexdigest()


def tool_fingerprint(name: str, title: str | None, description: str | None, input_schema: Any) -> str:
    """`sha256:<hex>` over the parts of a tool definition an agent acts on."""
    return _sha256({"name": name, "title": title, "description": description, "inputSchema": input_schema})


def _fingerprint_of(tool: ToolRecord) -> str:
    return tool.fingerprint or tool_fingerprint(tool.name, tool.title, tool.description, tool.input_schema)


def snapshot_hash(tools: Iterable[ToolRecord]) -> str:
    """`sha256:<hex>` of a tool list, independent of the order the server listed it in."""
    entries = sorted((tool.name, _fingerprint_of(tool)) for tool in tools)
    return _sha256([[name, fingerprint] for name, fingerprint in entries])


def diff_tools(old: Sequence[ToolRecord], new: Sequence[ToolRecord]) -> ToolChanges:
    """Names added, removed and changed (any change to title, description or schema), each sorted."""
    before = {tool.name: _fingerprint_of(tool) for tool in old}
    after = {tool.name: _fingerprint_of(tool) for tool in new}
    return ToolChanges(
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        changed=sorted(name for name in before.keys() & after.keys() if before[name] != after[name]),
    )


def filter_tool_names(names: Iterable[str], *, allow: Sequence[str], deny: Sequence[str]) -> list[str]:
    """Names an agent may see, in input order: matching an allow glob (all, when none are given) and no deny glob."""
    return [
        name
        for name in names
        if (not allow or any(fnmatch.fnmatchcase(name, pattern) for pattern in allow))
        and not any(fnmatch.fnmatchcase(name, pattern) for pattern in deny)
    ]


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
