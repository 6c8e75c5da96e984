"""Malformed manifests through `apply`: only our error messages, never a traceback, never a partial write."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.registry import open_registry
from tests.integration.cli.test_commands import run

EXAMPLE = Path(__file__).parents[3] / "examples" / "02-tenant-servers"
DOCUMENTS = [doc for path in sorted(EXAMPLE.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


@st.composite
def mutated_folders(draw: st.DrawFn) -> list[dict[str, Any]]:
    documents = copy.deepcopy(DOCUMENTS)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        doc = draw(st.sampled_from(documents))
        target = draw(st.sampled_from(paths(doc)))
        parent = doc
        for step in target[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "extra"]))
        if action == "replace":
            parent[target[-1]] = draw(JUNK)
        elif action == "delete" and isinstance(parent, dict):
            del parent[target[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(JUNK)
    return documents


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=mutated_folders())
def test_malformed_manifests_fail_cleanly_and_write_nothing(documents: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry_url = f"sqlite:///{root / 'registry.db'}"
        assert run("apply", "-f", str(EXAMPLE), "--no-probe", "--registry", registry_url)[0] == 0
        with open_registry(registry_url) as registry:
            before = json.dumps(registry.dump(), default=str, sort_keys=True)
        folder = root / "manifests"
        folder.mkdir()
        (folder / "all.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
        code, out, err = run("apply", "-f", str(folder), "--no-probe", "--registry", registry_url)
        assert "Traceback" not in out + err
        assert code in (0, 1)
        if code == 1:
            assert err.startswith("error: ")
            with open_registry(registry_url) as registry:
                after = json.dumps(registry.dump(), default=str, sort_keys=True)
            assert after == before
