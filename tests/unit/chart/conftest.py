"""Fixtures for the Helm chart tests: the chart loaded by Helm itself, and `helm template` / `helm lint` over it.

Rendering, value merging, schema validation and linting all go through `helm_python`, Helm v4's own Go
library behind a C ABI (the `helm-python-sdk` wheel ships it), so the tests see exactly what `helm install`,
`helm template` and Argo CD see: Go text/template, Sprig, Helm's coalescing of values and its JSON-schema
check of the merged values before any template runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART_DIR = REPO / "charts" / "mcp-reconciler"
NOTES = "templates/NOTES.txt"

Render = Callable[..., list[dict[str, Any]]]
Notes = Callable[..., str]


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def chart_without_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[helm.Chart]:
    """The same chart minus values.schema.json: shows what the templates alone do with values the schema rejects."""
    copy = tmp_path_factory.mktemp("chart") / CHART_DIR.name
    shutil.copytree(CHART_DIR, copy, ignore=shutil.ignore_patterns("values.schema.json"))
    with helm.Chart.load(copy) as loaded:
        assert loaded.schema is None
        yield loaded


def render_texts(
    chart: helm.Chart, overrides: Mapping[str, Any] | None, *, release: str, namespace: str
) -> dict[str, str]:
    """`helm template`: template path (without the chart name) → rendered text, NOTES.txt included."""
    rendered = chart.render(dict(overrides or {}), name=release, namespace=namespace, is_install=True)
    prefix = f"{CHART_DIR.name}/"
    return {path.removeprefix(prefix): text for path, text in sorted(rendered.items())}


def parse_manifests(texts: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object the templates produce, as Helm would send it (empty documents dropped)."""
    manifests: list[dict[str, Any]] = []
    for path, text in texts.items():
        if path == NOTES:
            continue
        for document in yaml.safe_load_all(text):
            if document is None:
                continue
            assert isinstance(document, dict), f"{path} renders a non-object document: {document!r}"
            manifests.append(document)
    return manifests


@pytest.fixture(scope="session")
def render(chart: helm.Chart, chart_without_schema: helm.Chart) -> Render:
    """`helm template <release> charts/mcp-reconciler -n <namespace> -f <overrides>` → parsed manifests.

    Raises `helm.HelmValuesError` when values.schema.json rejects the merged values and `helm.HelmRenderError`
    when a template fails (`fail`, `required`, nil pointers). `validate=False` renders without the schema.
    """

    def run(
        overrides: Mapping[str, Any] | None = None,
        *,
        release: str = "mcp",
        namespace: str = "mcp-system",
        validate: bool = True,
    ) -> list[dict[str, Any]]:
        source = chart if validate else chart_without_schema
        return parse_manifests(render_texts(source, overrides, release=release, namespace=namespace))

    return run


@pytest.fixture(scope="session")
def notes(chart: helm.Chart) -> Notes:
    """The NOTES.txt `helm install` prints, for the given overrides."""

    def run(overrides: Mapping[str, Any] | None = None, *, release: str = "mcp", namespace: str = "mcp-system") -> str:
        return render_texts(chart, overrides, release=release, namespace=namespace)[NOTES]

    return run


def find(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]


def one(manifests: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(manifests, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[m['metadata']['name'] for m in found]}"
    return found[0]


def rule_set(role: Mapping[str, Any]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a Role/ClusterRole grants (resourceNames-limited rules included)."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
