"""The generated CRDs are valid structural schemas with the names, columns and rules the product promises.

Checks the rules the API server applies to CRDs (structural schema, list-map keys, RE2 patterns) and the
things Argo CD and `kubectl explain` depend on (no defaults, a description on every field).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import re2

from reconciler.api import crds
from reconciler.api.crds import build_crd, build_crds
from reconciler.api.describing import DescribingJsonSchema
from reconciler.api.kinds import KINDS, KindInfo
from reconciler.api.printing import PRINTER_COLUMNS

KIND_PARAMS = [pytest.param(info, id=info.kind) for info in KINDS]


def _schema(info: KindInfo) -> dict[str, Any]:
    schema: dict[str, Any] = build_crd(info)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema node with its path, properties and items included."""
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


def _all_dicts(value: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        yield value
        for item in value.values():
            yield from _all_dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _all_dicts(item)


def test_no_default_anywhere() -> None:
    # Defaults in a CRD schema make Argo CD report endless OutOfSync; the models own the defaults.
    offenders = [d for crd in build_crds() for d in _all_dicts(crd) if "default" in d]
    assert offenders == []


def test_no_closed_or_open_objects() -> None:
    for crd in build_crds():
        for mapping in _all_dicts(crd):
            assert mapping.get("additionalProperties") is not False
            assert "x-kubernetes-preserve-unknown-fields" not in mapping


@pytest.mark.parametrize("info", KIND_PARAMS)
def test_structural(info: KindInfo) -> None:
    forbidden = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "const", "title", "discriminator", "nullable"}
    for path, node in _nodes(_schema(info)):
        assert forbidden.isdisjoint(node), f"{info.kind}{path}: {sorted(forbidden & set(node))}"
        assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
        if node["type"] == "object" and path != ".metadata":
            assert ("properties" in node) != ("additionalProperties" in node), path
        if node["type"] == "array":
            assert "items" in node, path


@pytest.mark.parametrize("info", KIND_PARAMS)
def test_every_property_has_a_description(info: KindInfo) -> None:
    # `.metadata` is the standard ObjectMeta, described by the API server itself.
    missing = [
        f"{info.kind}{path}"
        for path, node in _nodes(_schema(info))
        if path not in ("", ".metadata") and not node.get("description")
    ]
    missing = [path for path in missing if not path.endswith("[]")]
    assert missing == [], "add a docstring to these model fields"


def test_fallback_descriptions_are_all_still_needed() -> None:
    used = set()
    for info in KINDS:
        for model in (info.spec_model, info.status_model):
            schema = model.model_json_schema(by_alias=True, schema_generator=DescribingJsonSchema)
            for name, sub in schema.get("$defs", {}).items():
                for field, prop in sub.get("properties", {}).items():
                    if "description" not in prop and "$ref" not in prop and not _ref_in_any_of(prop):
                        used.add((name, field))
    stale = set(crds._FALLBACK_DESCRIPTIONS) - used
    assert stale == set(), "the models now document these fields: delete them from crds._FALLBACK_DESCRIPTIONS"


def _ref_in_any_of(prop: Mapping[str, Any]) -> bool:
    return any("$ref" in option for option in prop.get("anyOf", []))


@pytest.mark.parametrize("info", KIND_PARAMS)
def test_patterns_are_re2(info: KindInfo) -> None:
    # The API server evaluates `pattern` with Go's RE2, which rejects Python-only syntax such as lookaheads.
    for path, node in _nodes(_schema(info)):
        if "pattern" in node:
            assert re2.compile(node["pattern"]) is not None, f"{info.kind}{path}"


@pytest.mark.parametrize("info", KIND_PARAMS)
def test_list_map_keys_are_required_scalars(info: KindInfo) -> None:
    for path, node in _nodes(_schema(info)):
        if node.get("x-kubernetes-list-type") == "map":
            items = node["items"]
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in items.get("required", []), f"{path}: map key {key} must be required"
                assert items["properties"][key]["type"] in {"string", "integer"}, path


def test_names_scope_and_version() -> None:
    for info, crd in zip(KINDS, build_crds(), strict=True):
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["metadata"]["name"] == f"{info.plural}.mcp.reconciler.dev"
        spec = crd["spec"]
        assert spec["group"] == "mcp.reconciler.dev"
        assert spec["scope"] == "Namespaced"
        assert spec["names"] == {
            "kind": info.kind,
            "listKind": f"{info.kind}List",
            "plural": info.plural,
            "singular": info.singular,
            "shortNames": list(info.short_names),
            "categories": ["mcp"],
        }
        (version,) = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        assert version["subresources"] == {"status": {}}
        assert version["additionalPrinterColumns"] == [column.as_crd_column() for column in PRINTER_COLUMNS[info.kind]]


