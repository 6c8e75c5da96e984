"""Parses YAML text into documents, safely and within bounds, turning every YAML error into a located problem.

Called by `loading.py` for each file that `reading.py` returned. The text is untrusted: it is read with the safe
loader only; nesting depth, node count per document and per file, and alias expansion are bounded before any
value is constructed, so no document can hang, crash or exhaust the reconciler; a key written twice refuses the
document (a reviewer reads the first value, YAML keeps the last). Error messages name the position and the kind
of fault, never the source text, which could hold a secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.reader import ReaderError

from reconciler.api.invalid_fields import join_path
from reconciler.errors import Problem
from reconciler.manifests.locating import Document, line_of, mark_line

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml: same safe semantics, slower
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = ["MAX_DOCUMENT_DEPTH", "MAX_DOCUMENT_NODES", "MAX_FILE_NODES", "parse_documents"]

MAX_DOCUMENT_DEPTH = 100
"""Deepest nesting accepted; also keeps the YAML composer's recursion far from the interpreter's limit."""
MAX_DOCUMENT_NODES = 100_000
"""Most nodes one document may hold, counting every alias expansion (stops "billion laughs" documents)."""
MAX_FILE_NODES = 1_000_000
"""Most nodes one file may hold: a full-size file of real manifests has well under this many."""

_MAX_FLOW_TEXT_DEPTH = 10 * MAX_DOCUMENT_DEPTH
_MERGE_TAG = "tag:yaml.org,2002:merge"


def parse_documents(
    display_name: str, text: str, *, report: Callable[[Problem], None], default_namespace: str
) -> Iterator[Document]:
    """Yield each document of a YAML stream; syntax errors and oversized documents end the file as problems.

    A generator on purpose: holding every node tree of a large file at once makes the garbage collector
    walk them over and over, which costs far more than the parsing.
    """
    limit = _first_oversized_document(display_name, text)
    loader = _SafeLoader(text)
    try:
        index = 0
        while (limit is None or index < limit[0]) and loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            document = Document(file=display_name, node=node, body=None)
            if _expanded_size(node) > MAX_DOCUMENT_NODES:
                report(
                    Problem(
                        f"document expands to more than {MAX_DOCUMENT_NODES} nodes (too many aliases)",
                        file=display_name,
                        line=document.line,
                    )
                )
                continue
            duplicates = _duplicate_keys(node)
            try:
                document.body = loader.construct_document(node)
            except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as error:
                _reset_constructor(loader)
                report(_construction_problem(error, document))
                continue
            if duplicates:
                # A reviewer reads the first value, YAML keeps the last: refuse the document, as kubectl does.
                for duplicate in duplicates:
                    report(_duplicate_problem(duplicate, document, default_namespace))
                continue
            yield document
        if limit is not None:
            report(limit[1])
    except yaml.YAMLError as error:
        report(_syntax_problem(error, display_name, text))
    finally:
        loader.dispose()


def _first_oversized_document(display_name: str, text: str) -> tuple[int, Problem] | None:
    """Index of the first document too deep or too large to compose safely, with the problem to report.

    Runs on the flat event stream, which needs no recursion; the composer that follows recurses per level.
    Very deep flow nesting (`[[[[...`) is refused before the scanner sees it, because scanning it costs depth
    times tokens; the count is textual, so it only guards the scanner and the precise limit is the event one.
    """
    flow_depth = 0
    for position, character in _flow_brackets(text):
        flow_depth = flow_depth + 1 if character in "[{" else max(flow_depth - 1, 0)
        if flow_depth > _MAX_FLOW_TEXT_DEPTH:
            line = text.count("\n", 0, position) + 1
            message = f"nesting is deeper than {MAX_DOCUMENT_DEPTH} levels"
            return 0, Problem(message, file=display_name, line=line)
    index, depth, nodes, file_nodes = -1, 0, 0, 0
    try:
        for event in yaml.parse(text, Loader=_SafeLoader):
            if isinstance(event, yaml.DocumentStartEvent):
                index, depth, nodes = index + 1, 0, 0
            elif isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                nodes, file_nodes = nodes + 1, file_nodes + 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
                nodes, file_nodes = nodes + 1, file_nodes + 1
            if depth > MAX_DOCUMENT_DEPTH:
                message = f"nesting is deeper than {MAX_DOCUMENT_DEPTH} levels"
            elif nodes > MAX_DOCUMENT_NODES:
                message = f"document has more than {MAX_DOCUMENT_NODES} nodes"
            elif file_nodes > MAX_FILE_NODES:
                message = f"file has more than {MAX_FILE_NODES} nodes: split it"
            else:
                continue
            return index, Problem(message, file=display_name, line=mark_line(event.start_mark) or 1)
    except yaml.YAMLError:
        return None  # the composer meets the same error at the same place and reports it
    return None


def _flow_brackets(text: str) -> Iterator[tuple[int, str]]:
    if text.count("[") + text.count("{") <= _MAX_FLOW_TEXT_DEPTH:
        return
    for match in re.finditer(r"[\[\]{}]", text):
        yield match.start(), match.group()


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in the document with every alias expanded, counting no further than the limit."""
    seen = 0
    stack: list[yaml.Node] = [root]
    while stack and seen <= MAX_DOCUMENT_NODES:
        node = stack.pop()
        seen += 1
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                stack.append(key_node)
                stack.append(value_node)
    return seen


