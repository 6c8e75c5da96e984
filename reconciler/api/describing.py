"""Field descriptions for the CRDs, read from the models' attribute docstrings only when a schema is generated.

Called by `crds.py` (through `model_json_schema(schema_generator=DescribingJsonSchema)`) and by the tests that
check every field is documented. pydantic's `use_attribute_docstrings` would do the same, but it parses every
model class's source each time the model is built, in every process, although only the `crds` command reads
descriptions; here the sources are parsed once per generation. The rules follow pydantic's: the string literal
right after an annotated attribute documents it, an explicit `Field(description=...)` wins, and an inherited
field keeps the docstring of the class that declares it.
"""

from __future__ import annotations

import ast
import functools
import inspect
import sys
import textwrap
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

__all__ = ["DescribingJsonSchema", "attribute_docstrings"]


def attribute_docstrings(cls: type[Any]) -> dict[str, str]:
    """Attribute name → its docstring (cleaned like `inspect.cleandoc`), for the attributes `cls` itself annotates."""
    node = _class_node(cls)
    if node is None:
        return {}
    found: dict[str, str] = {}
    documented: str | None = None
    for statement in node.body:
        if (
            documented is not None
            and isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        ):
            found[documented] = inspect.cleandoc(statement.value.value)
        documented = None
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            documented = statement.target.id
    return found


def _class_node(cls: type[Any]) -> ast.ClassDef | None:
    """The class's definition, found by qualified name in its module's parsed source (a class defined in a function:
    in its own source lines); None when there is no source to read."""
    try:
        if "<locals>" in cls.__qualname__:
            source = textwrap.dedent(inspect.getsource(cls))
            if source.startswith((" ", "\t")):  # a string literal less indented than the class: wrap the class
                return _find_class(ast.parse("def wrapper():\n" + source).body, ["wrapper", cls.__name__])
            return _find_class(ast.parse(source).body, [cls.__name__])
        return _find_class(_module_tree(cls.__module__).body, cls.__qualname__.split("."))
    except (OSError, TypeError, SyntaxError):
        return None


@functools.cache
def _module_tree(module: str) -> ast.Module:
    """A module's source, parsed once per process: every model class of the module is looked up in it."""
    return ast.parse(inspect.getsource(sys.modules[module]))


def _find_class(scope: list[ast.stmt], path: list[str]) -> ast.ClassDef | None:
    found: ast.stmt | None = None
    for name in path:
        found = next((s for s in scope if isinstance(s, ast.ClassDef | ast.FunctionDef) and s.name == name), None)
        if found is None:
            return None
        scope = found.body
    return found if isinstance(found, ast.ClassDef) else None


class DescribingJsonSchema(GenerateJsonSchema):
    """A JSON schema generator that gives each model field without a `description` its attribute docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._models: list[type[BaseModel]] = []

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        self._models.append(schema["cls"])
        try:
            return super().model_schema(schema)
        finally:
            self._models.pop()

    def model_fields_schema(self, schema: core_schema.ModelFieldsSchema) -> JsonSchemaValue:
        json_schema = super().model_fields_schema(schema)
        if not self._models:
            return json_schema
        model = self._models[-1]
        properties = self.resolve_ref_schema(json_schema).get("properties", {})
        for name, field in schema["fields"].items():
            key = self._get_alias_name(field, name) if self.by_alias else name
            prop = properties.get(key)
            info = model.model_fields.get(name)
            if prop is None or info is None or info.description is not None or "description" in prop:
                continue
            docstring = self._field_docstring(model, name)
            if docstring is not None:
                # As pydantic does for a field's own description: dropped beside a `$ref` that already says it.
                properties[key] = self.handle_ref_overrides({**prop, "description": docstring})
        return json_schema

    def _field_docstring(self, model: type[BaseModel], name: str) -> str | None:
        """The docstring of `name` in the nearest class of `model`'s hierarchy that annotates it."""
        for cls in model.__mro__:
            if name in inspect.get_annotations(cls):
                return _class_docstrings(cls).get(name)
        return None


@functools.cache
def _class_docstrings(cls: type[Any]) -> Mapping[str, str]:
    """`attribute_docstrings`, once per class and process: the tests build the CRDs many times."""
    return attribute_docstrings(cls)
