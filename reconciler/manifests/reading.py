"""Finds the YAML files of a folder and reads each one as bounded, decoded text.

Called by `loading.load_folder` before any parsing. Files are read untrusted: a file larger than
`MAX_FILE_BYTES` is refused after reading one byte past the limit, bytes that are not UTF-8 are refused with
the line they start on, and an unreadable file or directory becomes a problem rather than an exception.
Hidden files and folders are skipped, and the files come back in a stable order, so every run reports the same
problems in the same sequence.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from reconciler.errors import Problem

__all__ = ["MAX_FILE_BYTES", "manifest_files", "os_reason", "read_text"]

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Larger files are refused unread: manifests are small, and parsing cost grows with size."""

_YAML_SUFFIXES = (".yaml", ".yml")


def manifest_files(
    root: Path, *, report: Callable[[Problem], None], warn: Callable[[str], None]
) -> list[tuple[str, Path]]:
    """YAML files under `root` in a stable order, each with the name errors show for it."""
    try:
        if root.is_file():
            return [(str(root), root)]
        if not root.is_dir():
            report(Problem("no such file or directory", file=str(root)))
            return []
    except (OSError, ValueError) as error:
        report(Problem(f"cannot read: {os_reason(error)}", file=str(root)))
        return []

    def report_walk_error(error: OSError) -> None:
        where = os.path.relpath(error.filename, root) if error.filename else str(root)
        report(Problem(f"cannot read directory: {os_reason(error)}", file=where))

    found: list[tuple[str, Path]] = []
    for directory, subdirectories, file_names in os.walk(root, onerror=report_walk_error):
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        for name in file_names:
            if name.startswith(".") or not name.lower().endswith(_YAML_SUFFIXES):
                continue
            file_path = Path(directory, name)
            found.append((file_path.relative_to(root).as_posix(), file_path))
    found.sort(key=lambda item: item[0].split("/"))
    if not found:
        warn(f"{root}: no YAML files found")
    return found


def read_text(display_name: str, file_path: Path, *, report: Callable[[Problem], None]) -> str | None:
    """The file as text, or None after reporting why it cannot be used."""
    try:
        with file_path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        report(Problem(f"cannot read file: {os_reason(error)}", file=display_name))
        return None
    if len(raw) > MAX_FILE_BYTES:
        report(Problem(f"file is larger than {MAX_FILE_BYTES} bytes", file=display_name))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        report(Problem("file is not UTF-8 text", file=display_name, line=line))
        return None


def os_reason(error: Exception) -> str:
    """The operating system's reason, without the path (the problem already names the file)."""
    return (error.strerror if isinstance(error, OSError) else None) or type(error).__name__
