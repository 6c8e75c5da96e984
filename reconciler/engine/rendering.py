"""Tenant templating for `spec.url` and literal header values, in a Jinja sandbox.

The engine calls `render_template` once per templated field while it builds desired rows; it attaches the
file, object and field to a `TemplateError` itself. Templates see only `tenant.slug` and `tenant.vars.NAME`
and use a deliberately small language (expressions, `if`, a few string filters; no loops, assignments,
macros or calls), so a manifest can neither escape the sandbox nor make the reconciler spin or allocate
without bound. Text without template markers never reaches Jinja: that path runs for every object.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2.exceptions
from jinja2 import StrictUndefined, nodes
from jinja2.environment import Template
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

from reconciler.engine.inputs import Tenant

__all__ = ["MAX_RENDERED_LENGTH", "TemplateError", "render_template"]

MAX_RENDERED_LENGTH = 8192
"""Longest rendered value accepted, in characters (an HTTP header value has to stay reasonable)."""

_TEMPLATE_MARKERS = ("{{", "{%", "{#")

# Only node types a URL or header value plausibly needs; anything that can loop, assign, call or multiply
# is refused before compilation, so rendering cost stays proportional to the template and its variables.
_ALLOWED_NODES: tuple[type[nodes.Node], ...] = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.If,
    nodes.Const,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Filter,
    nodes.Test,
    nodes.Keyword,
    nodes.CondExpr,
    nodes.Compare,
    nodes.Operand,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Concat,
    nodes.List,
    nodes.Tuple,
)


class TemplateError(Exception):
    """A template that cannot be rendered for a tenant; the message is plain and holds no secret."""


class _Scope:
    """A read-only namespace for templates that reports its own dotted path when a name is missing.

    Deliberately not a dict and without public attributes: the sandbox looks attributes up before keys, so
    any public name here (or dict methods such as `items`) would shadow a tenant variable of the same name.
    """

    __slots__ = ("_path", "_values")

    def __init__(self, path: str, values: Mapping[str, object]) -> None:
        self._path = path
        self._values = values

    def __getitem__(self, name: str) -> object:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def __str__(self) -> str:
        raise TemplateError(f"{self._path} is a group of values, not a value: use {self._path}.NAME")


class _TemplateUndefined(StrictUndefined):
    """Strict undefined whose message names the full variable path, e.g. `tenant.vars.region`."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name = self._undefined_name
        owner = self._undefined_obj
        if owner is missing:
            return f"undefined template variable {name}"
        if isinstance(owner, _Scope):
            return f"undefined template variable {owner._path}.{name}"
        return f"undefined template variable: {type(owner).__name__} value has no {name!r}"


def _bounded_replace(value: object, old: object, new: object, count: int | None = None) -> str:
    """`replace` that refuses to build an oversized string rather than building it and failing later.

    Positional parameters on purpose: templates call it as `replace(old, new, count)`.
    """
    text, old_text, new_text = str(value), str(old), str(new)
    occurrences = text.count(old_text) if old_text else len(text) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    if len(text) + occurrences * max(len(new_text) - len(old_text), 0) > MAX_RENDERED_LENGTH:
        raise TemplateError(f"rendered value would be longer than {MAX_RENDERED_LENGTH} characters")
    return text.replace(old_text, new_text, -1 if count is None else count)


def _build_environment() -> SandboxedEnvironment:
    environment = SandboxedEnvironment(undefined=_TemplateUndefined, autoescape=False)
    environment.globals.clear()
    kept = ("default", "d", "lower", "upper", "trim", "title", "capitalize", "urlencode", "string")
    filters = {name: environment.filters[name] for name in kept}
    filters["replace"] = _bounded_replace
    environment.filters.clear()
    environment.filters.update(filters)
    return environment


_ENVIRONMENT = _build_environment()


_REFUSED_DESCRIPTIONS = {
    nodes.For: "loops",
    nodes.Call: "function and method calls",
    nodes.Assign: "assignments",
    nodes.AssignBlock: "assignments",
    nodes.Macro: "macros",
    nodes.CallBlock: "macros",
    nodes.BinExpr: "arithmetic",
    nodes.UnaryExpr: "arithmetic",
    nodes.Slice: "slices",
    nodes.Include: "includes and imports",
    nodes.Import: "includes and imports",
    nodes.FromImport: "includes and imports",
    nodes.Extends: "includes and imports",
}


def _describe_refused(node: nodes.Node) -> str:
    for node_type, description in _REFUSED_DESCRIPTIONS.items():
        if isinstance(node, node_type):
            return description
    return f"{type(node).__name__} nodes"


def _refuse_unsupported(tree: nodes.Template) -> None:
    for node in tree.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED_NODES):
            raise TemplateError(
                f"template uses {_describe_refused(node)}, which url and header values do not support "
                "(use expressions, if and filters only)"
            )
        if isinstance(node, nodes.Filter) and node.name not in _ENVIRONMENT.filters:
            allowed = ", ".join(sorted(_ENVIRONMENT.filters))
            raise TemplateError(f"template filter {node.name!r} is not available (use one of: {allowed})")


@functools.lru_cache(maxsize=4096)
def _compile(text: str) -> Template:
    """Parse, check and compile once per distinct source text; failures are not cached and raise again."""
    try:
        tree = _ENVIRONMENT.parse(text)
    except jinja2.exceptions.TemplateSyntaxError as error:
        raise TemplateError(f"template syntax error: {error.message} (line {error.lineno})") from None
    _refuse_unsupported(tree)
    try:
        return _ENVIRONMENT.from_string(tree)
    except jinja2.exceptions.TemplateError as error:
        raise TemplateError(f"template syntax error: {error.message}") from None


def _context(tenant: Tenant) -> dict[str, Any]:
    variables = _Scope("tenant.vars", dict(tenant.vars))
    return {"tenant": _Scope("tenant", {"slug": tenant.slug, "vars": variables})}


def _variables_hint(tenant: Tenant) -> str:
    if not tenant.vars:
        return f"tenant {tenant.slug} defines no variables"
    return f"tenant {tenant.slug} defines: {', '.join(sorted(tenant.vars))}"


def render_template(text: str, tenant: Tenant) -> str:
    """Render `text` for `tenant`; raise `TemplateError` rather than ever producing a silently wrong value."""
    if not any(marker in text for marker in _TEMPLATE_MARKERS):
        return text
    template = _compile(text)
    pieces: list[str] = []
    length = 0
    try:
        for piece in template.generate(_context(tenant)):
            length += len(piece)
            if length > MAX_RENDERED_LENGTH:
                raise TemplateError(f"rendered value is longer than {MAX_RENDERED_LENGTH} characters")
            pieces.append(piece)
    except jinja2.exceptions.SecurityError as error:
        raise TemplateError(f"template blocked by the sandbox: {error.message}") from None
    except jinja2.exceptions.UndefinedError as error:
        raise TemplateError(f"{error.message} ({_variables_hint(tenant)})") from None
    except jinja2.exceptions.TemplateError as error:
        raise TemplateError(f"template error: {error.message}") from None
    except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError) as error:
        raise TemplateError(f"template failed: {type(error).__name__}") from None
    return "".join(pieces)
