"""values.schema.json: closed at every level, accepts the defaults and real overrides, rejects typos and bad types.

Helm validates the merged values against this schema in `install`, `upgrade`, `template` and `lint`, and so
does Argo CD when it renders the chart, so a rejected key here is a failed sync instead of a silent no-op. The
values are merged and validated by Helm itself (`helm_python`), with its JSON-schema implementation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.unit.chart.conftest import CHART_DIR

DEFAULTS: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
# One line per violation in Helm's report: "- at '/json/pointer': message".
VIOLATION = re.compile(r"^- at '(?P<pointer>[^']*)': (?P<message>.*)$", re.MULTILINE)
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


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((CHART_DIR / "values.schema.json").read_text())
    return loaded


def errors(chart: helm.Chart, overrides: dict[str, Any]) -> list[str]:
    """Helm's schema violations for values.yaml with `overrides` coalesced over it, as `dotted.path: message`."""
    try:
        chart.validate_schema(chart.merge_values(overrides))
    except helm.HelmValuesError as error:
        found = [
            f"{match['pointer'].strip('/').replace('/', '.')}: {match['message']}"
            for match in VIOLATION.finditer(str(error))
        ]
        assert found, f"no violation could be read from Helm's report: {error}"
        return found
    return []


def test_defaults_are_valid(chart: helm.Chart) -> None:
    assert errors(chart, {}) == []


def test_helm_loads_this_schema(chart: helm.Chart, schema: dict[str, Any]) -> None:
    assert chart.schema == schema


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
        ({"replicaCont": 1}, ("", "replicaCont")),
        ({"image": {"tags": "0.2.0"}}, ("image", "tags")),
        ({"metrics": {"serviceMonitor": {"enable": True}}}, ("metrics.serviceMonitor", "enable")),
        ({"serviceAccount": {"crate": False}}, ("serviceAccount", "crate")),
        ({"registry": {"url": "postgresql://user:secret@db/mcp"}}, ("registry", "url")),
        ({"registry": {"existingSecret": {"dsn": "postgresql://db/mcp"}}}, ("registry.existingSecret", "dsn")),
        ({"podDisruptionBudget": {"enabled": True, "minAvailable": 1}}, ("podDisruptionBudget", "minAvailable")),
        ({"securityContext": {"runAsRoot": True}}, ("securityContext", "runAsRoot")),
        ({"resources": {"limits": {"memroy": "1Gi"}}}, ("resources.limits", "memroy")),
        ({"affinity": {"nodeAffinity": {"required": []}}}, ("affinity.nodeAffinity", "required")),
        ({"serve": {"enable": True}}, ("serve", "enable")),
        ({"serve": {"replicas": 2}}, ("serve", "replicas")),
        ({"serve": {"tokenSecret": {"value": "s3cret-token-value"}}}, ("serve.tokenSecret", "value")),
        ({"serve": {"ingress": {"host": "mcp.example.com"}}}, ("serve.ingress", "host")),
        ({"serve": {"secrets": {"reed": True}}}, ("serve.secrets", "reed")),
        (
            {"serve": {"ingress": {"hosts": [{"host": "a.example.com", "paths": [], "path": "/"}]}}},
            ("serve.ingress.hosts.0", "path"),
        ),
    ],
    ids=lambda value: ".".join(filter(None, value)) if isinstance(value, tuple) else None,
)
def test_misspelled_keys_are_rejected(chart: helm.Chart, overrides: Any, expected: tuple[str, str]) -> None:
    parent, key = expected
    found = errors(chart, overrides)
    assert f"{parent}: additional properties '{key}' not allowed" in found, found


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
        ({"publicUrl": "reconciler.example.com"}, "publicUrl"),
        ({"publicUrl": "https://reconciler.example.com/?x=1"}, "publicUrl"),
        ({"serve": {"enabled": "true"}}, "serve.enabled"),
        ({"serve": {"port": 80}}, "serve.port"),
        ({"serve": {"enabled": True, "tokenSecret": {"name": ""}}}, "serve.tokenSecret.name"),
        ({"serve": {"tokenSecret": {"key": ""}}}, "serve.tokenSecret.key"),
        ({"serve": {"service": {"type": "Ingress"}}}, "serve.service.type"),
        ({"serve": {"ingress": {"hosts": [{"host": "a.example.com", "paths": []}]}}}, "serve.ingress.hosts.0.paths"),
        (
            {
                "serve": {
                    "ingress": {
                        "hosts": [{"host": "https://a.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}]
                    }
                }
            },
            "serve.ingress.hosts.0.host",
        ),
        (
            {
                "serve": {
                    "ingress": {"hosts": [{"host": "a.example.com", "paths": [{"path": "/", "pathType": "Regex"}]}]}
                }
            },
            "serve.ingress.hosts.0.paths.0.pathType",
        ),
        ({"serve": {"ingress": {"tls": [{"secretName": "x"}]}}}, "serve.ingress.tls.0"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_wrong_types_and_values_are_rejected(chart: helm.Chart, overrides: dict[str, Any], path: str) -> None:
    found = errors(chart, overrides)
    assert any(error.startswith(f"{path}:") for error in found), found


def test_watch_scope_and_namespaces_must_agree(chart: helm.Chart) -> None:
    assert errors(chart, {"watch": {"scope": "Namespaced", "namespaces": []}})
    assert errors(chart, {"watch": {"scope": "Cluster", "namespaces": ["team-a"]}})
    assert errors(chart, {"watch": {"scope": "Namespaced", "namespaces": ["team-a", "team-a"]}})
    assert errors(chart, {"watch": {"scope": "Namespaced", "namespaces": ["team-a"]}}) == []


def test_realistic_overrides_are_accepted(chart: helm.Chart) -> None:
    overrides = {
        "global": {"imageRegistry": "registry.internal"},
        "watch": {"scope": "Namespaced", "namespaces": ["tenant-acme", "tenant-globex"]},
        "registry": {"existingSecret": {"name": "mcp-registry-app", "key": "uri"}},
        "publicUrl": "https://mcp-reconciler.example.com/acme",
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
        "serve": {
            "enabled": True,
            "tokenSecret": {"name": "mcp-serve", "key": "token"},
            "extraArgs": ["--anonymous"],
            "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
            "service": {"type": "ClusterIP", "port": 80, "annotations": {"example.com/owner": "platform"}},
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                "hosts": [{"host": "mcp-reconciler.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
                "tls": [{"secretName": "mcp-tls", "hosts": ["mcp-reconciler.example.com"]}],
            },
        },
    }
    assert errors(chart, overrides) == []
