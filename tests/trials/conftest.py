"""Crash and concurrency trials: real `apply` processes killed with SIGKILL or run two at a time against real
SQLite and PostgreSQL registries. Each trial records what happened; the terminal summary prints the counts and
outcomes so a CI log shows what was tried, not only that it passed."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.postgres import *  # noqa: F403
from tests.trials.fleet import write_fleet

SEED_ENV = "MCP_RECONCILER_TRIAL_SEED"
_OUTCOMES: list[str] = []


def record_outcome(line: str) -> None:
    """Keep one line for the terminal summary (and print it, for `-s` runs)."""
    _OUTCOMES.append(line)
    print(line)


@pytest.fixture(scope="session")
def trial_seed() -> int:
    """Random kill points, reproducible: the seed is printed, and `$MCP_RECONCILER_TRIAL_SEED` replays it."""
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(2**32))
    record_outcome(f"trial seed {seed} (replay with {SEED_ENV}={seed})")
    return seed


@pytest.fixture(scope="session")
def fleets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """The 10,000-object folder in its old and new versions, written once per session."""
    root = tmp_path_factory.mktemp("fleet")
    old, new = root / "old", root / "new"
    assert write_fleet(old, version=0) == 10_000
    assert write_fleet(new, version=1) == 10_000
    yield old, new


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _OUTCOMES:
        terminalreporter.section("crash and concurrency trials")
        for line in _OUTCOMES:
            terminalreporter.write_line(line)
