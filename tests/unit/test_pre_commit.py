"""The pre-commit hooks are valid and run the same checks as `make lint` and `make test`'s CRD drift check.

The hooks call the tools in .venv directly, so nothing but this test keeps them from drifting apart from the
Makefile: a tool added to `make lint` without a hook (or a hook with a misspelled command) fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / ".pre-commit-config.yaml"
VENV_BIN = ".venv/bin/"


def command_key(command: str) -> str:
    """`ruff check reconciler tests` → `ruff check`; `mypy` → `mypy`; `mcp-reconciler crds --check` → `… crds`."""
    words = command.split()
    tool = words[0].rsplit("/", 1)[-1]
    subcommand = words[1] if len(words) > 1 and re.fullmatch(r"[a-z][a-z-]*", words[1]) else ""
    return f"{tool} {subcommand}".strip()


def makefile_checks() -> set[str]:
    """The commands of the `lint` recipe, and the `crds --check` of the `test` recipe."""
    recipes: dict[str, list[str]] = {}
    current = None
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith("\t") and current is not None:
            recipes[current].append(line.strip().replace("$(BIN)/", ""))
        elif target := re.match(r"^([a-z-]+):", line):
            current = target.group(1)
            recipes[current] = []
        else:
            current = None
    checks = {command_key(command) for command in recipes["lint"]}
    checks |= {command_key(command) for command in recipes["test"] if "crds --check" in command}
    return checks


def hooks() -> list[dict[str, str]]:
    config = yaml.safe_load(CONFIG.read_text())
    return [hook for repo in config["repos"] for hook in repo["hooks"]]


def test_pre_commit_accepts_the_config() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_makefile_check_has_a_hook() -> None:
    assert makefile_checks() >= {"ruff check", "ruff format", "mypy", "lint-imports", "mcp-reconciler crds"}
    hooked = {command_key(hook["entry"]) for hook in hooks()}
    assert makefile_checks() - hooked == set()


def test_hooks_use_the_project_venv_and_never_download() -> None:
    for hook in hooks():
        assert hook["entry"].startswith(VENV_BIN), hook["id"]
        assert hook["language"] == "unsupported", f"{hook['id']}: a managed language would install its own tools"
