"""kopf's diff base in memory: kopf sees each object's last handled essence without an annotation on the object."""

from __future__ import annotations

from typing import Any

import kopf

from reconciler.operator.handled import HandledSpecs


def _body(uid: str, *, spec: dict[str, Any], deleting: bool = False) -> kopf.Body:
    metadata: dict[str, Any] = {"name": "a", "namespace": "ns", "uid": uid, "annotations": {"team": "x"}}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-07T00:00:00Z"
    return kopf.Body(
        {"apiVersion": "mcp.reconciler.dev/v1alpha1", "kind": "MCPServer", "metadata": metadata, "spec": spec}
    )


def test_an_object_is_new_until_its_essence_is_stored_and_nothing_goes_into_the_patch() -> None:
    handled = HandledSpecs()
    body = _body("u1", spec={"url": "http://127.0.0.1:1/mcp"})
    assert handled.fetch(body=body) is None  # kopf's CREATE
    essence = handled.build(body=body)
    patch = kopf.Patch()
    handled.store(body=body, patch=patch, essence=essence)
    assert not patch, "no write to the object"
    assert handled.fetch(body=body) == essence  # kopf's NOOP on the next event
    changed = _body("u1", spec={"url": "http://127.0.0.1:2/mcp"})
    assert handled.fetch(body=changed) != handled.build(body=changed)  # kopf's UPDATE
    assert handled.fetch(body=_body("u2", spec={})) is None, "by uid: another object is new"


def test_a_stored_essence_is_a_copy_and_a_finalized_object_is_forgotten() -> None:
    handled = HandledSpecs()
    body = _body("u1", spec={"tools": ["a"]})
    essence = handled.build(body=body)
    handled.store(body=body, patch=kopf.Patch(), essence=essence)
    essence["spec"]["tools"].append("b")
    assert handled.fetch(body=body) == {"spec": {"tools": ["a"]}, "metadata": {"annotations": {"team": "x"}}}
    handled.forget("u1")
    assert handled.fetch(body=body) is None and len(handled) == 0


def test_a_deleting_object_is_not_stored_again_after_its_finalizer_forgot_it() -> None:
    handled = HandledSpecs()
    deleting = _body("u1", spec={}, deleting=True)
    handled.store(body=deleting, patch=kopf.Patch(), essence=handled.build(body=deleting))
    assert len(handled) == 0
