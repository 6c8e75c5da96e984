"""Pure helpers over tool lists: fingerprints, snapshot hashes, diffs and allow/deny filters.

The engine calls them when it records snapshots, applies tool policies, reports what changed and (`plan`) what a
change means for agents; `listing.py` fingerprints each tool it lists with them. A changed description or input
schema counts as a change: that is how tool poisoning shows up. Kept apart from `listing.py` because they need
neither the mcp SDK nor the HTTP client, so a dry run that only reads snapshots imports neither.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from reconciler.api.server import ToolChanges
from reconciler.records import ToolRecord


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
    allowed = _any_glob(tuple(allow)) if allow else None
    denied = _any_glob(tuple(deny)) if deny else None
    return [
        name
        for name in names
        if (allowed is None or allowed(name) is not None) and (denied is None or denied(name) is None)
    ]


@functools.lru_cache(maxsize=1024)
def _any_glob(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """One compiled expression matching what any of `patterns` matches (`fnmatch.fnmatchcase` semantics), kept
    across calls: a resolve filters every offered server's tools through the same few lists of globs."""
    return re.compile("|".join(fnmatch.translate(pattern) for pattern in patterns)).match