def test_short_names() -> None:
    assert [build_crd(info)["spec"]["names"]["shortNames"] for info in KINDS] == [
        ["mcps"],
        ["mcpconn"],
        ["mcpgrant"],
        ["mcpbinding"],
    ]


@pytest.mark.parametrize("info", KIND_PARAMS)
def test_top_level_shape(info: KindInfo) -> None:
    schema = _schema(info)
    assert schema["type"] == "object"
    assert schema["required"] == ["spec"]
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
    assert "x-kubernetes-validations" not in schema["properties"]["status"]


@pytest.mark.parametrize("info", KIND_PARAMS)
def test_conditions_are_metav1_conditions(info: KindInfo) -> None:
    conditions = _schema(info)["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "observedGeneration",
        "lastTransitionTime",
    }
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["lastTransitionTime"] == {
        "type": "string",
        "format": "date-time",
        "description": "When the status last changed.",
    }
    assert {"type", "status", "reason", "lastTransitionTime"} <= set(item["required"])


def test_status_fields_match_the_status_models_exactly() -> None:
    for info in KINDS:
        status = _schema(info)["properties"]["status"]
        wire_names = {field.alias or name for name, field in info.status_model.model_fields.items()}
        assert set(status["properties"]) == wire_names


def test_datetime_fields_are_date_time_strings() -> None:
    server_status = _schema(KINDS[0])["properties"]["status"]["properties"]
    for node in (
        server_status["lastSyncTime"],
        server_status["tools"]["properties"]["snapshotAt"],
        server_status["credentials"]["properties"]["expiresAt"],
        server_status["discovery"]["properties"]["discoveredAt"],
    ):
        assert (node["type"], node["format"]) == ("string", "date-time")


def test_optional_fields_are_not_required_and_nullables_collapse() -> None:
    spec = _schema(KINDS[0])["properties"]["spec"]
    assert spec["required"] == ["url"]
    assert spec["properties"]["displayName"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 256,
        "description": "Name shown in admin UIs (defaults to the object name).",
    }


def test_auth_union_is_one_object_with_a_required_type() -> None:
    auth = _schema(KINDS[0])["properties"]["spec"]["properties"]["auth"]
    assert auth["type"] == "object"
    assert auth["required"] == ["type"]
    assert auth["properties"]["type"]["enum"] == [
        "none",
        "bearer",
        "apiKey",
        "oauthClientCredentials",
        "oauthAuthorizationCode",
    ]
    assert set(auth["properties"]) == {
        "type",
        "secretKeyRef",
        "scheme",
        "headerName",
        "clientId",
        "clientSecret",
        "dynamicRegistration",
        "tokenUrl",
        "scopes",
        "resource",
        "audience",
        "tokenEndpointAuthMethod",
        "clientAssertion",
        "pkce",
        "authUrl",
        "registerUrl",
    }
    assert "Only with type `bearer` or `apiKey`." in auth["properties"]["secretKeyRef"]["description"]


def test_const_becomes_a_one_value_enum() -> None:
    # The API server has no `const`; a single-value Literal must still be enforced.
    assert crds._convert_scalar({"type": "string", "const": "v1"}) == {"type": "string", "enum": ["v1"]}


def test_unknown_json_schema_keywords_fail_loudly() -> None:
    with pytest.raises(ValueError, match="unsupported JSON schema keywords"):
        crds._convert({"type": "string", "examples": ["x"]}, {})
    with pytest.raises(ValueError, match=re.escape("only `X | None` unions")):
        crds._convert({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {})


def test_immutability_rules_are_on_the_server_spec() -> None:
    rules = _schema(KINDS[0])["properties"]["spec"]["x-kubernetes-validations"]
    messages = {rule["message"]: rule["rule"] for rule in rules}
    assert "oldSelf" in messages["transport is immutable: recreate to switch type"]
    assert "oldSelf" in messages["auth.type is immutable: recreate to switch type"]


def test_list_uniqueness() -> None:
    server = _schema(KINDS[0])["properties"]["spec"]["properties"]
    connection = _schema(KINDS[1])["properties"]["spec"]["properties"]
    grant = _schema(KINDS[2])["properties"]["spec"]["properties"]
    binding = _schema(KINDS[3])["properties"]["spec"]["properties"]
    for headers in (server["headers"], connection["headers"]):
        assert headers["x-kubernetes-list-map-keys"] == ["name"]
        assert "lowerAscii" in headers["x-kubernetes-validations"][0]["rule"]
    assert binding["servers"]["x-kubernetes-list-map-keys"] == ["serverRef"]
    assert grant["subjects"]["x-kubernetes-validations"][0]["message"] == "each subject may be listed once"
