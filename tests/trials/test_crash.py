"""`kill -9` of `apply` at random points of a 10,000-object apply, on SQLite and on PostgreSQL.

After every kill the registry must hold exactly the state before that run or the state it was applying (never a
mix), with no row written twice; the next `apply` converges and `plan` then exits 0. Each trial applies the
folder version the registry does not hold, so every kill interrupts a real transition (creates, updates and
deletes in all four tables), and the kill point is drawn in the child's CPU time so that it lands in the same
phase of the run whatever the machine's load.
"""

from __future__ import annotations

import io
import random
import sys
from collections import Counter
from pathlib import Path

import pytest

from reconciler.cli import main
from tests.trials.conftest import record_outcome
from tests.trials.support import (
    Finished,
    State,
    apply_command,
    read_state,
    registry_opened,
    run_and_kill,
    run_to_end,
)

KILLS = 5
MAX_TRIALS = 9
"""A run that finishes before its kill point counts as a trial but not as a kill; at most this many trials."""


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    old_err, sys.stderr = sys.stderr, err
    try:
        code = main(list(argv), out=out)
    finally:
        sys.stderr = old_err
    return code, out.getvalue(), err.getvalue()


def _difference(state: State, reference: State) -> str:
    return (
        f"{len(state.rows - reference.rows)} rows not in it, {len(reference.rows - state.rows)} missing; "
        f"{len(state.resources - reference.resources)} object copies not in it, "
        f"{len(reference.resources - state.resources)} missing"
    )


# Up to MAX_TRIALS + 2 full runs over 10,000 objects, each bounded by RUN_BOUND_SECONDS: on PostgreSQL on a busy
# two-core machine one cold apply takes about 30 s of wall time, so the suite-wide 120 s cannot hold all of them.
@pytest.mark.timeout(900)
def test_kill_9_during_apply_leaves_the_old_or_the_new_state(
    registry_url: str, fleets: tuple[Path, Path], trial_seed: int
) -> None:
    backend = registry_url.split(":", 1)[0].split("+", 1)[0]
    rng = random.Random(f"{trial_seed}:{backend}")
    old, new = fleets
    folders = {"old": old, "new": new}

    cold = run_to_end(apply_command(old, registry_url), opened=registry_opened(registry_url))
    assert cold.code == 0, cold.stderr
    # Until it opens the registry a run only imports and parses: kill points are drawn from what follows.
    opened = cold.opened_at_cpu or 0.0
    old_state, duplicates = read_state(registry_url)
    assert not duplicates
    assert len(old_state.rows) == 10_000, old_state.describe()
    record_outcome(
        f"{backend}: cold apply of 10,000 objects: {cold.seconds:.1f}s wall, {cold.cpu:.1f}s CPU, "
        f"registry opened at {opened:.1f}s"
    )

    current = "old"
    trials: list[tuple[int, str, str, Finished, State]] = []
    # A transition writes less than the cold apply, so it needs less CPU: a run that finishes before its kill
    # point tells how much, and later points are drawn below it.
    upper = cold.cpu
    number = 0
    while sum(1 for *_, result, _ in trials if result.killed) < KILLS:
        number += 1
        assert number <= MAX_TRIALS, f"only {sum(1 for *_, r, _ in trials if r.killed)} kills in {MAX_TRIALS} trials"
        target = "new" if current == "old" else "old"
        at = opened + rng.random() * (upper - opened)
        result = run_and_kill(apply_command(folders[target], registry_url), at_cpu=at)
        assert "Traceback" not in result.stderr, result.stderr
        assert result.killed or result.code == 0, f"exit {result.code}: {result.stderr}"
        state, duplicates = read_state(registry_url)
        assert not duplicates, f"trial {number} (kill at {at:.2f}s CPU) left duplicated rows: {duplicates[:5]}"
        if not result.killed:
            upper = min(upper, result.cpu)
        came_from = current
        current = came_from if state == (old_state if came_from == "old" else trials[-1][4]) else target
        trials.append((number, came_from, target, result, state))

    # The next apply converges; it is the reference for the new state every trial that moved must have reached.
    code, _, err = run_cli("apply", "-f", str(new), "--no-probe", "--registry", registry_url)
    assert code == 0, err
    new_state, duplicates = read_state(registry_url)
    assert not duplicates
    assert new_state != old_state
    code, out, err = run_cli("plan", "-f", str(new), "--registry", registry_url)
    assert code == 0, out + err

    outcomes: Counter[str] = Counter()
    for number, came_from, target, result, state in trials:
        references = {"old": old_state, "new": new_state}
        reached = next((name for name, reference in references.items() if state == reference), None)
        how = f"killed at {result.killed_at_cpu:.2f}s CPU" if result.killed else "finished before the kill point"
        verdict = (
            "nothing written"
            if reached == came_from
            else "fully applied"
            if reached == target
            else "MIXED: " + _difference(state, references[target])
        )
        outcomes[verdict.split(":")[0]] += 1
        record_outcome(f"{backend}: trial {number}: {came_from} -> {target}, {how}: {verdict}")
        assert reached is not None, f"trial {number} ({how}) left a mix of states: {verdict}"
    kills = sum(1 for *_, result, _ in trials if result.killed)
    record_outcome(
        f"{backend}: {len(trials)} trials, {kills} killed with SIGKILL: {dict(outcomes)}; "
        "next apply converged; plan exited 0"
    )
