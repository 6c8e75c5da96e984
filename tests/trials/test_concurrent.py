"""Two `apply` processes on one registry at once, on SQLite and on PostgreSQL.

Each applies a different version of a 1,000-object folder. Both must finish: one after the other (the later one
sees the earlier one's rows and plans against them), or with a clear one-line "busy" error and nothing written.
Never a traceback, a lost row or a duplicated one: afterwards the registry holds exactly one version, so `plan`
of that version exits 0 and `plan` of the other exits 2. A writer that holds the registry past the bounded wait
makes `apply` fail with that one-line busy error, having written nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.trials.conftest import record_outcome
from tests.trials.fleet import write_fleet
from tests.trials.support import RUN_BOUND_SECONDS, apply_command, plan_command, read_state

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
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


def test_a_writer_holding_the_registry_past_the_wait_makes_apply_fail_busy_and_write_nothing(
    registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.registry import connecting, open_registry
    from tests.trials.test_crash import run_cli

    open_registry(registry_url).close()  # migrated, so the only write waiting is apply's own
    monkeypatch.setattr(connecting, "SQLITE_BUSY_TIMEOUT_MS", 1000)
    holder = sa.create_engine(registry_url, poolclass=sa.NullPool)
    try:
        with holder.connect() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                connection.execute(sa.text("SELECT stamp FROM registry_changes WHERE id = 1 FOR UPDATE"))
            code, _, err = run_cli(
                "apply", "-f", str(EXAMPLES / "01-quickstart"), "--no-probe", "--registry", registry_url
            )
            connection.rollback()
    finally:
        holder.dispose()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: registry ") and "is busy: another process has been writing to it" in lines[0]
    with open_registry(registry_url) as registry:
        assert not registry.fetch_state().rows
    record_outcome(f"{registry_url.split(':', 1)[0].split('+', 1)[0]}: writer held past the wait: {lines[0][:80]}...")
