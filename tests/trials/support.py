"""What the crash and concurrency trials share: running `apply` as a real process, killing it at a point of its
own CPU time, and reading a registry as a comparable state.

A registry "state" here is what a reader can see of the desired objects: every managed row by natural key with
its spec-derived content and ownership, the tenants, and the CLI's copy of each applied object (kind, namespace,
name, spec hash). Row ids and timestamps are left out: they legitimately differ between two runs reaching the
same state. Duplicates are counted on the raw tables, so a row written twice cannot hide behind a dict key.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reconciler.registry import open_registry

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RUN_BOUND_SECONDS = 300.0
"""No single `apply` of the trials may take longer than this, however loaded the machine."""
POLL_SECONDS = 0.02


@dataclass(frozen=True)
class State:
    rows: frozenset[tuple[Any, ...]]
    tenants: frozenset[str]
    resources: frozenset[tuple[str, str, str, str]]

    def describe(self) -> str:
        kinds = Counter(key[0] for key, *_ in self.rows)
        return f"{len(self.rows)} rows ({dict(sorted(kinds.items()))}), {len(self.resources)} object copies"


NATURAL_KEYS = {
    "tenants": ("slug",),
    "servers": ("tenant_id", "name"),
    "connections": ("tenant_id", "name"),
    "access_grants": ("tenant_id", "name"),
    "template_bindings": ("tenant_id", "name"),
    "resources": ("kind", "namespace", "name"),
}


def read_state(url: str) -> tuple[State, list[str]]:
    """The registry's visible state, and every duplicated natural key found in the raw tables.

    The copies and the duplicate counts are read with plain SQL: decoding 10,000 statuses after every trial
    would cost more than the trial.
    """
    with open_registry(url) as registry:
        observed = registry.fetch_state()
    rows = frozenset(
        (
            key,
            record.content_hash(),
            record.ownership.manager,
            record.ownership.source,
            record.ownership.spec_hash,
        )
        for key, record in observed.rows.items()
    )
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            duplicates = [
                f"{table} {tuple(row)}"
                for table, columns in NATURAL_KEYS.items()
                for row in connection.execute(
                    sa.text(
                        f"SELECT {', '.join(columns)}, count(*) FROM {table} "
                        f"GROUP BY {', '.join(columns)} HAVING count(*) > 1"
                    )
                )
            ]
            copies = connection.execute(sa.text("SELECT kind, namespace, name, spec_hash FROM resources")).all()
    finally:
        engine.dispose()
    state = State(
        rows=rows,
        tenants=frozenset(observed.tenants),
        resources=frozenset((kind, namespace, name, spec_hash) for kind, namespace, name, spec_hash in copies),
    )
    return state, duplicates


def apply_command(folder: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "reconciler.cli", "apply", "-f", str(folder), "--no-probe", "--registry", url]


def plan_command(folder: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "reconciler.cli", "plan", "-f", str(folder), "--registry", url]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process, from /proc; None once it has exited."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str
    seconds: float
    cpu: float = 0.0
    killed_at_cpu: float | None = None
    opened_at_cpu: float | None = None

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL


def registry_opened(url: str) -> Callable[[int], bool]:
    """A check that process `pid` has connected to the registry at `url` (before that it only imports and parses).

    SQLite: the process holds the database file open. PostgreSQL: the server lists a session of the reconciler's
    application name on the trial's database (the check's own connection is told apart by its pid).
    """
    if url.startswith("sqlite"):
        database = Path(url.split("///", 1)[1]).resolve()

        def holds_file(pid: int) -> bool:
            try:
                return any(
                    os.readlink(fd) == str(database) for fd in Path(f"/proc/{pid}/fd").iterdir() if fd.is_symlink()
                )
            except (FileNotFoundError, ProcessLookupError):
                return False

        return holds_file

    engine = sa.create_engine(url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'mcp-reconciler' AND pid <> pg_backend_pid()"
    )

    def has_session(_pid: int) -> bool:
        with engine.connect() as connection:
            return bool(connection.execute(query).scalar())

    return has_session


def run_to_end(command: list[str], *, opened: Callable[[int], bool] | None = None) -> Finished:
    """Run a command to its end (bounded), measuring wall time, the CPU time it used, and the CPU time it had
    used when `opened(pid)` first held."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    opened_at = None
    # `with` closes the pipes however the run ends (a failed bound, a pytest timeout), so no open pipe is left
    # for the garbage collector to report inside some later test.
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
        try:
            while opened is not None and opened_at is None and process.poll() is None:
                used = cpu_seconds(process.pid)
                if used is not None and opened(process.pid):
                    opened_at = used
                if time.monotonic() - started > RUN_BOUND_SECONDS:
                    raise AssertionError(f"{command[3]} did not finish within {RUN_BOUND_SECONDS:.0f}s")
                time.sleep(POLL_SECONDS)
            stdout, stderr = process.communicate(timeout=RUN_BOUND_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=RUN_BOUND_SECONDS)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    finished = Finished(process.returncode, stdout, stderr, time.monotonic() - started, cpu=cpu)
    finished.opened_at_cpu = opened_at
    return finished


def run_and_kill(command: list[str], *, at_cpu: float) -> Finished:
    """Start `command` and SIGKILL it once it has used `at_cpu` seconds of CPU (or let it finish first).

    CPU time rather than wall time, so the point falls in the same phase of the run however loaded the machine.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    deadline = started + RUN_BOUND_SECONDS
    killed_at = None
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as process:
        try:
            while process.poll() is None:
                used = cpu_seconds(process.pid)
                if used is not None and used >= at_cpu:
                    process.send_signal(signal.SIGKILL)
                    killed_at = used
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"apply did not reach {at_cpu:.2f}s of CPU within {RUN_BOUND_SECONDS:.0f}s")
                time.sleep(POLL_SECONDS)
            _, stderr = process.communicate(timeout=RUN_BOUND_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=RUN_BOUND_SECONDS)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Finished(process.returncode, "", stderr, time.monotonic() - started, cpu=cpu, killed_at_cpu=killed_at)
