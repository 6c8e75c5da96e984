"""The test tiers: `pytest -m "not e2e"` is the quick loop, and it never builds or needs a kube-apiserver.

Runs pytest's collection over tests/e2e in a subprocess, as a developer would. A tripwire `bash` first on PATH
records any attempt to run `.ci/kube-assets.sh` (the e2e suite's API-server build) and fails it at once, so
the check costs seconds even when it catches a regression; the cache directory is an empty temporary one so
the real cache cannot hide an attempt.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
E2E = REPO / "tests" / "e2e"
COLLECT_TIMEOUT_SECONDS = 180


def collect(tmp_path: Path, marker: str) -> tuple[str, bool]:
    """`pytest --collect-only -m MARKER tests/e2e` output, and whether it tried to build the API server."""
    tripwire = tmp_path / "bin"
    tripwire.mkdir(exist_ok=True)
    attempted = tmp_path / f"build-attempted-{marker.replace(' ', '-')}"
    (tripwire / "bash").write_text(f"#!/bin/sh\ntouch '{attempted}'\nexit 1\n")
    (tripwire / "bash").chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key != "KUBEBUILDER_ASSETS"}
    env |= {"PATH": f"{tripwire}{os.pathsep}{env.get('PATH', '')}", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", marker, str(E2E)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=COLLECT_TIMEOUT_SECONDS,
        check=False,
    )
    return done.stdout + done.stderr, attempted.exists()


def counts(output: str) -> tuple[int, int]:
    """(selected, deselected) from pytest's summary line, e.g. `3/40 tests collected (37 deselected)`."""
    summary = re.search(r"(\d+)(?:/(\d+))? tests? collected(?: \((\d+) deselected\))?", output)
    if summary is None:
        none = re.search(r"no tests collected \((\d+) deselected\)", output)
        assert none is not None, output
        return 0, int(none.group(1))
    return int(summary.group(1)), int(summary.group(3) or 0)


def test_the_quick_loop_deselects_every_e2e_test_and_never_builds_the_api_server(tmp_path: Path) -> None:
    output, attempted = collect(tmp_path, "not e2e")
    selected, deselected = counts(output)
    assert (selected, attempted) == (0, False), output
    assert deselected >= 10, output


def test_the_e2e_marker_selects_the_whole_folder_and_only_then_prepares_the_api_server(tmp_path: Path) -> None:
    output, attempted = collect(tmp_path, "e2e")
    selected, deselected = counts(output)
    assert selected >= 10 and deselected == 0, output
    assert attempted, "the tripwire did not see the build the selected e2e tests need: the check above could not fail"
