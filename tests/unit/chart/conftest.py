"""Fixtures for the Helm chart tests: the parsed chart, its schema, and a `helm template` stand-in.

No `helm` binary is obtainable from the registries this project uses (see docs/helm.md), so `render` merges
overrides into values.yaml, validates the result against values.schema.json as Helm does before rendering,
and renders the templates with `gotemplate`, a strict Go-template subset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.unit.chart.gotemplate import Chart, merge_values, render_chart

REPO = Path(__file__).resolve().parents[3]
CHART_DIR = REPO / "charts" / "mcp-reconciler"

Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def chart() -> Chart:
    return Chart.load(CHART_DIR)


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text())
    return loaded


@pytest.fixture(scope="session")
def validator(schema: dict[str, Any]) -> jsonschema.Draft7Validator:
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="session")
def render(chart: Chart, validator: jsonschema.Draft7Validator) -> Render:
    """`helm template <release> charts/mcp-reconciler -n <namespace> -f <overrides>` → parsed manifests."""

    def run(
        overrides: Mapping[str, Any] | None = None,
        *,
        release: str = "mcp",
        namespace: str = "mcp-system",
        validate: bool = True,
    ) -> list[dict[str, Any]]:
        if validate:
            validator.validate(merge_values(chart.values, dict(overrides or {})))
        manifests, _ = render_chart(chart, overrides, release=release, namespace=namespace)
        return manifests

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
