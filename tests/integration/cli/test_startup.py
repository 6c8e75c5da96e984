"""The CLI starts at once: `--help` and `validate` run in a fresh interpreter and must not import the heavy
libraries other commands need (the registry's SQLAlchemy, the probe's mcp SDK, httpx2 and asyncio, the operator's
kopf and kubernetes client, PyJWT and cryptography for client assertions, deepdiff for a plan's field diffs). The
set of imported modules is asserted, not the time, so the test holds on a loaded machine; `bench/cli_bench.py`
prints the times. Also pins that the lazy package `__init__`s still export every name.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
HEAVY = {
    "alembic",
    "anyio",
    "asyncio",
    "cryptography",
    "deepdiff",
    "httpcore2",
    "httpx",
    "httpx2",
    "jwt",
    "kopf",
    "kubernetes",
    "mcp",
    "mcp_types",
    "psycopg",
    "sqlalchemy",
    "starlette",
    "uvicorn",
}
"""Top-level packages neither `--help` nor `validate` may import: asyncio is for the commands that do network I/O,
PyJWT and cryptography for signing client assertions and sealing secrets, deepdiff for a plan's field diffs."""

RUN_AND_LIST_MODULES = """
import json, sys
from reconciler.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported_modules(*args: str, exit_codes: tuple[int | None, ...] = (0, None)) -> set[str]:
    """Run the CLI with `args` in a fresh interpreter; the modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] in exit_codes, done.stderr
    return set(report["modules"])


def top_level(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


def test_help_imports_no_model_and_no_third_party_library() -> None:
    modules = imported_modules("--help")
    assert not top_level(modules) & (HEAVY | {"pydantic", "pydantic_core", "yaml", "jinja2"})
    assert not {name for name in modules if name.startswith("reconciler.")} - {
        "reconciler.cli",
        "reconciler.cli_listing",
        "reconciler.cli_registries",
        "reconciler.cli_serving",  # resolve's and serve's arguments (argparse only)
        "reconciler.errors",
        "reconciler.lazy_exports",
        "reconciler.registry",
        "reconciler.registry.managers",  # DEFAULT_MANAGER, the `--manager` default, without the record types
    }


def test_validate_imports_models_and_templates_but_not_the_registry_store_or_the_probe() -> None:
    modules = imported_modules("validate", "-f", str(EXAMPLES))
    assert not top_level(modules) & HEAVY, "no example signs client assertions"
    assert {"pydantic", "yaml", "jinja2", "reconciler.engine.desired"} <= modules
    ours = {name for name in modules if name.startswith("reconciler.")}
    assert not {name for name in ours if name.startswith(("reconciler.probe", "reconciler.operator"))}
    assert not ours & {"reconciler.engine.reconciling", "reconciler.registry.store", "reconciler.registry.connecting"}


def test_get_does_not_import_the_mcp_sdk_or_the_endpoint(tmp_path: Path) -> None:
    modules = imported_modules("get", "--registry", f"sqlite:///{tmp_path / 'registry.db'}")
    assert not top_level(modules) & {"mcp", "mcp_types", "uvicorn", "starlette", "kopf", "kubernetes", "httpx2"}
    assert "reconciler.runtime.membership" in modules and "reconciler.runtime.endpoint" not in modules


def test_plan_imports_neither_the_probe_nor_the_credentials_steps(tmp_path: Path) -> None:
    """`plan` is a dry run: it observes and plans, and never probes, mints or writes."""
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    modules = imported_modules("plan", "-f", str(EXAMPLES), "--registry", registry, exit_codes=(2,))
    assert not top_level(modules) & {"mcp", "mcp_types", "httpx2", "httpcore2", "anyio", "kopf", "kubernetes"}
    assert not top_level(modules) & {"starlette", "uvicorn", "websockets"}
    assert "deepdiff" not in top_level(modules), "only rows that differ are diffed, and every row here is new"
    assert {"reconciler.engine.reconciling", "reconciler.engine.impact", "sqlalchemy"} <= modules
    assert not modules & {
        "reconciler.probe.probing",
        "reconciler.engine.steps.credentials",
        "reconciler.engine.steps.probe",
        "reconciler.engine.steps.report",
    }


@pytest.mark.parametrize(
    "package",
    [
        "reconciler.registry",
        "reconciler.credentials",
        "reconciler.probe",
        "reconciler.runtime",
        "reconciler.engine.reconciling",
    ],
)
def test_lazy_packages_export_every_name_from_its_module(package: str) -> None:
    module = importlib.import_module(package)
    for name in module.__all__:
        value = getattr(module, name)
        origin = getattr(value, "__module__", None)
        if isinstance(origin, str) and origin.startswith(package + "."):
            assert getattr(importlib.import_module(origin), name) is value
    with pytest.raises(AttributeError):
        getattr(module, "no_such_name")  # noqa: B009
