"""Every repository path that the docs, the Makefile and the CI scripts name exists.

A comment or a README that points at a file which was renamed or never existed sends the next person looking
for it; this catches the rename in the same change. CHANGELOG.md is left out on purpose: it records files
that were removed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOP_LEVEL = ("reconciler", "tests", "bench", ".ci", "docs", "examples", "charts", "crds")
PATH = re.compile(r"(?<![\w./~-])((?:" + "|".join(re.escape(top) for top in TOP_LEVEL) + r")/[\w./*-]+)")
SOURCES = sorted(
    {
        *REPO.glob(".ci/*"),
        REPO / "Makefile",
        REPO / "README.md",
        REPO / "CONTRIBUTING.md",
        REPO / ".pre-commit-config.yaml",
        *REPO.glob("docs/**/*.md"),
        *REPO.glob("charts/*/README.md"),
        *REPO.glob("examples/*/README.md"),
    }
)


def named_paths(text: str) -> set[str]:
    return {match.rstrip(".,:;)") for match in PATH.findall(text)}


def test_the_pattern_finds_paths_and_nothing_else() -> None:
    text = "Called by tests/e2e/kube.py. See `docs/helm.md`, crds/*.yaml and ~/.cache/mcp-reconciler/kube; x.ci/y"
    assert named_paths(text) == {"tests/e2e/kube.py", "docs/helm.md", "crds/*.yaml"}


@pytest.mark.parametrize("source", [path for path in SOURCES if path.is_file()], ids=lambda path: path.name)
def test_named_paths_exist(source: Path) -> None:
    missing = [
        name
        for name in sorted(named_paths(source.read_text()))
        if not (any(REPO.glob(name)) if "*" in name else (REPO / name).exists())
    ]
    assert missing == [], f"{source.relative_to(REPO)} names paths that do not exist"
