"""The one wording of a field the models refuse, shared by both drivers.

The folder loader (`manifests/`) and the operator (`operator/gathering.py`) both validate objects against the
models in this package and turn each pydantic error into a `Problem` through `describe_field_error`, so the CLI
and the cluster name the same invalid field by the same path with the same message. The loader adds the file and
line it knows; the operator has only the object. Pydantic's own messages are replaced by plain ones that never
echo the refused value (it could be a secret), and a field path is spelled the way the manifest spells it:
camelCase keys, `[i]` for list items, union tags such as `auth.type` left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic_core import ErrorDetails

from reconciler.api.common import DNS1123_LABEL, DNS1123_SUBDOMAIN
from reconciler.api.durations import DURATION_PATTERN
from reconciler.api.server import AUTH_TYPES, URL_PATTERN

__all__ = ["PATTERN_MEANINGS", "FieldError", "FieldStep", "describe_field_error", "join_path"]

DISCRIMINATOR_KEY = "type"
"""The key that selects a union's variant (`auth.type`); pydantic puts its value into error locations."""

PATTERN_MEANINGS = {
    DNS1123_SUBDOMAIN: "must be a DNS-1123 name: lowercase letters, digits, '-' and '.', "
    "starting and ending with a letter or digit",
    DNS1123_LABEL: "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter "
    "or digit",
    URL_PATTERN: "must be an http:// or https:// URL",
    DURATION_PATTERN: "must be a duration such as 30s, 10m or 1h30m",
}
"""What a pattern asks for, in words: a regular expression is no help to someone fixing a manifest."""

_KNOWN_TAGS = {"auth": AUTH_TYPES}
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_TYPE_MESSAGES = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "string_unicode": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "datetime_type": "must be an RFC 3339 timestamp",
    "datetime_parsing": "must be an RFC 3339 timestamp",
    "datetime_from_date_parsing": "must be an RFC 3339 timestamp",
}


@dataclass(frozen=True)
class FieldStep:
    """One part of a field path that exists in the validated data: a mapping key, or a list index."""

    key: str | int
    in_list: bool


@dataclass(frozen=True)
class FieldError:
    """A refused field in words: the message, the path as written in the manifest, and the steps of that path
    present in the data (the loader follows them through the YAML node tree to the source line)."""

    message: str
    field: str
    steps: tuple[FieldStep, ...]


def describe_field_error(detail: ErrorDetails, data: object) -> FieldError:
    """Word one pydantic error for `data`, the mapping that was validated. Pure; never quotes an input value.

    Pass details from `errors(include_input=False)`, with context kept: the wording reads it.
    """
    location = list(detail["loc"])
    context = detail.get("ctx") or {}
    if detail["type"] in ("union_tag_invalid", "union_tag_not_found"):
        location.append(str(context.get("discriminator", DISCRIMINATOR_KEY)).strip("'"))
    message = _plain_message(detail, location)
    if location and location[-1] == "[key]":
        location.pop()
        message = f"key {message}"
    field_path, steps = _walk(location, data)
    return FieldError(message=message, field=field_path, steps=steps)


def join_path(path: str, key: object) -> str:
    """`path.key`, or `path['odd key']` when the key is not a plain identifier."""
    text = str(key)
    if _PLAIN_KEY.match(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{text!r}]"


def _plain_message(detail: ErrorDetails, location: list[int | str]) -> str:
    error_type = detail["type"]
    context = detail.get("ctx") or {}
    owner = next((str(part) for part in reversed(location[:-1]) if isinstance(part, str)), "")
    if error_type == "union_tag_invalid":
        expected = str(context.get("expected_tags", "")).replace("'", "")
        return f"unknown {owner} type {context.get('tag')!r}: use one of {expected}"
    if error_type == "union_tag_not_found":
        allowed = _KNOWN_TAGS.get(owner)
        return "required field is missing" + (f" (use one of {', '.join(allowed)})" if allowed else "")
    if error_type in ("value_error", "assertion_error") and "error" in context:
        return str(context["error"])
    if error_type in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[error_type]
    if error_type == "literal_error":
        return f"must be one of {context.get('expected')}"
    if error_type == "string_pattern_mismatch":
        pattern = str(context.get("pattern"))
        return PATTERN_MEANINGS.get(pattern, f"must match the pattern {pattern}")
    if error_type == "string_too_short":
        minimum = context.get("min_length")
        return "must not be empty" if minimum == 1 else f"must be at least {minimum} characters"
    if error_type == "string_too_long":
        return f"must be at most {context.get('max_length')} characters"
    if error_type == "less_than_equal":
        return f"must be at most {context.get('le')}"
    if error_type == "greater_than_equal":
        return f"must be at least {context.get('ge')}"
    if error_type == "too_short":
        return f"needs at least {context.get('min_length')} item(s)"
    if error_type == "too_long":
        return f"allows at most {context.get('max_length')} items"
    return detail["msg"].removeprefix("Value error, ")


def _walk(location: list[int | str], data: Any) -> tuple[str, tuple[FieldStep, ...]]:
    """Field path for a pydantic location, and the steps of it that exist in `data`.

    Location parts that are union tags rather than keys (pydantic inserts the `auth.type` value) are dropped;
    past the first part missing from the data, the rest is spelled from the location alone.
    """
    path = ""
    steps: list[FieldStep] = []
    found = True
    for part in location:
        if found and isinstance(data, dict) and part not in data and data.get(DISCRIMINATOR_KEY) == part:
            continue
        if isinstance(part, int) and (not found or isinstance(data, list)):
            path = f"{path}[{part}]"
        else:
            path = join_path(path, part)
        if not found:
            continue
        if isinstance(data, dict) and part in data:
            data = data[part]
            steps.append(FieldStep(part, in_list=False))
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
            steps.append(FieldStep(part, in_list=True))
        else:
            found = False
    return path, tuple(steps)
