"""A strict, small renderer for the Go template + Sprig subset the chart uses, so tests can render it without `helm`.

Used by `test_chart.py` (no `helm` binary can be installed from the registries this project may use; see
docs/helm.md). It follows Helm's semantics where they bite: values numbers are float64 (so `eq` between a
value and an int literal fails, as in Helm), a missing map key is nil and a field of nil is an error, unknown
functions and undefined variables fail at parse time even in branches that never run, `{{-`/`-}}` trim
whitespace, and `toYaml` drops the trailing newline. Functions outside the subset are not defined: using one
in the chart makes the tests fail until it is added here (or replaced in the chart), never silently.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Chart", "RenderError", "TemplateSyntaxError", "go_values", "merge_values", "render_chart"]


class TemplateSyntaxError(Exception):
    """A template does not parse (unbalanced actions, unknown function, undefined variable...)."""


class RenderError(Exception):
    """Executing a template failed (`fail`, `required`, nil pointer, bad comparison...)."""


# --------------------------------------------------------------------------------------------------- lexing
WHITESPACE = " \t\r\n"


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    source: str
    line: int


def _scan_action_end(src: str, start: int) -> int:
    """Index of the `}}` closing an action that starts at `start` (just after `{{`), skipping string literals."""
    i = start
    while i < len(src):
        char = src[i]
        if char in "\"'":
            i += 1
            while i < len(src) and src[i] not in (char, "\n"):
                i += 2 if src[i] == "\\" else 1
            if i >= len(src) or src[i] == "\n":
                raise TemplateSyntaxError(f"unterminated quoted string in action at offset {start}")
        elif char == "`":
            end = src.find("`", i + 1)
            if end < 0:
                raise TemplateSyntaxError(f"unterminated raw string in action at offset {start}")
            i = end
        elif src.startswith("}}", i):
            return i
        elif src.startswith("{{", i):
            raise TemplateSyntaxError(f"unexpected '{{{{' inside an action at offset {start}")
        i += 1
    raise TemplateSyntaxError(f"unclosed action: '{{{{' at offset {start - 2} has no '}}}}'")


def lex(src: str) -> list[_Text | _Action]:
    """Split into text and actions, applying `{{-` / `-}}` trimming and dropping comments."""
    items: list[_Text | _Action] = []
    pos = 0
    trim_next = False
    while True:
        open_at = src.find("{{", pos)
        text = src[pos:] if open_at < 0 else src[pos:open_at]
        if trim_next:
            text = text.lstrip(WHITESPACE)
        if open_at < 0:
            if "}}" in text:
                raise TemplateSyntaxError(
                    f"unexpected '}}}}' without '{{{{' near line {src.count(chr(10), 0, pos) + 1}"
                )
            items.append(_Text(text))
            return items
        inner_start = open_at + 2
        trim_left = (
            src.startswith("- ", inner_start)
            or src.startswith("-\n", inner_start)
            or src.startswith("-\t", inner_start)
        )
        if trim_left:
            text = text.rstrip(WHITESPACE)
            inner_start += 1
        if "}}" in text:
            raise TemplateSyntaxError(f"unexpected '}}}}' without '{{{{' near line {src.count(chr(10), 0, pos) + 1}")
        items.append(_Text(text))
        line = src.count("\n", 0, open_at) + 1
        if src.startswith("/*", inner_start):
            comment_end = src.find("*/", inner_start + 2)
            if comment_end < 0:
                raise TemplateSyntaxError(f"line {line}: unclosed comment")
            after = comment_end + 2
            trim_next = src.startswith(" -}}", after)
            if not trim_next and not src.startswith("}}", after):
                raise TemplateSyntaxError(f"line {line}: comment ends before closing delimiter")
            pos = after + (4 if trim_next else 2)
            continue
        close_at = _scan_action_end(src, inner_start)
        inner_end = close_at
        trim_next = src[close_at - 2 : close_at] in (" -", "\n-", "\t-")
        if trim_next:
            inner_end -= 1
        items.append(_Action(src[inner_start:inner_end].strip(WHITESPACE), line))
        pos = close_at + 2


# --------------------------------------------------------------------------------------------------- parsing
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\)(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<comma>,)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>-?(?:0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))
  | (?P<variable>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)


def _tokens(source: str, line: int) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise TemplateSyntaxError(f"line {line}: unexpected {source[pos:]!r} in action {{{{{source}}}}}")
        kind = match.lastgroup or ""
        if kind != "space":
            found.append((kind, match.group()))
        pos = match.end()
    return found


def _go_string(literal: str) -> str:
    return str(json.loads(literal.replace("\\'", "'")))


@dataclass
class Operand:
    kind: str  # const | field | var | paren | ident
    value: Any = None
    path: tuple[str, ...] = ()


@dataclass
class Command:
    operands: list[Operand]


@dataclass
class Pipeline:
    commands: list[Command]
    declare: tuple[str, ...] = ()
    assign: bool = False
    line: int = 0


@dataclass
class Node:
    kind: str  # text | output | if | range | with | template
    text: str = ""
    pipeline: Pipeline | None = None
    branches: list[tuple[Pipeline, list[Node]]] = field(default_factory=list)
    body: list[Node] = field(default_factory=list)
    else_body: list[Node] = field(default_factory=list)
    name: str = ""


class _Parser:
    def __init__(self, items: list[_Text | _Action], functions: Mapping[str, Any], origin: str) -> None:
        self.items = items
        self.pos = 0
        self.functions = functions
        self.origin = origin
        self.defines: dict[str, list[Node]] = {}
        self.scopes: list[set[str]] = [{"$"}]

    def error(self, line: int, message: str) -> TemplateSyntaxError:
        return TemplateSyntaxError(f"{self.origin}:{line}: {message}")

    # -- pipelines
    def pipeline(self, source: str, line: int, *, allow_declare: bool = True, range_vars: bool = False) -> Pipeline:
        tokens = _tokens(source, line)
        declare: tuple[str, ...] = ()
        assign = False
        if allow_declare and len(tokens) >= 2 and tokens[0][0] == "variable":
            if tokens[1][0] in ("declare", "assign"):
                declare, assign, tokens = (tokens[0][1],), tokens[1][0] == "assign", tokens[2:]
            elif range_vars and len(tokens) >= 4 and tokens[1][0] == "comma" and tokens[3][0] == "declare":
                declare, tokens = (tokens[0][1], tokens[2][1]), tokens[4:]
        if assign and not self._defined(declare[0]):
            raise self.error(line, f"undefined variable {declare[0]}")
        stream = iter(tokens)
        result, closer = self._commands(stream, line)
        if closer is not None:
            raise self.error(line, "unexpected ')'")
        result.declare, result.assign, result.line = declare, assign, line
        if not result.commands:
            raise self.error(line, f"missing value in action {{{{{source}}}}}")
        return result

    def _commands(self, stream: Iterator[tuple[str, str]], line: int) -> tuple[Pipeline, str | None]:
        commands: list[Command] = []
        current: list[Operand] = []
        for kind, text in stream:
            if kind == "pipe":
                if not current:
                    raise self.error(line, "missing command before '|'")
                commands.append(Command(current))
                current = []
            elif kind == "rparen":
                if current:
                    commands.append(Command(current))
                return Pipeline(commands), text
            else:
                current.append(self._operand(kind, text, stream, line))
        if current:
            commands.append(Command(current))
        return Pipeline(commands), None

    def _operand(self, kind: str, text: str, stream: Iterator[tuple[str, str]], line: int) -> Operand:
        if kind == "string":
            return Operand("const", _go_string(text))
        if kind == "raw":
            return Operand("const", text[1:-1])
        if kind == "number":
            return Operand("const", float(text) if re.search(r"[.eE]", text) and "x" not in text else int(text, 0))
        if kind == "field":
            return Operand("field", path=tuple(part for part in text.split(".") if part))
        if kind == "variable":
            name, *path = text.split(".")
            if not self._defined(name):
                raise self.error(line, f"undefined variable {name}")
            return Operand("var", name, tuple(path))
        if kind == "ident":
            if text in ("true", "false"):
                return Operand("const", text == "true")
            if text == "nil":
                return Operand("const", None)
            if text not in self.functions:
                raise self.error(line, f'function "{text}" not defined')
            return Operand("ident", text)
        if kind == "lparen":
            inner, closer = self._commands(stream, line)
            if closer is None:
                raise self.error(line, "unclosed '('")
            return Operand("paren", inner, tuple(part for part in closer[1:].split(".") if part))
        raise self.error(line, f"unexpected {text!r}")

    def _defined(self, name: str) -> bool:
        return any(name in scope for scope in self.scopes)

    # -- structure
    def parse(self, until: tuple[str, ...] = ()) -> tuple[list[Node], str, _Action | None]:
        nodes: list[Node] = []
        while self.pos < len(self.items):
            item = self.items[self.pos]
            self.pos += 1
            if isinstance(item, _Text):
                if item.text:
                    nodes.append(Node("text", text=item.text))
                continue
            word = item.source.split(None, 1)[0] if item.source else ""
            rest = item.source[len(word) :].strip()
            if word in ("end", "else"):
                if word not in until:
                    raise self.error(item.line, f"unexpected {{{{{word}}}}}")
                return nodes, word, item
            if word == "if":
                nodes.append(self._if(rest, item.line))
            elif word in ("range", "with"):
                nodes.append(self._block(word, rest, item.line))
            elif word == "define":
                self._define(rest, item.line)
            elif word == "template":
                name_token, *arg = rest.split(None, 1)
                pipeline = self.pipeline(arg[0], item.line, allow_declare=False) if arg else None
                nodes.append(Node("template", name=_go_string(name_token), pipeline=pipeline))
            elif word in ("block", "break", "continue"):
                raise self.error(item.line, f"{{{{{word}}}}} is outside the supported subset")
            else:
                pipeline = self.pipeline(item.source, item.line)
                if pipeline.declare and not pipeline.assign:
                    self.scopes[-1].add(pipeline.declare[0])
                nodes.append(Node("output", pipeline=pipeline))
        if until:
            raise self.error(0, f"unexpected EOF: missing {{{{end}}}} ({' or '.join(until)})")
        return nodes, "", None

    def _scoped(self, until: tuple[str, ...], names: tuple[str, ...] = ()) -> tuple[list[Node], str, _Action | None]:
        self.scopes.append(set(names))
        try:
            return self.parse(until)
        finally:
            self.scopes.pop()

    def _if(self, rest: str, line: int) -> Node:
        node = Node("if")
        condition = self.pipeline(rest, line)
        while True:
            body, word, action = self._scoped(("else", "end"), condition.declare)
            node.branches.append((condition, body))
            if word == "end":
                return node
            assert action is not None
            tail = action.source[len("else") :].strip()
            if tail.startswith("if "):
                condition = self.pipeline(tail[3:], action.line)
                continue
            if tail:
                raise self.error(action.line, f"unsupported {{{{else {tail}}}}}")
            node.else_body, word, _ = self._scoped(("end",))
            return node

    def _block(self, word: str, rest: str, line: int) -> Node:
        pipeline = self.pipeline(rest, line, range_vars=word == "range")
        node = Node(word, pipeline=pipeline)
        node.body, ended, action = self._scoped(("else", "end"), pipeline.declare)
        if ended == "else":
            assert action is not None
            if action.source.strip() != "else":
                raise self.error(action.line, f"unsupported {{{{{action.source}}}}}")
            node.else_body, _, _ = self._scoped(("end",))
        return node

    def _define(self, rest: str, line: int) -> None:
        name = _go_string(rest.strip())
        saved, self.scopes = self.scopes, [{"$"}]
        try:
            body, _, _ = self.parse(("end",))
        finally:
            self.scopes = saved
        if name in self.defines:
            raise self.error(line, f"template {name!r} defined twice")
        self.defines[name] = body


# --------------------------------------------------------------------------------------------------- values
class Struct(dict[str, Any]):
    """A Go struct (`.Release`, `.Chart`): a missing field is an error, unlike a map key."""


def go_values(value: Any) -> Any:
    """Values as Helm holds them after reading YAML: every number is a float64."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Mapping):
        return {key: go_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [go_values(item) for item in value]
    raise TypeError(f"unsupported value {value!r}")


def merge_values(defaults: Any, overrides: Any) -> Any:
    """Helm's coalescing of `-f`/`--set` over values.yaml: maps merge deeply, `null` removes a key."""
    if not isinstance(defaults, Mapping) or not isinstance(overrides, Mapping):
        return overrides
    merged = dict(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif key in merged:
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def truth(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str | list | dict | tuple):
        return len(value) > 0
    return True


def _format_float(value: float) -> str:
    """Go's %v for a float64 (strconv 'g', shortest): exponent form below 1e-4 and from 1e+06 up, as Helm prints."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exp = Decimal(repr(abs(value))).normalize().as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digit_tuple))
    exponent = len(digits) - 1 + exp
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'+' if exponent >= 0 else '-'}{abs(exponent):02d}"
    if exp >= 0:
        return sign + digits + "0" * exp
    point = len(digits) + exp
    if point > 0:
        return f"{sign}{digits[:point]}.{digits[point:]}"
    return f"{sign}0.{'0' * -point}{digits}"


def to_text(value: Any) -> str:
    """How `{{ value }}` prints (fmt %v), with Helm's `<no value>` replaced by the empty string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _format_float(value)
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, list):
        return "[" + " ".join(to_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{to_text(value[key])}" for key in sorted(value)) + "]"
    return str(value)


def _plain(value: Any) -> Any:
    """JSON-like data with integral floats as ints, the way sigs.k8s.io/yaml writes them."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# --------------------------------------------------------------------------------------------------- functions
def _kind(value: Any) -> str:
    if value is None:
        return "invalid"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _compare(name: str, left: Any, right: Any) -> int:
    kinds = _kind(left), _kind(right)
    if "invalid" in kinds or "other" in kinds:
        raise RenderError(f"error calling {name}: invalid type for comparison")
    if kinds[0] != kinds[1]:
        raise RenderError(f"error calling {name}: incompatible types for comparison ({kinds[0]} and {kinds[1]})")
    if name in ("lt", "le", "gt", "ge") and kinds[0] == "bool":
        raise RenderError(f"error calling {name}: invalid type for comparison")
    return (left > right) - (left < right)


def _eq(left: Any, *others: Any) -> bool:
    if not others:
        raise RenderError("error calling eq: missing argument for comparison")
    return any(_compare("eq", left, other) == 0 for other in others)


def _printf(template: str, *args: Any) -> str:
    queue = list(args)

    def substitute(match: re.Match[str]) -> str:
        verb = match.group(1)
        if verb == "%":
            return "%"
        if not queue:
            return f"%!{verb}(MISSING)"
        value = queue.pop(0)
        if verb == "q":
            return json.dumps(to_text(value))
        if verb == "d":
            if _kind(value) != "int":
                return f"%!d({_kind(value)}={to_text(value)})"
            return str(value)
        return to_text(value)

    text = re.sub(r"%([svdq%])", substitute, template)
    if queue:
        text += "%!(EXTRA " + ", ".join(to_text(item) for item in queue) + ")"
    return text


def _print(*args: Any) -> str:
    out = ""
    for index, arg in enumerate(args):
        if index and not isinstance(arg, str) and not isinstance(args[index - 1], str):
            out += " "
        out += to_text(arg)
    return out


def _to_yaml(value: Any) -> str:
    if value is None:
        return "null"
    return yaml.safe_dump(_plain(value), default_flow_style=False, sort_keys=True, width=1_000_000).removesuffix("\n")


def _indent(width: Any, text: Any) -> str:
    pad = " " * int(width)
    return pad + to_text(text).replace("\n", "\n" + pad)


def _to_int(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value)) if value else 0
        except ValueError:
            return 0
    return 0


def _required(message: str, value: Any) -> Any:
    if value is None or value == "":
        raise RenderError(f"execution error: {message}")
    return value


def _fail(message: str) -> None:
    raise RenderError(f"execution error: {message}")


def _trunc(length: Any, text: str) -> str:
    length = int(length)
    if length < 0:
        return text[length:] if -length < len(text) else text
    return text[:length]


def _index(collection: Any, *keys: Any) -> Any:
    for key in keys:
        if collection is None:
            raise RenderError("error calling index: index of untyped nil")
        collection = collection[int(key)] if isinstance(collection, list) else collection.get(key)
    return collection


def _dict(*pairs: Any) -> dict[str, Any]:
    if len(pairs) % 2:
        pairs = (*pairs, "")
    return {to_text(pairs[i]): pairs[i + 1] for i in range(0, len(pairs), 2)}


def _quote(*args: Any) -> str:
    return " ".join(json.dumps(to_text(arg), ensure_ascii=False) for arg in args if arg is not None)


BASE_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "and": lambda *a: a[-1],  # short-circuited in _call
    "or": lambda *a: a[-1],  # short-circuited in _call
    "not": lambda value: not truth(value),
    "eq": _eq,
    "ne": lambda left, right: _compare("ne", left, right) != 0,
    "lt": lambda left, right: _compare("lt", left, right) < 0,
    "le": lambda left, right: _compare("le", left, right) <= 0,
    "gt": lambda left, right: _compare("gt", left, right) > 0,
    "ge": lambda left, right: _compare("ge", left, right) >= 0,
    "len": lambda value: len(value) if value is not None else 0,
    "index": _index,
    "print": _print,
    "printf": _printf,
    "default": lambda fallback, *given: given[0] if given and truth(given[0]) else fallback,
    "empty": lambda value: not truth(value),
    "required": _required,
    "fail": _fail,
    "quote": _quote,
    "squote": lambda *a: " ".join("'" + to_text(x) + "'" for x in a if x is not None),
    "toYaml": _to_yaml,
    "toJson": lambda value: json.dumps(_plain(value), sort_keys=True, separators=(",", ":")),
    "indent": _indent,
    "nindent": lambda width, text: "\n" + _indent(width, text),
    "trunc": _trunc,
    "trim": lambda text: to_text(text).strip(),
    "trimSuffix": lambda suffix, text: to_text(text).removesuffix(suffix),
    "trimPrefix": lambda prefix, text: to_text(text).removeprefix(prefix),
    "replace": lambda old, new, text: to_text(text).replace(old, new),
    "contains": lambda needle, text: needle in to_text(text),
    "hasPrefix": lambda prefix, text: to_text(text).startswith(prefix),
    "hasSuffix": lambda suffix, text: to_text(text).endswith(suffix),
    "lower": lambda text: to_text(text).lower(),
    "upper": lambda text: to_text(text).upper(),
    "toString": to_text,
    "int": _to_int,
    "int64": _to_int,
    "list": lambda *items: list(items),
    "dict": _dict,
    "hasKey": lambda mapping, key: key in mapping,
    "join": lambda sep, items: sep.join(to_text(item) for item in (items or [])),
    "ternary": lambda yes, no, condition: yes if truth(condition) else no,
    "kindIs": lambda kind, value: (
        {"map": dict, "slice": list, "string": str, "bool": bool}.get(kind, type(None)) is type(value)
        or (kind == "float64" and isinstance(value, float))
    ),
    "include": None,  # bound per render
}


# --------------------------------------------------------------------------------------------------- execution
class _Execution:
    def __init__(self, defines: Mapping[str, list[Node]]) -> None:
        self.defines = defines
        self.functions = dict(BASE_FUNCTIONS)
        self.functions["include"] = self._include
        self.depth = 0

    def _include(self, name: str, data: Any) -> str:
        return self.run_define(name, data)

    def run_define(self, name: str, data: Any) -> str:
        if name not in self.defines:
            raise RenderError(f'no template "{name}" associated with template')
        self.depth += 1
        if self.depth > 100:
            raise RenderError(f"template {name!r}: exceeded maximum template depth")
        try:
            out: list[str] = []
            self.execute(self.defines[name], data, [{"$": data}], out)
            return "".join(out)
        finally:
            self.depth -= 1

    # -- evaluation
    def _lookup(self, scopes: list[dict[str, Any]], name: str) -> Any:
        for scope in reversed(scopes):
            if name in scope:
                return scope[name]
        raise RenderError(f"undefined variable {name}")

    def _fields(self, value: Any, path: tuple[str, ...], shown: str) -> Any:
        for name in path:
            if value is None:
                raise RenderError(f"nil pointer evaluating interface {{}}.{name} (in {shown})")
            if isinstance(value, Struct):
                if name not in value:
                    raise RenderError(f"can't evaluate field {name} (in {shown})")
                value = value[name]
            elif isinstance(value, dict):
                value = value.get(name)
            else:
                raise RenderError(f"can't evaluate field {name} in type {_kind(value)} (in {shown})")
        return value

    def operand(self, op: Operand, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        if op.kind == "const":
            return op.value
        if op.kind == "field":
            return self._fields(dot, op.path, "." + ".".join(op.path))
        if op.kind == "var":
            return self._fields(self._lookup(scopes, op.value), op.path, op.value)
        if op.kind == "paren":
            return self._fields(self.pipeline(op.value, dot, scopes), op.path, "(...)")
        if op.kind == "ident":
            return self._call(op.value, [], dot, scopes, None)
        raise RenderError(f"bad operand {op}")

    def _call(
        self, name: str, args: list[Operand], dot: Any, scopes: list[dict[str, Any]], piped: tuple[Any] | None
    ) -> Any:
        if name in ("and", "or"):
            values = [lambda op=op: self.operand(op, dot, scopes) for op in args]
            if piped is not None:
                values.append(lambda: piped[0])
            if not values:
                raise RenderError(f"wrong number of args for {name}")
            result = None
            for thunk in values:
                result = thunk()
                if truth(result) is (name == "or"):
                    return result
            return result
        evaluated = [self.operand(op, dot, scopes) for op in args]
        if piped is not None:
            evaluated.append(piped[0])
        try:
            return self.functions[name](*evaluated)
        except (RenderError, TemplateSyntaxError):
            raise
        except Exception as err:
            raise RenderError(f"error calling {name}: {err}") from err

    def pipeline(self, pipe: Pipeline, dot: Any, scopes: list[dict[str, Any]]) -> Any:
        piped: tuple[Any] | None = None
        for command in pipe.commands:
            first, *rest = command.operands
            if first.kind == "ident":
                value = self._call(first.value, rest, dot, scopes, piped)
            else:
                if rest or piped is not None:
                    raise RenderError(f"line {pipe.line}: can't give argument to non-function")
                value = self.operand(first, dot, scopes)
            piped = (value,)
        assert piped is not None
        value = piped[0]
        if pipe.declare:
            if pipe.assign:
                for scope in reversed(scopes):
                    if pipe.declare[0] in scope:
                        scope[pipe.declare[0]] = value
                        break
            else:
                scopes[-1][pipe.declare[0]] = value
        return value

    def execute(self, nodes: list[Node], dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "output":
                assert node.pipeline is not None
                value = self.pipeline(node.pipeline, dot, scopes)
                if not node.pipeline.declare:
                    out.append(to_text(value))
            elif node.kind == "if":
                for condition, body in node.branches:
                    inner = [*scopes, {}]
                    if truth(self.pipeline(condition, dot, inner)):
                        self.execute(body, dot, inner, out)
                        break
                else:
                    self.execute(node.else_body, dot, [*scopes, {}], out)
            elif node.kind == "with":
                assert node.pipeline is not None
                inner = [*scopes, {}]
                value = self.pipeline(node.pipeline, dot, inner)
                if truth(value):
                    self.execute(node.body, value, inner, out)
                else:
                    self.execute(node.else_body, dot, [*scopes, {}], out)
            elif node.kind == "range":
                self._range(node, dot, scopes, out)
            elif node.kind == "template":
                data = self.pipeline(node.pipeline, dot, scopes) if node.pipeline else None
                out.append(self.run_define(node.name, data))

    def _range(self, node: Node, dot: Any, scopes: list[dict[str, Any]], out: list[str]) -> None:
        assert node.pipeline is not None
        names = node.pipeline.declare
        plain = Pipeline(node.pipeline.commands, line=node.pipeline.line)
        collection = self.pipeline(plain, dot, scopes)
        if collection is None:
            pairs: list[tuple[Any, Any]] = []
        elif isinstance(collection, dict):
            pairs = [(key, collection[key]) for key in sorted(collection)]
        elif isinstance(collection, list):
            pairs = list(enumerate(collection))
        else:
            raise RenderError(f"line {plain.line}: range can't iterate over {to_text(collection)}")
        if not pairs:
            self.execute(node.else_body, dot, [*scopes, {}], out)
            return
        for key, value in pairs:
            scope: dict[str, Any] = {}
            if len(names) == 1:
                scope[names[0]] = value
            elif len(names) == 2:
                scope[names[0]], scope[names[1]] = key, value
            self.execute(node.body, value, [*scopes, scope], out)


# --------------------------------------------------------------------------------------------------- charts
@dataclass
class Chart:
    """A chart folder: metadata, default values, schema and parsed templates."""

    root: Path
    metadata: dict[str, Any]
    values: dict[str, Any]
    templates: dict[str, list[Node]]
    defines: dict[str, list[Node]]

    @classmethod
    def load(cls, root: Path) -> Chart:
        metadata = yaml.safe_load((root / "Chart.yaml").read_text())
        values = yaml.safe_load((root / "values.yaml").read_text()) or {}
        templates: dict[str, list[Node]] = {}
        defines: dict[str, list[Node]] = {}
        for path in sorted((root / "templates").rglob("*")):
            if not path.is_file() or path.suffix not in (".yaml", ".yml", ".tpl", ".txt"):
                continue
            name = path.relative_to(root).as_posix()
            parser = _Parser(lex(path.read_text()), BASE_FUNCTIONS, name)
            nodes, _, _ = parser.parse()
            for define, body in parser.defines.items():
                if define in defines:
                    raise TemplateSyntaxError(f"{name}: template {define!r} defined twice")
                defines[define] = body
            if not path.name.startswith("_"):
                templates[name] = nodes
        return cls(root, metadata, values, templates, defines)

    def render(
        self, values: Mapping[str, Any], *, release: str = "mcp", namespace: str = "mcp-system"
    ) -> dict[str, str]:
        """Every non-partial template's text, as `helm template` renders it (NOTES.txt included)."""
        top = {
            "Values": go_values(values),
            "Release": Struct(
                Name=release, Namespace=namespace, Service="Helm", IsInstall=True, IsUpgrade=False, Revision=1.0
            ),
            "Chart": Struct(
                Name=self.metadata["name"],
                Version=self.metadata["version"],
                AppVersion=self.metadata.get("appVersion", ""),
                Description=self.metadata.get("description", ""),
            ),
            "Template": Struct(Name="", BasePath=f"{self.metadata['name']}/templates"),
        }
        rendered: dict[str, str] = {}
        for name, nodes in self.templates.items():
            execution = _Execution(self.defines)
            out: list[str] = []
            top["Template"] = Struct(Name=f"{self.metadata['name']}/{name}", BasePath="")
            try:
                execution.execute(nodes, top, [{"$": top}], out)
            except RenderError as err:
                raise RenderError(f"{name}: {err}") from err
            rendered[name] = "".join(out)
        return rendered


def render_chart(
    chart: Chart, overrides: Mapping[str, Any] | None = None, *, release: str = "mcp", namespace: str = "mcp-system"
) -> tuple[list[dict[str, Any]], str]:
    """Manifests (parsed YAML documents, empty ones dropped) and the NOTES text, for values over the defaults."""
    values = merge_values(chart.values, dict(overrides or {}))
    texts = chart.render(values, release=release, namespace=namespace)
    notes = texts.pop("templates/NOTES.txt", "")
    manifests: list[dict[str, Any]] = []
    for name, text in texts.items():
        try:
            documents = list(yaml.safe_load_all(text))
        except yaml.YAMLError as err:
            raise RenderError(f"{name} does not render to valid YAML: {err}\n{text}") from err
        for document in documents:
            if document is None:
                continue
            if not isinstance(document, dict):
                raise RenderError(f"{name} renders a non-object document: {document!r}")
            manifests.append(document)
    return manifests, notes
