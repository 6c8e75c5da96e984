"""One wording of a refused field: the folder loader (CLI) and the operator name it by the same path, same message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.errors import InvalidInput, Problem
from reconciler.manifests import load_folder
from reconciler.operator.gathering import parse_resource

V = "mcp.reconciler.dev/v1alpha1"
GOOD_AUTH = {"type": "bearer", "secretKeyRef": {"name": "crm-token", "key": "token"}}


def manifest(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": V, "kind": kind, "metadata": {"name": "crm", "namespace": "acme"}, "spec": spec}


CASES = [
    pytest.param(manifest("MCPServer", {"url": "ftp://secret-host/"}), id="pattern"),
    pytest.param(manifest("MCPServer", {"url": "https://crm.example.com/mcp", "transport": "pigeon"}), id="literal"),
    pytest.param(manifest("MCPServer", {"url": "https://crm.example.com/mcp", "colour": "red"}), id="unknown-field"),
    pytest.param(manifest("MCPServer", {}), id="missing"),
    pytest.param(manifest("MCPServer", {"url": "https://crm.example.com/mcp", "auth": {"type": "x"}}), id="union-tag"),
    pytest.param(manifest("MCPServer", {"url": "https://crm.example.com/mcp", "auth": {}}), id="union-tag-missing"),
    pytest.param(
        manifest("MCPServer", {"url": "https://crm.example.com/mcp", "auth": {"type": "bearer", "token": "s3cret"}}),
        id="inside-union",
    ),
    pytest.param(
        manifest("MCPServer", {"url": "https://crm.example.com/mcp", "auth": GOOD_AUTH, "headers": [{"value": 1}]}),
        id="list-item",
    ),
    pytest.param(manifest("MCPConnection", {"serverRef": "Not A Name", "scope": "platform"}), id="connection"),
]


def from_cli(tmp_path: Path, body: dict[str, Any]) -> list[Problem]:
    (tmp_path / "objects.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    with pytest.raises(InvalidInput) as caught:
        load_folder(tmp_path)
    return caught.value.problems


def from_operator(body: dict[str, Any]) -> list[Problem]:
    with pytest.raises(InvalidInput) as caught:
        parse_resource(body)
    return caught.value.problems


@pytest.mark.parametrize("body", CASES)
def test_cli_and_operator_word_an_invalid_field_identically(tmp_path: Path, body: dict[str, Any]) -> None:
    cli, operator = from_cli(tmp_path, body), from_operator(body)

    assert [(p.field, p.message) for p in operator] == [(p.field, p.message) for p in cli]
    assert all(p.field for p in operator)
    for cli_problem, operator_problem in zip(cli, operator, strict=True):
        assert operator_problem.file is None and cli_problem.file == "objects.yaml"
        # The operator names the object where the CLI names the file: the rest of the line is the same.
        assert cli_problem.render().endswith(": " + operator_problem.render())


def test_the_operator_words_fields_as_the_manifest_spells_them() -> None:
    body = manifest("MCPServer", {"url": "https://crm.example.com/mcp", "auth": GOOD_AUTH, "headers": [{"value": 1}]})

    rendered = [problem.render() for problem in from_operator(body)]

    assert rendered == [
        "MCPServer acme/crm: field spec.headers[0].name: required field is missing",
        "MCPServer acme/crm: field spec.headers[0].value: must be a string",
    ]
