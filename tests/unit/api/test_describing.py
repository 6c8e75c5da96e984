"""`DescribingJsonSchema` fills field descriptions from attribute docstrings at generation time, as pydantic's
`use_attribute_docstrings` would at every model build: a documented field gets its text, an undocumented one
none, nested and inherited models too, and an explicit `Field(description=...)` is kept."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from reconciler.api.common import Model, ObjectMeta
from reconciler.api.describing import DescribingJsonSchema, attribute_docstrings
from reconciler.api.server import MCPServerSpec


class Inner(Model):
    """An inner object."""

    depth: int = 0
    """How deep it goes.

        Indented continuation lines are dedented."""
    undocumented: str = ""


class Outer(Model):
    """An outer object."""

    inner: Inner
    """The nested one."""
    inners: list[Inner] = Field(default_factory=list)
    """Several nested ones."""
    maybe: Inner | None = None
    label: str = Field(default="", description="said explicitly")
    """Not used: the explicit description wins."""

    def method(self) -> None:
        """A method's docstring documents no field."""


class Derived(Outer):
    """Inherits Outer's fields and documents one of its own."""

    extra: int = 0
    """Only on the derived model."""
    maybe: Inner | None = None  # redeclared without a docstring: pydantic would give it none either


def schema_of(model: type[Model]) -> dict[str, Any]:
    return model.model_json_schema(by_alias=True, schema_generator=DescribingJsonSchema)


def properties(schema: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    node = schema if name is None else schema["$defs"][name]
    found: dict[str, Any] = node["properties"]
    return found


def test_a_documented_field_is_described_by_its_docstring_and_an_undocumented_one_is_not() -> None:
    inner = properties(schema_of(Inner))
    assert inner["depth"]["description"] == "How deep it goes.\n\nIndented continuation lines are dedented."
    assert "description" not in inner["undocumented"]


def test_nested_models_are_described_where_they_are_defined_and_where_they_are_used() -> None:
    schema = schema_of(Outer)
    outer = properties(schema)
    assert outer["inner"]["description"] == "The nested one."
    assert outer["inners"]["description"] == "Several nested ones."
    assert "description" not in outer["maybe"]
    assert properties(schema, "Inner")["depth"]["description"].startswith("How deep it goes.")
    assert schema["$defs"]["Inner"]["description"] == "An inner object."


def test_an_explicit_description_wins_and_only_annotated_attributes_are_documented() -> None:
    assert properties(schema_of(Outer))["label"]["description"] == "said explicitly"
    assert attribute_docstrings(Outer) == {
        "inner": "The nested one.",
        "inners": "Several nested ones.",
        "label": "Not used: the explicit description wins.",
    }


def test_an_inherited_field_keeps_the_docstring_of_the_class_that_declares_it() -> None:
    derived = properties(schema_of(Derived))
    assert derived["inner"]["description"] == "The nested one."
    assert derived["extra"]["description"] == "Only on the derived model."
    assert "description" not in derived["maybe"]


def test_a_model_defined_in_a_function_is_described_too() -> None:
    class Local(Model):
        count: int = 0
        """How many."""

    assert properties(schema_of(Local))["count"]["description"] == "How many."


def test_the_models_themselves_carry_no_docstring_descriptions() -> None:
    """Reading docstrings is left to schema generation: building a model must not parse its source."""
    assert MCPServerSpec.model_fields["url"].description is None
    assert "url" in attribute_docstrings(MCPServerSpec)
    assert all(field.description is None for field in ObjectMeta.model_fields.values())
