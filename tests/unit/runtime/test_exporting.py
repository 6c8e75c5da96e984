"""`spec.export` without a registry: where a binding's document goes, and the ConfigMap body around it.

The document itself is rendered from real registries in tests/integration/runtime/test_export.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from reconciler.api import MCPTemplateBinding
from reconciler.api.common import DNS1123_SUBDOMAIN
from reconciler.runtime import ExportTarget, build_config_map, export_target, secret_placeholder

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def binding_with(export: dict[str, Any] | None, *, name: str = "support", template: str = "support-agent") -> Any:
    spec: dict[str, Any] = {"template": template, "servers": [{"serverRef": "crm"}]}
    if export is not None:
        spec["export"] = export
    return MCPTemplateBinding.model_validate({"metadata": {"name": name, "namespace": "team-a"}, "spec": spec})


@pytest.mark.parametrize(
    ("export", "expected"),
    [
        (None, None),
        ({"configMap": {}}, ExportTarget("support-mcp-config", "mcp-config.json", "support-agent")),
        ({"configMap": {"name": "agents"}}, ExportTarget("agents", "mcp-config.json", "support-agent")),
        ({"configMap": {"key": "mcp.json"}}, ExportTarget("support-mcp-config", "mcp.json", "support-agent")),
        ({"configMap": {"name": "agents", "key": "mcp.json"}}, ExportTarget("agents", "mcp.json", "support-agent")),
    ],
)
def test_export_target_applies_the_defaults(export: dict[str, Any] | None, expected: ExportTarget | None) -> None:
    assert export_target(binding_with(export)) == expected


@pytest.mark.parametrize("name", ["a" * 242, "a" * 243, "b" * 253, "a." * 120 + "z" * 13, "a-" * 126 + "z"])
def test_the_default_name_stays_a_valid_object_name_for_the_longest_bindings(name: str) -> None:
    target = export_target(binding_with({"configMap": {}}, name=name))

    assert target is not None
    assert len(target.name) <= 253 and re.match(DNS1123_SUBDOMAIN, target.name), target.name
    assert target.name.endswith("-mcp-config")
    if len(name) <= 242:
        assert target.name == f"{name}-mcp-config"


def test_shortened_default_names_differ_when_the_binding_names_do() -> None:
    first = export_target(binding_with({"configMap": {}}, name="a" * 250 + "x"))
    second = export_target(binding_with({"configMap": {}}, name="a" * 250 + "y"))

    assert first is not None and second is not None and first.name != second.name


def test_secret_placeholder_keeps_the_whole_reference() -> None:
    assert secret_placeholder("team-a/crm-token#token") == "${secret:team-a/crm-token#token}"


DOCUMENT = '{\n  "mcpServers": {\n  }\n}\n'


def test_config_map_is_owned_by_the_binding_and_holds_the_document_under_the_key() -> None:
    target = ExportTarget(name="support-mcp-config", key="mcp-config.json", template="support-agent")

    body = build_config_map(
        namespace="team-a", binding_name="support", binding_uid="0b6c-uid", target=target, document=DOCUMENT
    )

    assert body == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "support-mcp-config",
            "namespace": "team-a",
            "labels": {
                "app.kubernetes.io/managed-by": "mcp-reconciler",
                "mcp.reconciler.dev/template": "support-agent",
            },
            "ownerReferences": [
                {
                    "apiVersion": "mcp.reconciler.dev/v1alpha1",
                    "kind": "MCPTemplateBinding",
                    "name": "support",
                    "uid": "0b6c-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {"mcp-config.json": DOCUMENT},
    }


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("support-agent", "support-agent"),
        ("Support_Agent.v2", "Support_Agent.v2"),
        ("a" * 63, "a" * 63),
        ("tpl:support", None),
        ("a" * 64, None),
        ("x" + ":" * 80, None),
        ("1" + "-" * 200, None),
    ],
)
def test_the_template_label_is_always_a_valid_label_value(template: str, expected: str | None) -> None:
    target = ExportTarget(name="cm", key="k", template=template)

    label = build_config_map(namespace="n", binding_name="b", binding_uid="u", target=target, document="{}")[
        "metadata"
    ]["labels"]["mcp.reconciler.dev/template"]

    assert len(label) <= 63 and LABEL_VALUE.match(label), label
    if expected is not None:
        assert label == expected
    else:
        other = ExportTarget(name="cm", key="k", template=template + "0")
        assert (
            label
            != build_config_map(namespace="n", binding_name="b", binding_uid="u", target=other, document="{}")[
                "metadata"
            ]["labels"]["mcp.reconciler.dev/template"]
        ), "distinct templates keep distinct labels"
