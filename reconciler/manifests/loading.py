"""Reads a folder of YAML (what a git checkout holds) into the engine's `DesiredInput`.

The CLI calls `load_folder` for `validate`, `plan` and `apply`; the operator never does (it reads the
cluster). Every problem in the folder is collected, located by file, line, object and field, and raised
as one `InvalidInput`, so a user fixes a whole checkout in one pass and nothing is returned half-loaded.
Input is untrusted: YAML is read with the safe loader, and file size, nesting depth and alias expansion
are bounded before anything is built, so no file can hang, crash or exhaust the reconciler. Secret values
are read here and never put into a message.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from yaml.reader import ReaderError

from reconciler.api import KINDS, Resource
from reconciler.api.common import API_GROUP, DNS1123_LABEL, DNS1123_SUBDOMAIN, GROUP_VERSION, SECRET_KEY_PATTERN
from reconciler.api.durations import DURATION_PATTERN
from reconciler.api.server import AUTH_TYPES, URL_PATTERN
from reconciler.engine.inputs import TENANT_CONFIGMAP, TENANT_LABEL, DesiredInput, SourceLocation, StaticSecrets, Tenant
from reconciler.errors import InvalidInput, Problem

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml: same safe semantics, slower
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = [
    "MAX_DOCUMENT_DEPTH",
    "MAX_DOCUMENT_NODES",
    "MAX_FILE_BYTES",
    "MAX_FILE_NODES",
    "UNEXPECTED_FAILURE",
    "load_folder",
]

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Larger files are refused unread: manifests are small, and parsing cost grows with size."""
MAX_DOCUMENT_DEPTH = 100
"""Deepest nesting accepted; also keeps the YAML composer's recursion far from the interpreter's limit."""
MAX_DOCUMENT_NODES = 100_000
"""Most nodes one document may hold, counting every alias expansion (stops "billion laughs" documents)."""
MAX_FILE_NODES = 1_000_000
"""Most nodes one file may hold: a full-size file of real manifests has well under this many."""

UNEXPECTED_FAILURE = "could not process this document"
"""Start of the problem reported when loading fails in a way no check anticipated (a bug, never user error)."""

_MAX_FLOW_TEXT_DEPTH = 10 * MAX_DOCUMENT_DEPTH
_YAML_SUFFIXES = (".yaml", ".yml")
_MANAGED_KINDS = {info.kind: info for info in KINDS}
_CORE_KINDS = ("Namespace", "ConfigMap", "Secret")
_DISCRIMINATOR_KEY = "type"
_KNOWN_TAGS = {"auth": AUTH_TYPES}
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_PATTERN_MEANINGS = {
    DNS1123_SUBDOMAIN: "must be a DNS-1123 name: lowercase letters, digits, '-' and '.', "
    "starting and ending with a letter or digit",
    DNS1123_LABEL: "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter "
    "or digit",
    URL_PATTERN: "must be an http:// or https:// URL",
    DURATION_PATTERN: "must be a duration such as 30s, 10m or 1h30m",
}
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


def load_folder(path: str | Path, *, default_namespace: str = "default") -> DesiredInput:
    """Load every manifest under `path` (a folder, walked recursively, or one file).

    Raises `InvalidInput` listing every problem found; any other failure is reported as a problem too.
    """
    collector = _Collector(default_namespace=default_namespace)
    for display_name, file_path in _manifest_files(Path(path), collector):
        collector.load_file(display_name, file_path)
    return collector.finish()


def _manifest_files(root: Path, collector: _Collector) -> list[tuple[str, Path]]:
    """YAML files under `root` in a stable order, each with the name errors show for it."""
    try:
        if root.is_file():
            return [(str(root), root)]
        if not root.is_dir():
            collector.problem(Problem("no such file or directory", file=str(root)))
            return []
    except (OSError, ValueError) as error:
        collector.problem(Problem(f"cannot read: {_os_reason(error)}", file=str(root)))
        return []

    def report(error: OSError) -> None:
        where = os.path.relpath(error.filename, root) if error.filename else str(root)
        collector.problem(Problem(f"cannot read directory: {_os_reason(error)}", file=where))

    found: list[tuple[str, Path]] = []
    for directory, subdirectories, file_names in os.walk(root, onerror=report):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        for name in file_names:
            if name.startswith(".") or not name.lower().endswith(_YAML_SUFFIXES):
                continue
            file_path = Path(directory, name)
            found.append((file_path.relative_to(root).as_posix(), file_path))
    found.sort(key=lambda item: item[0].split("/"))
    if not found:
        collector.warning(f"{root}: no YAML files found")
    return found


