"""Render the Argo CD `argocd-cm` patch that installs the health checks, from the chart's Lua files.

The docs (docs/argocd.md and docs/argocd/argocd-cm-patch.yaml) carry this text verbatim; `test_docs.py`
fails when they drift from the Lua files. Regenerate both with:

    .venv/bin/python -m tests.unit.argocd.snippet --write
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CHECKS = REPO / "charts" / "mcp-reconciler" / "argocd"
GROUP = "mcp.reconciler.dev"
DOC = REPO / "docs" / "argocd.md"
PATCH_FILE = REPO / "docs" / "argocd" / "argocd-cm-patch.yaml"
BEGIN = "<!-- BEGIN GENERATED: argocd-cm patch (python -m tests.unit.argocd.snippet --write) -->"
END = "<!-- END GENERATED: argocd-cm patch -->"
REGENERATE = ".venv/bin/python -m tests.unit.argocd.snippet --write"


def health_scripts() -> dict[str, Path]:
    """Kind → health.lua, for every kind folder under the group (Argo CD's resource_customizations layout)."""
    return {path.parent.name: path for path in sorted((CHECKS / GROUP).glob("*/health.lua"))}


def config_key(kind: str) -> str:
    """The argocd-cm key Argo CD looks up for `<group>/<Kind>` ('/' becomes '_')."""
    return f"resource.customizations.health.{GROUP}_{kind}"


def render_patch() -> str:
    """A merge patch for the argocd-cm ConfigMap with one health check per kind."""
    lines = [
        "# Generated from charts/mcp-reconciler/argocd by `python -m tests.unit.argocd.snippet --write`; do not edit.",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: argocd-cm",
        "  labels:",
        "    app.kubernetes.io/name: argocd-cm",
        "    app.kubernetes.io/part-of: argocd",
        "data:",
    ]
    for kind, path in health_scripts().items():
        lines.append(f"  {config_key(kind)}: |")
        lines.extend(f"    {line}" if line else "" for line in path.read_text().splitlines())
    return "\n".join(lines) + "\n"


def doc_block() -> str:
    return f"{BEGIN}\n```yaml\n{render_patch()}```\n{END}"


def extract_doc_block(text: str) -> str:
    start = text.index(BEGIN)
    end = text.index(END, start) + len(END)
    return text[start:end]


def write() -> None:
    PATCH_FILE.parent.mkdir(parents=True, exist_ok=True)
    PATCH_FILE.write_text(render_patch())
    text = DOC.read_text()
    DOC.write_text(text.replace(extract_doc_block(text), doc_block()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {DOC.name} and {PATCH_FILE.name} in place")
    args = parser.parse_args(argv)
    if args.write:
        write()
    else:
        sys.stdout.write(render_patch())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
