"""Where in the YAML source a value was written: documents with their node trees, and located problems.

Used by `parsing.py` (which builds each `Document`), `collecting.py` and `core_kinds.py` (which report problems
at the line of the key at fault). Pure functions over PyYAML's composed nodes; the node tree is kept next to
the constructed value because only the nodes remember line numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import yaml

from reconciler.api.invalid_fields import FieldStep
from reconciler.errors import Problem

__all__ = ["Document", "Identity", "key_line", "line_of", "line_of_steps", "mapping_entry", "mark_line", "node_line_at"]


@dataclass
class Document:
    """One parsed YAML document with the node tree that remembers where each value was written."""

    file: str
    node: yaml.Node
    body: Any

    @property
    def line(self) -> int:
        return line_of(self.node) or 1


@dataclass(frozen=True)
class Identity:
    """Kind, namespace and name of a managed object: what every problem about it is located by."""

    kind: str
    namespace: str
    name: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    def locate(self, message: str, *, document: Document, line: int | None = None, field: str | None = None) -> Problem:
        return Problem(
            message,
            file=document.file,
            line=line or document.line,
            kind=self.kind,
            namespace=self.namespace or None,
            name=self.name,
            field=field,
        )


def node_line_at(document: Document, keys: tuple[str, ...]) -> int | None:
    """Line of the deepest key along `keys` that exists in the document."""
    node: yaml.Node | None = document.node
    line: int | None = None
    for key in keys:
        key_node, node = mapping_entry(node, key)
        if key_node is None:
            break
        line = line_of(key_node)
    return line


def line_of_steps(document: Document, steps: Iterable[FieldStep]) -> int | None:
    """Line of the deepest step of a field path (from `describe_field_error`) found in the node tree."""
    node: yaml.Node | None = document.node
    line: int | None = None
    for step in steps:
        if step.in_list and isinstance(step.key, int):
            node = node.value[step.key] if isinstance(node, yaml.SequenceNode) and step.key < len(node.value) else None
            line = line_of(node) or line
        else:
            key_node, node = mapping_entry(node, step.key)
            line = line_of(key_node) or line
    return line


def mapping_entry(node: yaml.Node | None, key: object) -> tuple[yaml.Node | None, yaml.Node | None]:
    """The key node and value node of `key` in a mapping node; (None, None) when absent or not a mapping."""
    if not isinstance(node, yaml.MappingNode):
        return None, None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
            return key_node, value_node
    return None, None


def key_line(node: yaml.Node, key: str) -> int | None:
    key_node, _ = mapping_entry(node, key)
    return line_of(key_node)


def line_of(node: yaml.Node | None) -> int | None:
    return None if node is None else mark_line(node.start_mark)


class _Mark(Protocol):
    """A position in YAML source, from either the C or the pure-Python parser (zero-based line)."""

    line: int


def mark_line(mark: _Mark | None) -> int | None:
    return None if mark is None else mark.line + 1