@dataclass
class _Document:
    """One parsed YAML document with the node tree that remembers where each value was written."""

    file: str
    node: yaml.Node
    body: Any

    @property
    def line(self) -> int:
        return _line_of(self.node) or 1


@dataclass(frozen=True)
class _Identity:
    kind: str
    namespace: str
    name: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)

    def locate(
        self, message: str, *, document: _Document, line: int | None = None, field: str | None = None
    ) -> Problem:
        return Problem(
            message,
            file=document.file,
            line=line or document.line,
            kind=self.kind,
            namespace=self.namespace or None,
            name=self.name,
            field=field,
        )


@dataclass
class _Collector:
    """Accumulates what the folder declares and what is wrong with it, document by document."""

    default_namespace: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    locations: dict[tuple[str, str, str], SourceLocation] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    slugs: dict[str, str] = field(default_factory=dict)
    tenant_vars: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def problem(self, problem: Problem) -> None:
        self.problems.append(problem)

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def finish(self) -> DesiredInput:
        if self.problems:
            raise InvalidInput(self.problems)
        tenants = {
            namespace: Tenant(
                namespace=namespace,
                slug=self.slugs.get(namespace, namespace),
                vars=self.tenant_vars.get(namespace, {}),
            )
            for namespace in sorted(self.namespaces)
        }
        return DesiredInput(
            resources=self.resources,
            locations=self.locations,
            tenants=tenants,
            secrets=StaticSecrets(values=self.secrets),
            warnings=self.warnings,
        )

    def load_file(self, display_name: str, file_path: Path) -> None:
        text = _read_text(display_name, file_path, self)
        if text is None:
            return
        # The broad handlers below turn a bug into a located problem instead of a traceback; the fuzz tests
        # assert they are never reached.
        documents = _parse_documents(display_name, text, self)
        while True:
            try:
                document = next(documents, None)
            except Exception as error:
                self.problem(Problem(f"{UNEXPECTED_FAILURE} ({type(error).__name__})", file=display_name))
                return
            if document is None:
                return
            try:
                self.accept(document)
            except Exception as error:
                message = f"{UNEXPECTED_FAILURE} ({type(error).__name__})"
                self.problem(Problem(message, file=display_name, line=document.line))

    def accept(self, document: _Document) -> None:
        body = document.body
        if body is None:
            return
        if not isinstance(body, dict):
            self.problem(
                Problem(
                    f"a manifest must be a mapping with apiVersion, kind and metadata, not {_describe_type(body)}",
                    file=document.file,
                    line=document.line,
                )
            )
            return
        api_version = self._required_text(document, "apiVersion")
        kind = self._required_text(document, "kind")
        if api_version is None or kind is None:
            return
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        if group == API_GROUP:
            self._accept_own_kind(document, api_version=api_version, kind=kind)
        elif api_version == "v1" and kind in _CORE_KINDS:
            self._accept_core_kind(document, kind=kind)
        else:
            self._skip(document, kind=kind)

    def _required_text(self, document: _Document, key: str) -> str | None:
        value = document.body.get(key)
        if isinstance(value, str) and value:
            return value
        message = "required field is missing" if value is None else "must be a non-empty string"
        line = _key_line(document.node, key) or document.line
        self.problem(Problem(message, file=document.file, line=line, field=key))
        return None

    def _skip(self, document: _Document, *, kind: str) -> None:
        metadata = document.body.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        name, namespace = metadata.get("name"), metadata.get("namespace")
        label = "(unnamed)" if name is None else str(name)
        if namespace is not None:
            label = f"{namespace}/{label}"
        self.warning(f"{document.file}:{document.line}: skipping {kind} {label} (not managed by mcp-reconciler)")

    def _identity(self, document: _Document, *, kind: str, namespaced: bool = True) -> _Identity | None:
        """Kind, namespace and name of a managed object, or None after reporting why there are none."""
        metadata = document.body.get("metadata")
        metadata_line = _key_line(document.node, "metadata") or document.line
        if not isinstance(metadata, dict):
            message = "required field is missing" if metadata is None else "must be a mapping"
            message = f"{message} (every {kind} needs metadata with a name)"
            self.problem(Problem(message, file=document.file, line=metadata_line, field="metadata"))
            return None
        if metadata.get("name") is None:
            message = f"required field is missing (every {kind} needs a name)"
            self.problem(Problem(message, file=document.file, line=metadata_line, field="metadata.name"))
            return None
        namespace = metadata.get("namespace") if namespaced else None
        if namespaced and namespace is None:
            namespace = self.default_namespace
        return _Identity(kind=kind, namespace="" if namespace is None else str(namespace), name=str(metadata["name"]))

    def _register(self, document: _Document, identity: _Identity) -> bool:
        """Remember where an object was declared; False (and a problem) when it was declared before."""
        earlier = self.locations.get(identity.key)
        if earlier is not None:
            self.problem(
                identity.locate(
                    f"declared twice: first at {earlier.file}:{earlier.line}, again here", document=document
                )
            )
            return False
        self.locations[identity.key] = SourceLocation(file=document.file, line=document.line)
        return True

    def _accept_own_kind(self, document: _Document, *, api_version: str, kind: str) -> None:
        info = _MANAGED_KINDS.get(kind)
        if info is None:
            known = ", ".join(_MANAGED_KINDS)
            line = _key_line(document.node, "kind") or document.line
            self.problem(
                Problem(
                    f"unknown kind {kind} in {API_GROUP}: use one of {known}",
                    file=document.file,
                    line=line,
                    field="kind",
                )
            )
            return
        identity = self._identity(document, kind=kind)
        if identity is None:
            return
        if api_version != GROUP_VERSION:
            self.problem(
                identity.locate(
                    f"unsupported apiVersion {api_version}: use {GROUP_VERSION}",
                    document=document,
                    line=_key_line(document.node, "apiVersion"),
                    field="apiVersion",
                )
            )
            return
        registered = self._register(document, identity)
        body = {key: value for key, value in document.body.items() if key != "status"}
        metadata = dict(body["metadata"])
        if metadata.get("namespace") is None:
            metadata["namespace"] = self.default_namespace
        body["metadata"] = metadata
        try:
            resource = cast(Resource, info.model.model_validate(body))
        except ValidationError as error:
            for detail in error.errors(include_url=False, include_input=False, include_context=True):
                self.problem(_problem_from_validation(detail, document=document, identity=identity))
            return
        if not registered:
            return
        self.resources.append(resource)
        self.namespaces.add(resource.metadata.namespace)

    def _accept_core_kind(self, document: _Document, *, kind: str) -> None:
        if kind == "ConfigMap" and _metadata_name(document.body) != TENANT_CONFIGMAP:
            self._skip(document, kind=kind)
            return
        identity = self._identity(document, kind=kind, namespaced=kind != "Namespace")
        if identity is None:
            return
        problems_before = len(self.problems)
        name_pattern = DNS1123_LABEL if kind == "Namespace" else DNS1123_SUBDOMAIN
        if not _matches(name_pattern, identity.name, max_length=63 if kind == "Namespace" else 253):
            line = _node_line_at(document, ("metadata", "name"))
            self.problem(
                identity.locate(_PATTERN_MEANINGS[name_pattern], document=document, line=line, field="metadata.name")
            )
        if kind != "Namespace" and not _matches(DNS1123_LABEL, identity.namespace, max_length=63):
            line = _node_line_at(document, ("metadata", "namespace"))
            self.problem(
                identity.locate(
                    _PATTERN_MEANINGS[DNS1123_LABEL], document=document, line=line, field="metadata.namespace"
                )
            )
        if len(self.problems) > problems_before:
            return
        registered = self._register(document, identity)
        if kind == "Namespace":
            slug = self._tenant_slug(document, identity)
            if slug is not None and registered:
                self.namespaces.add(identity.name)
                self.slugs[identity.name] = slug
        elif kind == "ConfigMap":
            variables = self._string_map(document, identity, section="data", secret=False)
            if variables is not None and registered:
                self.namespaces.add(identity.namespace)
                self.tenant_vars[identity.namespace] = variables
        else:
            values = self._secret_values(document, identity)
            if values is not None and registered:
                self.namespaces.add(identity.namespace)
                self.secrets[(identity.namespace, identity.name)] = values

    def _tenant_slug(self, document: _Document, identity: _Identity) -> str | None:
        """The namespace's tenant slug: its tenant label, else its name; None after reporting a bad label."""
        labels = document.body["metadata"].get("labels")
        if labels is not None and not isinstance(labels, dict):
            line = _node_line_at(document, ("metadata", "labels"))
            self.problem(identity.locate("must be a mapping", document=document, line=line, field="metadata.labels"))
            return None
        if not labels or TENANT_LABEL not in labels:
            return identity.name
        value = labels[TENANT_LABEL]
        if isinstance(value, str) and _matches(DNS1123_LABEL, value, max_length=63):
            return value
        self.problem(
            identity.locate(
                "tenant slug " + _PATTERN_MEANINGS[DNS1123_LABEL] + ", at most 63 characters",
                document=document,
                line=_node_line_at(document, ("metadata", "labels", TENANT_LABEL)),
                field=_join_path(_join_path("metadata", "labels"), TENANT_LABEL),
            )
        )
        return None

    def _secret_values(self, document: _Document, identity: _Identity) -> dict[str, str] | None:
        """Decoded `data` overlaid with `stringData` (Kubernetes lets stringData win); None after problems."""
        encoded = self._string_map(document, identity, section="data", secret=True)
        plain = self._string_map(document, identity, section="stringData", secret=True)
        values: dict[str, str] = {}
        failed = encoded is None or plain is None
        for key, text in (encoded or {}).items():
            decoded = self._decode_secret_value(document, identity, key=key, text=text)
            if decoded is None:
                failed = True
            else:
                values[key] = decoded
        if failed or plain is None:
            return None
        values.update(plain)
        return values

    def _decode_secret_value(self, document: _Document, identity: _Identity, *, key: str, text: str) -> str | None:
        line = _node_line_at(document, ("data", key))
        field_path = _join_path("data", key)
        try:
            raw = base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True)
        except (binascii.Error, ValueError):
            message = f"Secret key {key!r} is not valid base64"
            self.problem(identity.locate(message, document=document, line=line, field=field_path))
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            message = f"Secret key {key!r} holds binary data; only UTF-8 text can be used as a credential"
            self.problem(identity.locate(message, document=document, line=line, field=field_path))
            return None

    def _string_map(
        self, document: _Document, identity: _Identity, *, section: str, secret: bool
    ) -> dict[str, str] | None:
        """A `data`-like section as str → str; None after reporting problems. Never quotes a value."""
        content = document.body.get(section)
        if content is None:
            return {}
        if not isinstance(content, dict):
            line = _node_line_at(document, (section,))
            self.problem(identity.locate("must be a mapping", document=document, line=line, field=section))
            return None
        result: dict[str, str] = {}
        valid = True
        for key, value in content.items():
            line = _node_line_at(document, (section, key))
            field_path = _join_path(section, key)
            if not isinstance(key, str) or (secret and not _matches(SECRET_KEY_PATTERN, key, max_length=253)):
                message = "keys must be made of letters, digits, '-', '_' and '.'" if secret else "keys must be strings"
                self.problem(identity.locate(message, document=document, line=line, field=field_path))
                valid = False
            elif not isinstance(value, str):
                hint = "" if secret else " (quote numbers and booleans)"
                self.problem(identity.locate(f"must be a string{hint}", document=document, line=line, field=field_path))
                valid = False
            else:
                result[key] = value
        return result if valid else None


