"""Two `apply` processes on one registry at once, on SQLite and on PostgreSQL.

Each applies a different version of a 1,000-object folder. Both must finish: one after the other (the later one
sees the earlier one's rows and plans against them), or with a clear one-line "busy" error and nothing written.
Never a traceback, a lost row or a duplicated one: afterwards the registry holds exactly one version, so `plan`
of that version exits 0 and `plan` of the other exits 2.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.trials.conftest import record_outcome
from tests.trials.fleet import write_fleet
from tests.trials.support import RUN_BOUND_SECONDS, apply_command, plan_command, read_state

OBJECTS = 1_000
ROUNDS = 2


@pytest.fixture(scope="module")
def small_fleets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("small-fleet")
    for version, name in enumerate(("old", "new")):
        assert write_fleet(root / name, version=version, objects=OBJECTS, tenants=10) == OBJECTS
    return root / "old", root / "new"


def test_two_applies_at_once_both_finish_without_lost_or_duplicated_rows(
    registry_url: str, small_fleets: tuple[Path, Path]
) -> None:
    backend = registry_url.split(":", 1)[0].split("+", 1)[0]
    folders = dict(zip(("old", "new"), small_fleets, strict=True))
    for round_number in range(1, ROUNDS + 1):
        processes = {
            name: subprocess.Popen(
                apply_command(folder, registry_url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for name, folder in folders.items()
        }
        outcomes = []
        for name, process in processes.items():
            _, err = process.communicate(timeout=RUN_BOUND_SECONDS)
            assert "Traceback" not in err, err
            if process.returncode == 0:
                outcomes.append(f"{name}: applied")
            else:
                assert process.returncode == 1, err
                lines = err.strip().splitlines()
                assert len(lines) == 1 and lines[0].startswith("error: ") and "busy" in lines[0], err
                outcomes.append(f"{name}: {lines[0]}")
        state, duplicates = read_state(registry_url)
        assert not duplicates, duplicates[:5]
        assert len(state.rows) == OBJECTS and len(state.resources) == OBJECTS, state.describe()
        plans = {
            name: subprocess.run(
                plan_command(folder, registry_url), capture_output=True, text=True, timeout=RUN_BOUND_SECONDS
            )
            for name, folder in folders.items()
        }
        codes = sorted(result.returncode for result in plans.values())
        assert codes == [0, 2], {name: (r.returncode, r.stderr) for name, r in plans.items()}
        holds = next(name for name, result in plans.items() if result.returncode == 0)
        record_outcome(
            f"{backend}: concurrent round {round_number} ({OBJECTS} objects each): {'; '.join(outcomes)}; "
            f"registry holds exactly {holds}, no row lost or duplicated"
        )
