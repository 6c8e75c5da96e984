"""values.schema.json: closed at every level, accepts the defaults and real overrides, rejects typos and bad types.

Helm validates the merged values against this schema in `install`, `upgrade`, `template` and `lint`, and so
does Argo CD when it renders the chart, so a rejected key here is a failed sync instead of a silent no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from tests.unit.chart.conftest import CHART_DIR
from tests.unit.chart.gotemplate import merge_values

DEFAULTS: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
CONDITIONALS = {"if", "then", "else", "not"}
"""Keywords whose sub-schemas only constrain an object already described (and closed) by their parent."""


def object_schemas(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every sub-schema that describes an object, with a JSON-pointer-ish path."""
    if isinstance(node, dict):
        if node.get("type") == "object" or "properties" in node:
            yield path, node
        for key, value in node.items():
            if key not in CONDITIONALS:
                yield from object_schemas(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from object_schemas(value, f"{path}/{index}")


def errors(validator: jsonschema.Draft7Validator, overrides: dict[str, Any]) -> list[str]:
    merged = merge_values(DEFAULTS, overrides)
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(merged)]


def test_defaults_are_valid(validator: jsonschema.Draft7Validator) -> None:
    assert errors(validator, {}) == []


def test_every_object_level_is_closed(schema: dict[str, Any]) -> None:
    open_levels = []
    for path, node in object_schemas(schema):
        if path == "#/properties/global":
            continue  # Helm's own key, passed down by parent charts
        closed = node.get("additionalProperties")
        # A closed object, or a string map (labels, annotations, nodeSelector) whose values are typed.
        if closed is not False and closed != {"type": "string"}:
            open_levels.append(path)
        if "properties" in node and closed is not False:
            open_levels.append(path + " (has properties but accepts others)")
    assert open_levels == []


def test_schema_and_values_declare_the_same_top_level_keys(schema: dict[str, Any]) -> None:
    assert set(schema["properties"]) - {"global"} == set(DEFAULTS)
    assert set(schema["required"]) == set(DEFAULTS)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"replicaCont": 1}, "'replicaCont' was unexpected"),
        ({"image": {"tags": "0.2.0"}}, "'tags' was unexpected"),
        ({"metrics": {"serviceMonitor": {"enable": True}}}, "'enable' was unexpected"),
        ({"serviceAccount": {"crate": False}}, "'crate' was unexpected"),
        ({"registry": {"url": "postgresql://user:secret@db/mcp"}}, "'url' was unexpected"),
        ({"registry": {"existingSecret": {"dsn": "postgresql://db/mcp"}}}, "'dsn' was unexpected"),
        ({"podDisruptionBudget": {"enabled": True, "minAvailable": 1}}, "'minAvailable' was unexpected"),
        ({"securityContext": {"runAsRoot": True}}, "'runAsRoot' was unexpected"),
        ({"resources": {"limits": {"memroy": "1Gi"}}}, "'memroy' was unexpected"),
        ({"affinity": {"nodeAffinity": {"required": []}}}, "'required' was unexpected"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_misspelled_keys_are_rejected(validator: jsonschema.Draft7Validator, overrides: Any, expected: str) -> None:
    found = errors(validator, overrides)
    assert any(expected in error for error in found), found


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"replicaCount": "1"}, "replicaCount"),
        ({"replicaCount": 2}, "replicaCount"),
        ({"rbac": {"create": "yes"}}, "rbac.create"),
        ({"watch": {"scope": "Namespaced", "namespaces": "team-a"}}, "watch.namespaces"),
        ({"watch": {"scope": "Namespaced", "namespaces": ["Team_A"]}}, "watch.namespaces.0"),
        ({"watch": {"scope": "Everywhere"}}, "watch.scope"),
        ({"metrics": {"port": "8080"}}, "metrics.port"),
        ({"metrics": {"port": 80}}, "metrics.port"),
        ({"image": {"tag": "latest"}}, "image.tag"),
        ({"image": {"digest": "latest"}}, "image.digest"),
        ({"image": {"pullPolicy": "Sometimes"}}, "image.pullPolicy"),
        ({"podAnnotations": {"checksum": 1}}, "podAnnotations.checksum"),
        ({"tolerations": {"key": "x"}}, "tolerations"),
        ({"extraArgs": "--verbose"}, "extraArgs"),
        ({"extraEnv": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]}, "extraEnv.0"),
        ({"probes": {"path": "healthz"}}, "probes.path"),
        ({"metrics": {"serviceMonitor": {"interval": 30}}}, "metrics.serviceMonitor.interval"),
        ({"podDisruptionBudget": {"maxUnavailable": 0}}, "podDisruptionBudget.maxUnavailable"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_wrong_types_and_values_are_rejected(
    validator: jsonschema.Draft7Validator, overrides: dict[str, Any], path: str
) -> None:
    found = errors(validator, overrides)
    assert any(error.startswith(f"{path}:") for error in found), found


def test_watch_scope_and_namespaces_must_agree(validator: jsonschema.Draft7Validator) -> None:
    assert errors(validator, {"watch": {"scope": "Namespaced", "namespaces": []}})
    assert errors(validator, {"watch": {"scope": "Cluster", "namespaces": ["team-a"]}})
    assert errors(validator, {"watch": {"scope": "Namespaced", "namespaces": ["team-a", "team-a"]}})
    assert errors(validator, {"watch": {"scope": "Namespaced", "namespaces": ["team-a"]}}) == []


def test_realistic_overrides_are_accepted(validator: jsonschema.Draft7Validator) -> None:
    overrides = {
        "global": {"imageRegistry": "registry.internal"},
        "watch": {"scope": "Namespaced", "namespaces": ["tenant-acme", "tenant-globex"]},
        "registry": {"existingSecret": {"name": "mcp-registry-app", "key": "uri"}},
        "image": {"repository": "registry.internal/mcp-reconciler", "digest": "sha256:" + "0" * 64},
        "metrics": {"port": 9090, "serviceMonitor": {"enabled": True, "interval": "1m", "labels": {"release": "kps"}}},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": 1, "memory": "1Gi"}},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 50,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "postgres"}},
                        },
                    }
                ]
            }
        },
        "extraEnv": [
            {"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "x", "key": "y"}}},
        ],
        "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/mcp"}},
        "podDisruptionBudget": {"enabled": True, "maxUnavailable": "100%"},
        "replicaCount": 0,
    }
    assert errors(validator, overrides) == []
