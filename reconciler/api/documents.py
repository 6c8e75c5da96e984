"""A model's JSON document written straight from plain values, when the model's round trip would hand them back as
they are.

`plain_document(model, values)` is `model.model_validate(values).model_dump(mode="json", by_alias=True,
exclude_unset=True)`: the same keys in the same order with the same values, for the inputs it understands, and None
for every other (the caller then takes the round trip, which also raises what validation raises). It understands
what the status builders hand over (`engine.statuses.building`, once per object of a pass: 10,000 round trips in a
cold apply): strings, integers and booleans of exactly those types, literals, timestamps already in the one format
(`times`), condition-like nested documents, and nested models as instances or documents. Anything else (another
type, a constraint it does not know, a validator on the model, a field it cannot read) is refused, never guessed,
and the test suite builds every status both ways to keep the two equal. Pure.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel

from reconciler.api.times import Timestamp

__all__ = ["plain_document"]

Convert = Callable[[Any], Any]
"""A field's value as the document holds it, or `REFUSED`."""
Writer = Callable[[Mapping[str, Any]], dict[str, Any] | None]

REFUSED: Any = object()

_CONFIG_UNDERSTOOD = frozenset(
    {
        "defer_build",
        "extra",
        "alias_generator",
        "populate_by_name",
        "validate_default",
        "strict",
        "hide_input_in_errors",
    }
)
"""Model settings that change nothing about what a valid value dumps to; a model with any other is refused."""
_TIMESTAMP_METADATA = list(typing.get_args(Timestamp)[1:])
_ONE_FORMAT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")


