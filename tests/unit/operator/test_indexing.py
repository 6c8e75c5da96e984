"""The object index the operator keeps from watch events: by uid, by namespace, and the readers of each Secret."""

from __future__ import annotations

from typing import Any

from reconciler.operator.indexing import ObjectIndex


def _entry(name: str, namespace: str = "team-a") -> dict[str, Any]:
    return {"kind": "MCPConnection", "metadata": {"name": name, "namespace": namespace}}


def test_objects_are_found_by_uid_and_namespace_until_removed() -> None:
    index = ObjectIndex()
    index.put("u1", "team-a", _entry("a"), {})
    index.put("u2", "team-a", _entry("b"), {})
    index.put("u3", "team-b", _entry("c", "team-b"), {})
    assert index.body("u1") == _entry("a")
    assert sorted(peer["metadata"]["name"] for peer in index.peers("team-a")) == ["a", "b"]
    newer = {**_entry("a"), "status": {"observedGeneration": 2}}
    index.put("u1", "team-a", newer, {})
    assert index.body("u1") is newer and len(list(index.peers("team-a"))) == 2, "a newer event replaces the entry"
    index.remove("u1")
    index.remove("u3")
    index.remove("unknown")
    assert index.body("u1") is None and [peer["metadata"]["name"] for peer in index.peers("team-a")] == ["b"]
    assert list(index.peers("team-b")) == [] and len(index) == 1


def test_a_secrets_readers_follow_what_each_object_reads_now() -> None:
    index = ObjectIndex()
    index.put("u1", "team-a", _entry("a"), {("team-a", "token"): ("MCPConnection", "a")})
    index.put("u2", "team-a", _entry("b"), {("team-a", "token"): ("MCPConnection", "b")})
    assert sorted(index.readers("team-a", "token")) == [("MCPConnection", "a"), ("MCPConnection", "b")]
    index.put("u1", "team-a", _entry("a"), {("team-a", "other"): ("MCPConnection", "a")})  # its spec changed
    assert index.readers("team-a", "token") == [("MCPConnection", "b")]
    assert index.readers("team-a", "other") == [("MCPConnection", "a")]
    index.remove("u2")
    assert index.readers("team-a", "token") == [] and index.readers("team-b", "other") == []