@dataclass(frozen=True)
class _DuplicateKey:
    path: str
    line: int | None
    first_line: int | None


def _duplicate_keys(root: yaml.Node) -> list[_DuplicateKey]:
    """Keys written twice in one mapping, with the path of the second one and the line of the first.

    Walks the composed node tree, before construction keeps only the last value. Merge keys (`<<`) are
    left alone: a key next to a merge is meant to override it. Each node is visited once, however many
    aliases point at it.
    """
    found: list[_DuplicateKey] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{path}[{index}]") for index, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            first_lines: dict[tuple[str, str], int | None] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    stack.append((value_node, path))
                    continue
                key_path = join_path(path, key_node.value)
                identity = (key_node.tag, key_node.value)
                if identity in first_lines:
                    found.append(_DuplicateKey(key_path, line_of(key_node), first_lines[identity]))
                else:
                    first_lines[identity] = line_of(key_node)
                stack.append((value_node, key_path))
    return sorted(found, key=lambda duplicate: duplicate.line or 0)


def _duplicate_problem(duplicate: _DuplicateKey, document: Document, default_namespace: str) -> Problem:
    body: dict[Any, Any] = document.body if isinstance(document.body, dict) else {}
    metadata: dict[Any, Any] = body["metadata"] if isinstance(body.get("metadata"), dict) else {}
    kind, name = body.get("kind"), metadata.get("name")
    named = isinstance(kind, str) and name is not None
    namespace = metadata.get("namespace", default_namespace) if kind != "Namespace" else None
    return Problem(
        f"duplicate key: already set at line {duplicate.first_line}; remove one of them",
        file=document.file,
        line=duplicate.line or document.line,
        kind=kind if named else None,
        namespace=None if not named or namespace is None else str(namespace),
        name=str(name) if named else None,
        field=duplicate.path,
    )


def _reset_constructor(loader: _SafeLoader) -> None:
    """Forget a failed document's half-built objects so the next document starts clean."""
    loader.constructed_objects = {}
    loader.recursive_objects = {}
    loader.state_generators = []
    loader.deep_construct = False


def _construction_problem(error: Exception, document: Document) -> Problem:
    if isinstance(error, yaml.MarkedYAMLError):
        line = mark_line(error.problem_mark) or document.line
        return Problem(f"invalid YAML: {error.problem or 'cannot build this value'}", file=document.file, line=line)
    if isinstance(error, RecursionError):
        return Problem("invalid YAML: merge keys nest too deeply", file=document.file, line=document.line)
    return Problem(
        "invalid YAML: a number or date in this document is out of range", file=document.file, line=document.line
    )


def _syntax_problem(error: yaml.YAMLError, display_name: str, text: str) -> Problem:
    """Describe a YAML error by its position and kind only: the source snippet could hold a secret."""
    if isinstance(error, yaml.MarkedYAMLError):
        parts = [part for part in (error.context, error.problem) if part]
        line = mark_line(error.problem_mark) or mark_line(error.context_mark)
        return Problem(f"invalid YAML: {', '.join(parts) or 'syntax error'}", file=display_name, line=line)
    if isinstance(error, ReaderError):
        bad = chr(error.character) if isinstance(error.character, int) else str(error.character)
        position = text.find(bad)
        line = text.count("\n", 0, position) + 1 if position >= 0 else None
        code = ord(bad[0]) if bad else 0
        return Problem(f"invalid YAML: character #x{code:04x} is not allowed", file=display_name, line=line)
    return Problem("invalid YAML", file=display_name)
