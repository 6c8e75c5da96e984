"""The Argo CD install snippet in the docs is generated from the Lua files and must not drift from them."""

from __future__ import annotations

from typing import Any

import yaml

from tests.unit.argocd.luahealth import Health, run_health_script
from tests.unit.argocd.snippet import (
    DOC,
    PATCH_FILE,
    REGENERATE,
    config_key,
    doc_block,
    extract_doc_block,
    health_scripts,
    render_patch,
)


def test_patch_file_matches_the_lua_files() -> None:
    assert PATCH_FILE.read_text() == render_patch(), f"docs/argocd/argocd-cm-patch.yaml is stale: run {REGENERATE}"


def test_doc_snippet_matches_the_lua_files() -> None:
    assert extract_doc_block(DOC.read_text()) == doc_block(), f"docs/argocd.md is stale: run {REGENERATE}"


def test_patch_holds_each_script_verbatim_under_argo_cds_key() -> None:
    patch: dict[str, Any] = yaml.safe_load(PATCH_FILE.read_text())
    assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "argocd-cm"
    scripts = health_scripts()
    assert set(patch["data"]) == {config_key(kind) for kind in scripts}
    for kind, path in scripts.items():
        assert patch["data"][config_key(kind)] == path.read_text()


def test_the_script_as_installed_from_the_docs_still_works() -> None:
    patch: dict[str, Any] = yaml.safe_load(PATCH_FILE.read_text())
    for kind, path in health_scripts().items():
        fixture = yaml.safe_load((path.parent / "testdata" / "degraded_conflict.yaml").read_text())
        result = run_health_script(patch["data"][config_key(kind)], fixture)
        assert result.status == "Degraded" and result.message.startswith("Conflict: ")
        assert result == run_health_script(path, fixture) != Health("Healthy", "Ready")
