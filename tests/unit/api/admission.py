"""What the API server checks against a CRD schema, done in Python so tests can run it without a cluster.

Used by the CRD tests: the OpenAPI part is `jsonschema` (with the `x-kubernetes-*` keys removed), list-map
keys are checked for duplicates as the API server does, and every CEL rule is evaluated with `celpy`
(the e2e API server, Kubernetes 1.20, does not run CEL at all).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import celpy
import jsonschema
from celpy import celtypes

from reconciler.api.crds import build_crd
from reconciler.api.kinds import kind_for

MISSING: Any = object()
"""The old object had nothing at this path (create, or a field added by the update)."""


def open_api_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = build_crd(kind_for(kind))["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def spec_schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = open_api_schema(kind)["properties"]["spec"]
    return schema


def _without_kubernetes_keys(schema: Any) -> Any:
    if isinstance(schema, Mapping):
        return {
            key: value if key == "enum" else _without_kubernetes_keys(value)
            for key, value in schema.items()
            if not key.startswith("x-kubernetes-")
        }
    if isinstance(schema, list):
        return [_without_kubernetes_keys(item) for item in schema]
    return schema


def open_api_errors(schema: Mapping[str, Any], instance: Any) -> list[str]:
    """OpenAPI validation plus the list-map duplicate check; messages name the path."""
    validator = jsonschema.Draft202012Validator(_without_kubernetes_keys(schema))
    errors = [f"{error.json_path}: {error.message}" for error in validator.iter_errors(instance)]
    return errors + _duplicate_map_keys(schema, instance, "$")


def _duplicate_map_keys(schema: Mapping[str, Any], instance: Any, path: str) -> list[str]:
    errors: list[str] = []
    if isinstance(instance, Mapping):
        for name, value in instance.items():
            sub = schema.get("properties", {}).get(name)
            if sub is not None:
                errors += _duplicate_map_keys(sub, value, f"{path}.{name}")
    elif isinstance(instance, list) and "items" in schema:
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema["x-kubernetes-list-map-keys"]
            seen: set[tuple[Any, ...]] = set()
            for item in instance:
                key = tuple(item.get(name) for name in keys) if isinstance(item, Mapping) else (item,)
                if key in seen:
                    errors.append(f"{path}: Duplicate value: {dict(zip(keys, key, strict=True))}")
                seen.add(key)
        for index, item in enumerate(instance):
            errors += _duplicate_map_keys(schema["items"], item, f"{path}[{index}]")
    return errors


def _lower_ascii(text: celtypes.StringType) -> celtypes.StringType:
    return celtypes.StringType(text.lower())


# The Kubernetes CEL extension functions the rules use, on top of standard CEL.
_KUBERNETES_FUNCTIONS = {"lowerAscii": _lower_ascii}


@functools.cache
def compile_rule(rule: str) -> Any:
    """A runnable CEL program; raises celpy.CELParseError on a rule that does not parse."""
    environment = celpy.Environment()
    return environment.program(environment.compile(rule), functions=_KUBERNETES_FUNCTIONS)


@dataclass
class CelOutcome:
    """Which rules ran and which rejected, each as (rule, message); evaluation errors count as rejections."""

    failed: list[tuple[str, str]] = field(default_factory=list)
    passed: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        return [message for _, message in self.failed]


def evaluate_cel(schema: Mapping[str, Any], instance: Any, old: Any = MISSING) -> CelOutcome:
    """Run every `x-kubernetes-validations` rule at every node the instance reaches, like the API server.

    Transition rules (those using `oldSelf`) run only where the old object has a value at the same path;
    list items are correlated with old ones only in list-type maps, by key, as Kubernetes does.
    """
    outcome = CelOutcome()
    _evaluate(schema, instance, old, outcome)
    return outcome


def _evaluate(schema: Mapping[str, Any], value: Any, old: Any, outcome: CelOutcome) -> None:
    for entry in schema.get("x-kubernetes-validations", []):
        rule, message = entry["rule"], entry["message"]
        if "oldSelf" in rule and old is MISSING:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if old is not MISSING:
            activation["oldSelf"] = celpy.json_to_cel(old)
        try:
            result = compile_rule(rule).evaluate(activation)
        except celpy.CELEvalError as error:
            result = error
        if isinstance(result, celpy.CELEvalError):
            outcome.errors.append(f"{rule}: {result}")
            outcome.failed.append((rule, message))
        elif bool(result):
            outcome.passed.append((rule, message))
        else:
            outcome.failed.append((rule, message))
    if isinstance(value, Mapping):
        old_map = old if isinstance(old, Mapping) else {}
        for name, sub_value in value.items():
            sub_schema = schema.get("properties", {}).get(name)
            if sub_schema is None and isinstance(schema.get("additionalProperties"), Mapping):
                sub_schema = schema["additionalProperties"]
            if sub_schema is not None:
                _evaluate(sub_schema, sub_value, old_map.get(name, MISSING), outcome)
    elif isinstance(value, list) and "items" in schema:
        keys = schema.get("x-kubernetes-list-map-keys")
        old_items: dict[tuple[Any, ...], Any] = {}
        if keys and isinstance(old, list):
            old_items = {tuple(item.get(key) for key in keys): item for item in old}
        for item in value:
            old_item = old_items.get(tuple(item.get(key) for key in keys), MISSING) if keys else MISSING
            _evaluate(schema["items"], item, old_item, outcome)


def all_rules(schema: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (rule, message) in a schema, depth first."""
    found = [(entry["rule"], entry["message"]) for entry in schema.get("x-kubernetes-validations", [])]
    for sub in schema.get("properties", {}).values():
        found += all_rules(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), Mapping):
            found += all_rules(schema[key])
    return found
