"""CLI start-up benchmark: wall time of fresh `mcp-reconciler` processes against a bare-imports baseline.

    python bench/cli_bench.py [--runs 5]

The baseline is a fresh `python -c "import pydantic, yaml, jinja2"`: the libraries a command that reads YAML and
renders templates cannot avoid. Each case runs in `--runs` fresh interpreters (after one untimed warm-up run that
fills the bytecode cache), and its median is printed with its ratio to the baseline's median from the same run:
`--help`, `validate -f examples/`, `plan -f examples/` and `get`, both on a SQLite registry the examples were
applied to (`--no-probe`) before timing. It prints numbers and asserts nothing. Targets: `--help` <= 1.5x,
`validate` <= 3x.
"""

from __future__ import annotations

import argparse
import os
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


def run_once(command: Sequence[str]) -> float:
    # Bytecode is written, as an installed package has it: compiling the sources anew would be timed otherwise.
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    # plan exits 2 when something would change: the exit code is the command's answer, not a failure.
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 2):
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def median_seconds(command: Sequence[str], runs: int) -> float:
    run_once(command)
    return statistics.median(run_once(command) for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per case (median printed)")
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
        print(f"load average {os.getloadavg()[0]:.2f}; median of {args.runs} fresh processes per case", flush=True)
        base = median_seconds(BASELINE, args.runs)
        print(f"baseline (import pydantic, yaml, jinja2) {base:6.3f} s", flush=True)
        for name, command in cases.items():
            seconds = median_seconds(command, args.runs)
            target = f" (target <= {TARGETS[name]:.2f}x)" if name in TARGETS else ""
            print(f"{name:<40} {seconds:6.3f} s   ratio {seconds / base:.2f}x{target}", flush=True)


if __name__ == "__main__":
    main()
