"""`docs/ci.md`'s workflow and hook are valid YAML, and every `mcp-reconciler` command in them parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from reconciler.cli import build_parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "ci.md"
COMMAND = re.compile(r"mcp-reconciler ((?:plan|validate|apply) -f[^;>\n']*)")


def blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_workflow_and_the_hook_are_yaml() -> None:
    workflow, hook = (yaml.safe_load(block) for block in blocks())

    steps = workflow["jobs"]["plan"]["steps"]
    assert any("mcp-reconciler plan" in step.get("run", "") and "-o markdown" in step["run"] for step in steps)
    assert [h["id"] for h in hook["repos"][0]["hooks"]] == ["mcp-validate", "mcp-plan"]


def test_every_command_in_the_doc_parses() -> None:
    commands = [match.strip() for block in blocks() for match in COMMAND.findall(block)]

    assert len(commands) >= 3
    for command in commands:
        build_parser().parse_args(shlex.split(command))
