"""Property-based fuzzing of the loader: whatever a folder holds, `load_folder` returns or raises `InvalidInput`.

Each test also checks that no problem came from the loader's last-resort handler, so an unanticipated
exception cannot hide behind it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.engine.inputs import DesiredInput
from reconciler.errors import InvalidInput
from reconciler.manifests import load_folder
from reconciler.manifests.loading import UNEXPECTED_FAILURE
from tests.unit.manifests.samples import ALL, write_files

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["MCPServer", "v1", "mcp.reconciler.dev/v1alpha1", "acme", "https://x.example.com", "type"]),
)
_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
_valid_documents = st.sampled_from([yaml.safe_load(text) for text in ALL])


def _load(files: dict[str, str | bytes]) -> DesiredInput | InvalidInput:
    with tempfile.TemporaryDirectory() as directory:
        write_files(Path(directory), files)
        try:
            return load_folder(directory)
        except InvalidInput as error:
            return error


def _assert_handled(outcome: DesiredInput | InvalidInput) -> None:
    if isinstance(outcome, InvalidInput):
        assert outcome.problems
        for problem in outcome.problems:
            assert problem.file, problem
            assert not problem.message.startswith(UNEXPECTED_FAILURE), problem.render()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*prefix, index)))
    return found


@st.composite
def _mutated_documents(draw: st.DrawFn) -> Any:
    """A valid manifest with a few fields dropped, retyped or added."""
    document = yaml.safe_load(yaml.safe_dump(draw(_valid_documents)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["drop", "retype", "extra"]))
        if action == "drop":
            del parent[path[-1]]
        elif action == "retype":
            parent[path[-1]] = draw(_values)
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=12))] = draw(_values)
    return document


@st.composite
def _mangled_text(draw: st.DrawFn) -> str | bytes:
    """A valid manifest's text with broken indentation, junk bytes, truncation, huge numbers or deep nesting."""
    lines = draw(st.sampled_from(ALL)).splitlines(keepends=True)
    action = draw(st.sampled_from(["indent", "junk", "truncate", "number", "nest", "duplicate", "anchor"]))
    index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
    if action == "indent":
        shift = draw(st.sampled_from(["", " ", "   ", "\t", "      "]))
        lines[index] = shift + lines[index].lstrip(" ")
    elif action == "junk":
        raw = "".join(lines).encode()
        junk = draw(st.binary(min_size=1, max_size=16))
        position = draw(st.integers(min_value=0, max_value=len(raw)))
        return raw[:position] + junk + raw[position:]
    elif action == "truncate":
        text = "".join(lines)
        return text[: draw(st.integers(min_value=0, max_value=len(text)))]
    elif action == "number":
        key = lines[index].split(":", 1)[0]
        lines[index] = f"{key}: {draw(st.sampled_from(['9' * 5000, '1e99999', '-0x' + 'f' * 500, '0o999']))}\n"
    elif action == "nest":
        depth = draw(st.integers(min_value=1, max_value=300))
        key = lines[index].split(":", 1)[0]
        lines[index] = f"{key}: {'[' * depth}{']' * depth}\n"
    elif action == "duplicate":
        lines.insert(index, lines[index])
    else:
        key = lines[index].split(":", 1)[0]
        lines[index] = f"{key}: {draw(st.sampled_from(['*nowhere', '&a [*a]', '!!binary x', '!custom 1', '<<: 1']))}\n"
    return "".join(lines)


@FUZZ
@given(st.lists(_values, min_size=1, max_size=3))
def test_random_yaml_values_never_escape_as_other_errors(values: list[Any]) -> None:
    text = yaml.safe_dump_all(values)

    _assert_handled(_load({"random.yaml": text}))


@FUZZ
@given(st.lists(_mutated_documents(), min_size=1, max_size=3))
def test_mutated_manifests_never_escape_as_other_errors(documents: list[Any]) -> None:
    text = yaml.safe_dump_all(documents)

    _assert_handled(_load({"mutated.yaml": text}))


@FUZZ
@given(st.lists(_mangled_text(), min_size=1, max_size=3))
def test_mangled_manifest_text_never_escapes_as_other_errors(texts: list[str | bytes]) -> None:
    files = {f"dir{index % 2}/file{index}.yaml": text for index, text in enumerate(texts)}

    _assert_handled(_load(files))


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_escape_as_other_errors(content: bytes) -> None:
    _assert_handled(_load({"junk.yaml": content}))
