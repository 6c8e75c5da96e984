"""Small helpers the e2e tests share: manifests, condition checks, bounded waits on the cluster and registry."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler.api import kind_for
from reconciler.registry import Registry, open_registry
from tests.e2e.kube import REPO, KubeHttp, custom_path, wait_for

GROUP_VERSION = "mcp.reconciler.dev/v1alpha1"
READY_TIMEOUT = 60.0
"""A bound for liveness, not a speed target: a busy 2-core CI machine must never hit it."""


def server(namespace: str, name: str, *, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    """An MCPServer manifest; discovery is off unless the spec says otherwise (no MCP server runs here)."""
    body_spec: dict[str, Any] = {"url": f"https://{name}.example.com/mcp", "discovery": {"enabled": False}}
    body_spec.update(spec)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": GROUP_VERSION, "kind": "MCPServer", "metadata": metadata, "spec": body_spec}


def secret(namespace: str, name: str, data: dict[str, str], *, labelled: bool = True) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labelled:
        metadata["labels"] = {"mcp.reconciler.dev/credential": "true"}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "stringData": data}


@dataclass(frozen=True)
class Ref:
    """One of our objects in the cluster."""

    kind: str
    namespace: str
    name: str

    @property
    def path(self) -> str:
        return custom_path(self.namespace, kind_for(self.kind).plural, self.name)

    @property
    def collection(self) -> str:
        return custom_path(self.namespace, kind_for(self.kind).plural)

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def create(kube: KubeHttp, manifest: Mapping[str, Any]) -> Ref:
    ref = Ref(manifest["kind"], manifest["metadata"]["namespace"], manifest["metadata"]["name"])
    kube.post(ref.collection, manifest)
    return ref


def get(kube: KubeHttp, ref: Ref) -> dict[str, Any] | None:
    found: dict[str, Any] | None = kube.maybe_get(ref.path)
    return found


def condition(obj: Mapping[str, Any] | None, type_: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or ():
        if item.get("type") == type_:
            return dict(item)
    return {}


def is_ready(obj: Mapping[str, Any] | None) -> bool:
    """Ready and Synced True for the object's current generation."""
    if not obj:
        return False
    generation = obj["metadata"].get("generation")
    status = obj.get("status") or {}
    return (
        status.get("observedGeneration") == generation
        and condition(obj, "Ready").get("status") == "True"
        and condition(obj, "Synced").get("status") == "True"
    )


def wait_ready(kube: KubeHttp, ref: Ref, *, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = get(kube, ref)
        return obj if is_ready(obj) else None

    return wait_for(ready, timeout=timeout, what=f"{ref} to be Ready and Synced")


def wait_condition(
    kube: KubeHttp,
    ref: Ref,
    *,
    type_: str,
    status: str,
    reason: str | None = None,
    timeout: float = READY_TIMEOUT,
) -> dict[str, Any]:
    def matches() -> dict[str, Any] | None:
        obj = get(kube, ref)
        found = condition(obj, type_)
        if found.get("status") == status and (reason is None or found.get("reason") == reason):
            return obj
        return None

    return wait_for(matches, timeout=timeout, what=f"{ref} {type_}={status} ({reason})")


def wait_gone(kube: KubeHttp, ref: Ref, *, timeout: float = READY_TIMEOUT) -> None:
    wait_for(lambda: get(kube, ref) is None, timeout=timeout, what=f"{ref} to be deleted")


def events(
    kube: KubeHttp, namespace: str, *, name: str | None = None, reason: str | None = None
) -> list[dict[str, Any]]:
    items = kube.get(f"/api/v1/namespaces/{namespace}/events")["items"]
    return [
        item
        for item in items
        if (name is None or item["involvedObject"]["name"] == name) and (reason is None or item["reason"] == reason)
    ]


def wait_event(
    kube: KubeHttp, namespace: str, *, name: str, reason: str, timeout: float = READY_TIMEOUT
) -> dict[str, Any]:
    found = wait_for(
        lambda: events(kube, namespace, name=name, reason=reason),
        timeout=timeout,
        what=f"an Event {reason} for {namespace}/{name}",
    )
    return found[0]


def annotate(kube: KubeHttp, ref: Ref, annotations: Mapping[str, str | None]) -> None:
    kube.patch(ref.path, {"metadata": {"annotations": dict(annotations)}})


def resource_version(kube: KubeHttp, ref: Ref) -> str:
    obj = get(kube, ref)
    assert obj is not None, f"{ref} is gone"
    return str(obj["metadata"]["resourceVersion"])


@contextmanager
def registry_at(url: str) -> Iterator[Registry]:
    registry = open_registry(url)
    try:
        yield registry
    finally:
        registry.close()


def example_manifests(folder: Path) -> list[dict[str, Any]]:
    """Every document of an example folder, Namespaces first, then ConfigMaps and Secrets, then our kinds."""
    documents = []
    for path in sorted(folder.glob("*.yaml")):
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    order = {"Namespace": 0, "ConfigMap": 1, "Secret": 1}
    return sorted(documents, key=lambda doc: order.get(doc["kind"], 2))


def example_folders() -> list[Path]:
    return sorted(path for path in (REPO / "examples").iterdir() if path.is_dir())


def sleep_through(seconds: float) -> None:
    """Let the operator run for a while (used where the point is that nothing happens)."""
    time.sleep(seconds)


def settled_versions(kube: KubeHttp, refs: list[Ref], *, quiet: float = 2.0, timeout: float = 30.0) -> dict[Ref, str]:
    """The objects' resourceVersions once none has moved for `quiet` seconds (kopf's own bookkeeping patch,
    after a retried handler succeeds, can land after the status already reads Ready)."""
    deadline = time.monotonic() + timeout
    last = {ref: resource_version(kube, ref) for ref in refs}
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet:
        if time.monotonic() > deadline:
            raise AssertionError(f"objects still being written after {timeout:.0f}s")
        time.sleep(0.3)
        current = {ref: resource_version(kube, ref) for ref in refs}
        if current != last:
            last, quiet_since = current, time.monotonic()
    return last