def _os_reason(error: Exception) -> str:
    return (error.strerror if isinstance(error, OSError) else None) or type(error).__name__


def _read_text(display_name: str, file_path: Path, collector: _Collector) -> str | None:
    try:
        with file_path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        collector.problem(Problem(f"cannot read file: {_os_reason(error)}", file=display_name))
        return None
    if len(raw) > MAX_FILE_BYTES:
        collector.problem(Problem(f"file is larger than {MAX_FILE_BYTES} bytes", file=display_name))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        collector.problem(Problem("file is not UTF-8 text", file=display_name, line=line))
        return None


def _parse_documents(display_name: str, text: str, collector: _Collector) -> Iterator[_Document]:
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
            document = _Document(file=display_name, node=node, body=None)
            if _expanded_size(node) > MAX_DOCUMENT_NODES:
                collector.problem(
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
                collector.problem(_construction_problem(error, document))
                continue
            if duplicates:
                # A reviewer reads the first value, YAML keeps the last: refuse the document, as kubectl does.
                for duplicate in duplicates:
                    collector.problem(_duplicate_problem(duplicate, document, collector.default_namespace))
                continue
            yield document
        if limit is not None:
            collector.problem(limit[1])
    except yaml.YAMLError as error:
        collector.problem(_syntax_problem(error, display_name, text))
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
            return index, Problem(message, file=display_name, line=_mark_line(event.start_mark) or 1)
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


_MERGE_TAG = "tag:yaml.org,2002:merge"


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
                key_path = _join_path(path, key_node.value)
                identity = (key_node.tag, key_node.value)
                if identity in first_lines:
                    found.append(_DuplicateKey(key_path, _line_of(key_node), first_lines[identity]))
                else:
                    first_lines[identity] = _line_of(key_node)
                stack.append((value_node, key_path))
    return sorted(found, key=lambda duplicate: duplicate.line or 0)


def _duplicate_problem(duplicate: _DuplicateKey, document: _Document, default_namespace: str) -> Problem:
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


def _construction_problem(error: Exception, document: _Document) -> Problem:
    if isinstance(error, yaml.MarkedYAMLError):
        line = _mark_line(error.problem_mark) or document.line
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
        line = _mark_line(error.problem_mark) or _mark_line(error.context_mark)
        return Problem(f"invalid YAML: {', '.join(parts) or 'syntax error'}", file=display_name, line=line)
    if isinstance(error, ReaderError):
        bad = chr(error.character) if isinstance(error.character, int) else str(error.character)
        position = text.find(bad)
        line = text.count("\n", 0, position) + 1 if position >= 0 else None
        code = ord(bad[0]) if bad else 0
        return Problem(f"invalid YAML: character #x{code:04x} is not allowed", file=display_name, line=line)
    return Problem("invalid YAML", file=display_name)


def _problem_from_validation(detail: ErrorDetails, *, document: _Document, identity: _Identity) -> Problem:
    location = list(detail["loc"])
    context = detail.get("ctx") or {}
    error_type = detail["type"]
    if error_type in ("union_tag_invalid", "union_tag_not_found"):
        location.append(str(context.get("discriminator", _DISCRIMINATOR_KEY)).strip("'"))
    message = _plain_message(detail, location)
    if location and location[-1] == "[key]":
        location.pop()
        message = f"key {message}"
    field_path, line = _locate(location, document=document)
    return identity.locate(message, document=document, line=line, field=field_path)


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
        return _PATTERN_MEANINGS.get(pattern, f"must match the pattern {pattern}")
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


def _locate(location: list[int | str], *, document: _Document) -> tuple[str, int | None]:
    """Field path (camelCase, `[i]` for list items) and source line for a pydantic error location.

    Walks the data and the node tree side by side; location parts that are union tags rather than keys
    (pydantic inserts the `auth.type` value) are dropped.
    """
    data: Any = document.body
    node: yaml.Node | None = document.node
    path = ""
    line: int | None = None
    found = True
    for part in location:
        if found and isinstance(data, dict) and part not in data and data.get(_DISCRIMINATOR_KEY) == part:
            continue
        if isinstance(part, int) and (not found or isinstance(data, list)):
            path = f"{path}[{part}]"
        else:
            path = _join_path(path, part)
        if not found:
            continue
        if isinstance(data, dict) and part in data:
            data = data[part]
            key_node, node = _mapping_entry(node, part)
            line = _line_of(key_node) or line
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
            node = node.value[part] if isinstance(node, yaml.SequenceNode) and part < len(node.value) else None
            line = _line_of(node) or line
        else:
            found = False
    return path, line


def _node_line_at(document: _Document, keys: tuple[str, ...]) -> int | None:
    """Line of the deepest key along `keys` that exists in the document."""
    node: yaml.Node | None = document.node
    line: int | None = None
    for key in keys:
        key_node, node = _mapping_entry(node, key)
        if key_node is None:
            break
        line = _line_of(key_node)
    return line


def _mapping_entry(node: yaml.Node | None, key: object) -> tuple[yaml.Node | None, yaml.Node | None]:
    if not isinstance(node, yaml.MappingNode):
        return None, None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
            return key_node, value_node
    return None, None


def _key_line(node: yaml.Node, key: str) -> int | None:
    key_node, _ = _mapping_entry(node, key)
    return _line_of(key_node)


def _line_of(node: yaml.Node | None) -> int | None:
    return None if node is None else _mark_line(node.start_mark)


class _Mark(Protocol):
    """A position in YAML source, from either the C or the pure-Python parser (zero-based line)."""

    line: int


def _mark_line(mark: _Mark | None) -> int | None:
    return None if mark is None else mark.line + 1


def _join_path(path: str, key: object) -> str:
    text = str(key)
    if _PLAIN_KEY.match(text):
        return f"{path}.{text}" if path else text
    return f"{path}[{text!r}]"


def _matches(pattern: str, value: str, *, max_length: int) -> bool:
    return 0 < len(value) <= max_length and re.match(pattern, value) is not None


def _metadata_name(body: dict[Any, Any]) -> object:
    metadata = body.get("metadata")
    return metadata.get("name") if isinstance(metadata, dict) else None


def _describe_type(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__} value"
