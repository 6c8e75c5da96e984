"""`helm lint` on the chart, what lint cannot see (determinism, every value used), and the chart's CRD copies.

Helm's own linter (through `helm_python`, Helm v4's library) checks Chart.yaml, values against
values.schema.json, that every template parses and renders to valid YAML with valid object names, and
deprecated APIs for the target Kubernetes version. Beside it: every `.Values` path exists in values.yaml, no
non-deterministic functions (Argo CD renders on every refresh), and `crds/` holding byte-identical copies of
the generated CRDs next to Kopf's peering CRDs.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from kopf._cogs.structs.references import CLUSTER_PEERINGS_K, NAMESPACED_PEERINGS_K

from tests.unit.chart.conftest import CHART_DIR, REPO

CHART_YAML: dict[str, Any] = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
VALUES: dict[str, Any] = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
TEMPLATES = sorted(path for path in (CHART_DIR / "templates").iterdir() if path.is_file())
GENERATED_CRDS = sorted((REPO / "crds").glob("*.yaml"))
REGENERATE = (
    "regenerate with `make crds` (or `mcp-reconciler crds`), then copy them into the chart: "
    "cp crds/*.yaml charts/mcp-reconciler/crds/"
)
VALUES_REFERENCE = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")
NON_DETERMINISTIC = re.compile(
    r"\b(randAlphaNum|randAlpha|randNumeric|randAscii|randBytes|randInt|uuidv4|lookup|now|date|dateInZone|"
    r"genCA|genPrivateKey|genSelfSignedCert|genSignedCert|derivePassword)\b"
)


def test_chart_metadata() -> None:
    assert CHART_YAML["apiVersion"] == "v2"
    assert CHART_YAML["name"] == CHART_DIR.name
    assert CHART_YAML["version"] == "0.1.0"
    assert CHART_YAML["appVersion"] == "0.1.0"
    assert CHART_YAML["type"] == "application"
    assert CHART_YAML["description"]


def test_app_version_is_the_package_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert CHART_YAML["appVersion"] == project["version"], "bump appVersion with the package version"


def test_image_defaults_are_pinned() -> None:
    assert VALUES["image"]["tag"] == "", "an empty tag means appVersion; never default to a moving tag"
    assert "latest" not in yaml.safe_dump(VALUES["image"])


# Kubernetes versions the chart is linted for: the oldest its Chart.yaml accepts and the one the rendered
# objects are validated against in test_render.py.
LINT_KUBERNETES_VERSIONS = ("v1.25.0", "v1.30.0")
LINT_VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watch": {"scope": "Namespaced", "namespaces": ["team-a", "team-b"]}},
    "everything-on": {
        "metrics": {"serviceMonitor": {"enabled": True}},
        "podDisruptionBudget": {"enabled": True},
        "export": {"configMaps": True},
        "peering": {"enabled": False},
    },
    "serve-with-ingress": {
        "publicUrl": "https://mcp-reconciler.example.com",
        "serve": {"enabled": True, "tokenSecret": {"name": "mcp-serve"}, "ingress": {"enabled": True}},
    },
}
# Findings at INFO level that are accepted, each with the reason. Anything at WARNING or ERROR fails.
ACCEPTED_INFO = {("Chart.yaml", "icon is recommended")}  # the project publishes no icon yet
WARNING = 2


def lint_findings(chart_dir: Path, values: dict[str, Any], kube_version: str) -> list[str]:
    """`helm lint --strict --kube-version <v>` findings as `[severity] path: message`, accepted INFO removed."""
    report = helm.lint(chart_dir, values, strict=True, kube_version=kube_version)
    assert report["total_charts_linted"] == 1
    found = [
        f"[{message['severity']}] {message['path']}: {message['error']}"
        for message in report["messages"]
        if message["severity"] >= WARNING or (message["path"], message["error"]) not in ACCEPTED_INFO
    ]
    reported = {message["error"] for message in report["messages"]}
    return found + [f"[error] {error}" for error in report["errors"] if error not in reported]


@pytest.mark.parametrize("kube_version", LINT_KUBERNETES_VERSIONS)
@pytest.mark.parametrize("values", list(LINT_VALUE_SETS.values()), ids=list(LINT_VALUE_SETS))
def test_helm_lint_is_clean(values: dict[str, Any], kube_version: str) -> None:
    assert lint_findings(CHART_DIR, values, kube_version) == []


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("a: {{ .Values.x }", 'unexpected "}" in operand'),
        ("{{ if .Values.x }}a", "unexpected EOF"),
        ("a{{ end }}", "unexpected {{end}}"),
        ("{{ .Values.x | tooYaml }}", 'function "tooYaml" not defined'),
        ("{{ $x }}", 'undefined variable "$x"'),
        ("{{/* unclosed comment }}", "unclosed comment"),
        ("{{ .Values.a.b }}", "nil pointer evaluating interface {}.b"),
        ("{{ eq .Values.x 1 }}", "incompatible types for comparison"),
        ("kind: ConfigMap\nmetadata:\n  name: Not_A_Name\n", "object name does not conform"),
    ],
)
def test_lint_catches_broken_templates(tmp_path: Path, source: str, problem: str) -> None:
    chart_dir = tmp_path / "broken"
    (chart_dir / "templates").mkdir(parents=True)
    (chart_dir / "Chart.yaml").write_text("apiVersion: v2\nname: broken\nversion: 0.0.1\n")
    (chart_dir / "values.yaml").write_text("x: 1\n")
    (chart_dir / "templates" / "broken.yaml").write_text(source)
    findings = lint_findings(chart_dir, {}, LINT_KUBERNETES_VERSIONS[-1])
    assert any(problem in finding for finding in findings), findings


def _exists(values: Any, path: list[str]) -> bool:
    for part in path:
        if not isinstance(values, dict) or part not in values:
            return False
        values = values[part]
    return True


def test_every_values_reference_exists_in_values_yaml() -> None:
    missing = []
    for path in TEMPLATES:
        for match in VALUES_REFERENCE.finditer(path.read_text()):
            keys = match.group(1).strip(".").split(".")
            if not _exists(VALUES, keys):
                missing.append(f"{path.name}: .Values.{'.'.join(keys)}")
    assert missing == []


def test_every_top_level_value_is_used() -> None:
    text = "\n".join(path.read_text() for path in TEMPLATES)
    used = {match.group(1).strip(".").split(".")[0] for match in VALUES_REFERENCE.finditer(text)}
    assert set(VALUES) - used == set()


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: path.name)
def test_templates_render_the_same_every_time(path: Path) -> None:
    actions = re.findall(r"\{\{.*?\}\}", path.read_text(), flags=re.DOTALL)
    offenders = [action for action in actions if NON_DETERMINISTIC.search(action)]
    assert offenders == [], "Argo CD re-renders on every refresh: random or cluster-dependent output never syncs"


def test_crds_are_not_templated() -> None:
    for path in TEMPLATES:
        assert "kind: CustomResourceDefinition" not in path.read_text(), f"{path.name}: CRDs belong in crds/"


# --------------------------------------------------------------------------------------- CRDs
def test_there_are_generated_crds_to_copy() -> None:
    assert len(GENERATED_CRDS) == 4, "crds/ should hold the four generated CRDs"


@pytest.mark.parametrize("source", GENERATED_CRDS, ids=lambda path: path.name)
def test_chart_crds_are_byte_identical_to_the_generated_ones(source: Path) -> None:
    copy = CHART_DIR / "crds" / source.name
    assert copy.exists(), f"charts/mcp-reconciler/crds/{source.name} is missing: {REGENERATE}"
    assert copy.read_bytes() == source.read_bytes(), f"charts/mcp-reconciler/crds/{source.name} is stale: {REGENERATE}"


def test_chart_has_no_stale_crds() -> None:
    ours = {path.name for path in (CHART_DIR / "crds").glob("mcp.reconciler.dev_*.yaml")}
    assert ours == {path.name for path in GENERATED_CRDS}, f"the chart's crds/ folder differs from crds/: {REGENERATE}"
    other = {path.name for path in (CHART_DIR / "crds").iterdir()} - ours
    assert other == {"kopf.dev_peerings.yaml"}


def test_peering_crds_are_the_ones_kopf_uses() -> None:
    documents = list(yaml.safe_load_all((CHART_DIR / "crds" / "kopf.dev_peerings.yaml").read_text()))
    by_plural = {doc["spec"]["names"]["plural"]: doc for doc in documents}
    expected = {CLUSTER_PEERINGS_K: "Cluster", NAMESPACED_PEERINGS_K: "Namespaced"}
    # Kopf selects its peering resources by plural name (`any_name`), group and version.
    assert set(by_plural) == {selector.any_name for selector in expected}
    for selector, scope in expected.items():
        crd = by_plural[selector.any_name]
        assert crd["metadata"]["name"] == f"{selector.any_name}.{selector.group}"
        assert crd["spec"]["group"] == selector.group
        assert crd["spec"]["scope"] == scope
        (version,) = crd["spec"]["versions"]
        assert version["name"] == selector.version
        assert version["served"] and version["storage"]
        # Kopf writes one key per running operator into status, so it cannot have a fixed schema.
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        assert "subresources" not in version, "Kopf patches status through the main resource"


def _schema_defaults(node: Any, path: str) -> list[str]:
    if isinstance(node, dict):
        found = [path] if "default" in node and isinstance(node.get("type"), str) else []
        return found + [hit for key, value in node.items() for hit in _schema_defaults(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [hit for index, value in enumerate(node) for hit in _schema_defaults(value, f"{path}[{index}]")]
    return []


@pytest.mark.parametrize("source", GENERATED_CRDS, ids=lambda path: path.name)
def test_crds_declare_no_schema_defaults(source: Path) -> None:
    # docs/argocd.md promises that live objects equal the manifests in git, so Argo CD's legacy diff stays
    # Synced: a schema default would add fields the manifests do not have.
    crd = yaml.safe_load(source.read_text())
    for version in crd["spec"]["versions"]:
        assert _schema_defaults(version["schema"]["openAPIV3Schema"], version["name"]) == []


@pytest.mark.parametrize("path", sorted((CHART_DIR / "crds").glob("*.yaml")), ids=lambda path: path.name)
def test_chart_crds_are_valid_custom_resource_definitions(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        assert document["apiVersion"] == "apiextensions.k8s.io/v1"
        kubernetes_validate.validate(document, "1.30.0", strict=True)
