"""The Argo CD health checks, executed in real Lua against every fixture exactly as Argo CD runs them.

Fixtures follow Argo CD's resource_customizations layout (`health_test.yaml` with `inputPath` and
`healthStatus`), so the same folder works with `argocd admin settings resource-overrides health`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import lupa.lua51 as lua51
import pytest
import yaml

from reconciler.api.conditions import Reason
from tests.unit.argocd.luahealth import Health, run_health_script
from tests.unit.argocd.snippet import CHECKS, GROUP, REPO, health_scripts

CRDS = {
    document["spec"]["names"]["kind"]: document
    for path in sorted((REPO / "crds").glob("*.yaml"))
    for document in [yaml.safe_load(path.read_text())]
}
SCRIPT = CHECKS / GROUP / "MCPServer" / "health.lua"


def fixture_cases() -> list[Any]:
    cases = []
    for kind, script in health_scripts().items():
        spec = yaml.safe_load((script.parent / "health_test.yaml").read_text())
        for test in spec["tests"]:
            expected = Health(test["healthStatus"]["status"], test["healthStatus"]["message"])
            path = script.parent / test["inputPath"]
            cases.append(pytest.param(script, path, expected, id=f"{kind}/{Path(test['inputPath']).stem}"))
    return cases


@pytest.mark.parametrize(("script", "fixture", "expected"), fixture_cases())
def test_fixture_health(script: Path, fixture: Path, expected: Health) -> None:
    assert run_health_script(script, yaml.safe_load(fixture.read_text())) == expected


def test_every_kind_has_a_health_check() -> None:
    assert set(health_scripts()) == set(CRDS)
    assert all(CRDS[kind]["spec"]["group"] == GROUP for kind in CRDS)


def test_kinds_share_one_script() -> None:
    texts = {kind: path.read_text() for kind, path in health_scripts().items()}
    assert len(set(texts.values())) == 1, "fix the health check in every kind (they are meant to be identical)"


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_fixtures_cover_every_health_state(kind: str) -> None:
    folder = CHECKS / GROUP / kind
    spec = yaml.safe_load((folder / "health_test.yaml").read_text())
    assert set(spec) == {"tests"}
    for test in spec["tests"]:
        assert set(test) == {"inputPath", "healthStatus"}
        assert set(test["healthStatus"]) == {"status", "message"}
    statuses = {test["healthStatus"]["status"] for test in spec["tests"]}
    assert statuses == {"Healthy", "Progressing", "Degraded", "Suspended"}
    referenced = {test["inputPath"] for test in spec["tests"]}
    on_disk = {path.relative_to(folder).as_posix() for path in (folder / "testdata").glob("*.yaml")}
    assert referenced == on_disk, "every fixture is referenced by health_test.yaml and exists"


@pytest.mark.parametrize(("script", "fixture", "expected"), fixture_cases())
def test_fixtures_are_valid_objects_of_their_kind(script: Path, fixture: Path, expected: Health) -> None:
    obj = yaml.safe_load(fixture.read_text())
    kind = script.parent.name
    assert obj["kind"] == kind
    crd = CRDS[kind]
    (version,) = crd["spec"]["versions"]
    assert obj["apiVersion"] == f"{GROUP}/{version['name']}"
    jsonschema.validate(obj, version["schema"]["openAPIV3Schema"])
    for condition in obj.get("status", {}).get("conditions", []):
        assert condition["reason"] in set(Reason), f"{condition['reason']} is not a reason the engine uses"


def test_reasons_named_in_the_script_are_engine_reasons() -> None:
    text = SCRIPT.read_text()
    tables = re.findall(r"local (terminal\w+) = \{(.*?)\}", text, flags=re.DOTALL)
    assert {name for name, _ in tables} == {"terminalSyncReasons", "terminalReadyReasons"}
    for _, body in tables:
        names = set(re.findall(r"(\w+) = true", body))
        assert names and names <= set(Reason), names - set(Reason)
    assert "ReconcilePaused" in text and str(Reason.RECONCILE_PAUSED) == "ReconcilePaused"


def condition(type_: str, status: str, reason: str, message: str = "", generation: int = 1) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message, "observedGeneration": generation}


def obj_with(status: dict[str, Any] | None, *, generation: int | None = 1) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "x", "namespace": "t"}
    if generation is not None:
        metadata["generation"] = generation
    result: dict[str, Any] = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "MCPServer", "metadata": metadata}
    if status is not None:
        result["status"] = status
    return result


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (obj_with({"observedGeneration": 1}), Health("Progressing", "Waiting for operator")),
        (
            obj_with({"observedGeneration": 1, "conditions": [condition("Synced", "True", "ReconcileSuccess")]}),
            Health("Progressing", "Waiting for the Ready and Synced conditions"),
        ),
        (
            obj_with({"conditions": [condition("Ready", "True", "Available"), condition("Synced", "True", "X")]}),
            Health("Progressing", "Waiting for operator to observe generation 1"),
        ),
        (
            obj_with(
                {"conditions": [condition("Ready", "True", "Available"), condition("Synced", "True", "ObserveOnly")]},
                generation=None,
            ),
            Health("Healthy", "Ready"),
        ),
        (
            obj_with(
                {
                    "observedGeneration": 1,
                    "conditions": [
                        condition("Ready", "False", "Blocked", "resolves to 10.0.0.7, a private address"),
                        condition("Synced", "True", "ReconcileSuccess"),
                    ],
                }
            ),
            Health("Degraded", "Blocked: resolves to 10.0.0.7, a private address"),
        ),
        (
            obj_with(
                {
                    "observedGeneration": 1,
                    "conditions": [
                        condition("Ready", "True", "Available"),
                        condition("Synced", "False", "DriftDetected", "url differs from the registry row"),
                    ],
                }
            ),
            Health("Progressing", "DriftDetected: url differs from the registry row"),
        ),
        (
            obj_with(
                {
                    "observedGeneration": 1,
                    "conditions": [condition("Ready", "False", "Timeout"), condition("Synced", "False", "Paused")],
                }
            ),
            Health("Progressing", "Timeout"),
        ),
    ],
    ids=[
        "no-conditions",
        "ready-missing",
        "no-observed-generation",
        "no-generation",
        "blocked",
        "transient-sync",
        "no-message",
    ],
)
def test_edge_cases(obj: dict[str, Any], expected: Health) -> None:
    assert run_health_script(SCRIPT, obj) == expected


def test_sandbox_is_as_small_as_argo_cds() -> None:
    # Argo CD opens no string or math library: a script relying on them must fail here as it would there.
    for script in ('return {status = string.format("%s", "Healthy")}', "return {status = ('x'):upper()}"):
        with pytest.raises(lua51.LuaError):
            run_health_script(script, {})
    assert run_health_script('return {status = "Fine"}', {}) == Health(
        "Unknown", "Lua returned an invalid health status"
    )
    with pytest.raises(TypeError, match="expect table output"):
        run_health_script('return "Healthy"', {})