def plain_document(model: type[BaseModel], values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The document `model` dumps `values` to (camelCase, only the fields given), or None when not sure."""
    write = _writer(model)
    return write(values) if write is not None else None


@functools.cache
def _writer(model: type[BaseModel]) -> Writer | None:
    """How to write `model`'s documents, or None when the model does anything this module does not repeat."""
    config = model.model_config
    decorators = model.__pydantic_decorators__
    if (
        not set(config) <= _CONFIG_UNDERSTOOD
        or config.get("revalidate_instances", "never") != "never"
        or any(
            (
                decorators.validators,
                decorators.field_validators,
                decorators.root_validators,
                decorators.field_serializers,
                decorators.model_serializers,
                decorators.model_validators,
                decorators.computed_fields,
            )
        )
    ):
        return None
    ignore_extra = config.get("extra", "ignore") == "ignore"
    strict = bool(config.get("strict", False))
    order: list[tuple[str, str]] = []
    converts: dict[str, tuple[str, Convert]] = {}
    required: set[str] = set()
    flat = True
    for name, info in model.model_fields.items():
        wire = info.serialization_alias or info.alias or name
        accepted = info.validation_alias if info.validation_alias is not None else (info.alias or name)
        if not isinstance(accepted, str) or info.exclude or info.discriminator is not None:
            return None
        convert = _convert(info.annotation, list(info.metadata), strict=strict)
        if convert is None:
            return None
        flat = flat and getattr(convert, "scalar", False)
        order.append((name, wire))
        converts[accepted] = (name, convert)
        if config.get("populate_by_name"):
            converts[name] = (name, convert)
        if info.is_required():
            required.add(name)

    def write(values: Mapping[str, Any]) -> dict[str, Any] | None:
        found: dict[str, Any] = {}
        for key, value in values.items():
            field = converts.get(key)
            if field is None:
                if ignore_extra and type(key) is str:
                    continue
                return None
            name, convert = field
            if name in found:
                return None  # given twice (by name and by alias): which one wins is the model's business
            written = convert(value)
            if written is REFUSED:
                return None
            found[name] = written
        if required and not required <= found.keys():
            return None
        return {wire: found[name] for name, wire in order if name in found}  # in the model's order, as it dumps

    return _remembering(write) if flat else write


def _remembering(write: Writer) -> Writer:
    """`write` for a model of scalar fields only, remembering the documents of recent inputs: a pass writes the
    same few conditions into thousands of statuses. An input is known by its keys, values and the values' exact
    types (`1`, `1.0` and `True` are equal keys in a dict, and not the same input)."""
    known: dict[tuple[Any, ...], dict[str, Any] | None] = {}

    def remembered(values: Mapping[str, Any]) -> dict[str, Any] | None:
        items = tuple(values.values())
        key = (tuple(values), tuple(map(type, items)), items)
        try:
            document = known[key]
        except TypeError:  # a value that cannot be a key is no scalar: the writer refuses it
            return write(values)
        except KeyError:
            if len(known) >= REMEMBERED:
                known.clear()
            document = known[key] = write(values)
        return dict(document) if document is not None else None

    return remembered


REMEMBERED = 4096
"""Documents remembered per flat model: more than the distinct conditions of a large pass."""


def _convert(annotation: Any, metadata: list[Any], *, strict: bool, nullable: bool = False) -> Convert | None:
    """The conversion of one field's type (or None as well, when `nullable`), or None when this module does not
    repeat what the model does to it. Scalar conversions are marked `scalar`."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *more = typing.get_args(annotation)
        return _convert(base, [*more, *metadata], strict=strict, nullable=nullable)
    if origin in (typing.Union, types.UnionType):
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        if len(members) != 1 or len(typing.get_args(annotation)) != 2 or metadata or nullable:
            return None
        return _convert(members[0], [], strict=strict, nullable=True)
    if annotation is dt.datetime:
        return _scalar(_in_the_one_format, str, nullable) if metadata == _TIMESTAMP_METADATA else None
    if annotation in (int, bool):
        return _scalar(None, annotation, nullable) if not metadata else None
    if annotation is str:
        return _text(metadata, nullable)
    if origin is Literal:
        choices = frozenset(typing.get_args(annotation))
        if metadata or not all(type(choice) is str for choice in choices):
            return None
        return _scalar(choices.__contains__, str, nullable)
    if origin is list and not nullable and not metadata:
        (item,) = typing.get_args(annotation)
        inner = _convert(item, [], strict=strict)
        return _listed(inner) if inner is not None else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel) and not metadata:
        return _nested(annotation, documents_accepted=not strict, nullable=nullable)
    return None


def _scalar(accepts: Callable[[Any], bool] | None, kind: type, nullable: bool) -> Convert:
    """A value of exactly type `kind` (not a subclass: the model would hand back a plain one) that `accepts`."""

    def scalar(value: Any) -> Any:
        if type(value) is kind and (accepts is None or accepts(value)):
            return value
        return None if nullable and value is None else REFUSED

    scalar.scalar = True  # type: ignore[attr-defined]
    return scalar


def _text(metadata: list[Any], nullable: bool) -> Convert | None:
    shortest, longest, pattern = 0, None, None
    for item in metadata:
        if isinstance(item, annotated_types.MinLen):
            shortest = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            longest = item.max_length
        elif set(vars(item)) == {"pattern"} and isinstance(item.pattern, str):
            if not (item.pattern.startswith("^") and item.pattern.endswith("$")):
                return None  # an unanchored pattern searches: leave it to the model
            pattern = re.compile(item.pattern)
        else:
            return None
    if not metadata:
        return _scalar(None, str, nullable)
    matches = pattern.fullmatch if pattern is not None else None

    def within(value: str) -> bool:
        if len(value) < shortest or (longest is not None and len(value) > longest):
            return False
        return matches is None or matches(value) is not None

    return _scalar(within, str, nullable)


@functools.lru_cache(maxsize=1024)
def _in_the_one_format(text: str) -> bool:
    """Written as `times.format_time` writes (so it reads back to itself), and a real moment."""
    if _ONE_FORMAT.fullmatch(text) is None:
        return False
    try:
        dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return False
    return True


def _listed(convert: Convert) -> Convert:
    def listed(value: Any) -> Any:
        if type(value) is not list:
            return REFUSED
        items = [convert(item) for item in value]
        return REFUSED if REFUSED in items else items

    return listed


def _nested(model: type[BaseModel], *, documents_accepted: bool, nullable: bool) -> Convert:
    accepts_documents = documents_accepted and not model.model_config.get("strict", False)

    def nested(value: Any) -> Any:
        if type(value) is model:  # kept as it is by the parent's validation: dumped as itself
            return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if accepts_documents and type(value) is dict:
            write = _writer(model)
            document = write(value) if write is not None else None
            return REFUSED if document is None else document
        return None if nullable and value is None else REFUSED

    return nested
