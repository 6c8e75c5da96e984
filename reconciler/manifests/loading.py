"""Reads a folder of YAML (what a git checkout holds) into the engine's `DesiredInput`.

The CLI calls `load_folder` for `validate`, `plan` and `apply`; the operator never does (it reads the
cluster). Every problem in the folder is collected, located by file, line, object and field, and raised
as one `InvalidInput`, so a user fixes a whole checkout in one pass and nothing is returned half-loaded.
Input is untrusted: YAML is read with the safe loader, and file size, nesting depth and alias expansion
are bounded before anything is built, so no file can hang, crash or exhaust the reconciler. Secret values
are read here and never put into a message.

The steps live in their own modules: `reading.py` finds and reads files within `MAX_FILE_BYTES`,
`parsing.py` parses them within the depth and node bounds, `collecting.py` dispatches each document by kind
and validates it (with `core_kinds.py` for Namespaces, the tenant ConfigMap and Secrets), and
`api.invalid_fields` words a refused field the same way the operator does.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.engine.inputs import DesiredInput
from reconciler.errors import Problem
from reconciler.manifests.collecting import Collector
from reconciler.manifests.parsing import MAX_DOCUMENT_DEPTH, MAX_DOCUMENT_NODES, MAX_FILE_NODES, parse_documents
from reconciler.manifests.reading import MAX_FILE_BYTES, manifest_files, read_text

__all__ = [
    "MAX_DOCUMENT_DEPTH",
    "MAX_DOCUMENT_NODES",
    "MAX_FILE_BYTES",
    "MAX_FILE_NODES",
    "UNEXPECTED_FAILURE",
    "load_folder",
]

UNEXPECTED_FAILURE = "could not process this document"
"""Start of the problem reported when loading fails in a way no check anticipated (a bug, never user error)."""


def load_folder(path: str | Path, *, default_namespace: str = "default") -> DesiredInput:
    """Load every manifest under `path` (a folder, walked recursively, or one file).

    Raises `InvalidInput` listing every problem found; any other failure is reported as a problem too.
    """
    collector = Collector(default_namespace=default_namespace)
    for display_name, file_path in manifest_files(Path(path), report=collector.problem, warn=collector.warning):
        _load_file(collector, display_name, file_path)
    return collector.finish()


def _load_file(collector: Collector, display_name: str, file_path: Path) -> None:
    text = read_text(display_name, file_path, report=collector.problem)
    if text is None:
        return
    # The broad handlers below turn a bug into a located problem instead of a traceback; the fuzz tests
    # assert they are never reached.
    documents = parse_documents(
        display_name, text, report=collector.problem, default_namespace=collector.default_namespace
    )
    while True:
        try:
            document = next(documents, None)
        except Exception as error:
            collector.problem(Problem(f"{UNEXPECTED_FAILURE} ({type(error).__name__})", file=display_name))
            return
        if document is None:
            return
        try:
            collector.accept(document)
        except Exception as error:
            message = f"{UNEXPECTED_FAILURE} ({type(error).__name__})"
            collector.problem(Problem(message, file=display_name, line=document.line))
