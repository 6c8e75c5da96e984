"""CLI start-up benchmark: wall and CPU time of fresh `mcp-reconciler` processes against a bare-imports baseline.

    python bench/cli_bench.py [--runs 5]

The baseline is a fresh `python -c "import pydantic, yaml, jinja2"`: the libraries a command that reads YAML and
renders templates cannot avoid. Each case runs in `--runs` fresh interpreters (after one untimed warm-up run that
fills the bytecode cache), and its median is printed with its ratio to the baseline's median from the same run:
`--help`, `validate -f examples/`, `plan -f examples/` and `get`, both on a SQLite registry the examples were
applied to (`--no-probe`) before timing. Next to wall time it prints CPU time (the child's user + sys, from
`getrusage(RUSAGE_CHILDREN)` deltas): on a busy machine wall time mostly measures the neighbours, CPU time what
the command costs. The cases and the baseline take turns, one process each per round, so load that comes and
goes falls on all of them alike. It prints numbers and asserts nothing. Targets: `--help` <= 1.5x, `validate` <= 3x.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BASELINE = [sys.executable, "-c", "import pydantic, yaml, jinja2"]
TARGETS = {"--help": 1.5, "validate": 3.0}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "reconciler.cli", *args]


def children_cpu_seconds() -> float:
    """User + sys time of every waited-for child so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run_once(command: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process running `command`."""
    # Bytecode is written, as an installed package has it: compiling the sources anew would be timed otherwise.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    # plan exits 2 when something would change: the exit code is the command's answer, not a failure.
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    cpu = children_cpu_seconds() - cpu_before
    if done.returncode not in (0, 2):
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed, cpu


def interleaved_medians(commands: dict[str, Sequence[str]], runs: int) -> dict[str, tuple[float, float]]:
    """Median wall and median CPU seconds of each command over `runs` rounds, after one untimed warm-up each.
    Every round runs every command once, so a change in the machine's load falls on all of them alike."""
    for command in commands.values():
        run_once(command)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            samples[name].append(run_once(command))
    return {
        name: (statistics.median(wall for wall, _ in taken), statistics.median(cpu for _, cpu in taken))
        for name, taken in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="rounds of fresh processes (medians printed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        registry = f"sqlite:///{Path(scratch) / 'registry.db'}"
        os.environ.pop("MCP_RECONCILER_REGISTRY", None)
        run_once(cli("apply", "--no-probe", "-f", str(EXAMPLES), "--registry", registry))
        cases = {
            "--help": cli("--help"),
            "validate": cli("validate", "-f", str(EXAMPLES)),
            "plan": cli("plan", "-f", str(EXAMPLES), "--registry", registry),
            "get": cli("get", "--registry", registry),
        }
        print(f"load average {os.getloadavg()[0]:.2f}; median of {args.runs} rounds, one process per case each")
        medians = interleaved_medians({"baseline": BASELINE, **cases}, args.runs)
        base, base_cpu = medians.pop("baseline")
        print(f"{'case':<40} {'wall':>7}  {'ratio':>6}   {'cpu':>7}  {'ratio':>6}")
        print(f"{'baseline (import pydantic, yaml, jinja2)':<40} {base:6.3f} s          {base_cpu:6.3f} s")
        for name, (seconds, cpu) in medians.items():
            target = f"   (target <= {TARGETS[name]:.2f}x)" if name in TARGETS else ""
            print(f"{name:<40} {seconds:6.3f} s  {seconds / base:5.2f}x   {cpu:6.3f} s  {cpu / base_cpu:5.2f}x{target}")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
