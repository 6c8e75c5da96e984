"""Bad input that used to get through: each case is one clear error naming where it is, and nothing written.

Every case runs the real command against a real SQLite registry (and the registry cases against files that
are not registries); `test_apply_fuzz.py` replays all of them, and many more, as its corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.registry import open_registry
from tests.integration.cli.test_commands import run

SERVER = """\
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPServer
metadata:
  name: x
  namespace: default
spec:
  url: https://a.example.com/mcp
"""


def _dump(registry_url: str) -> str:
    with open_registry(registry_url) as registry:
        return json.dumps(registry.dump(), default=str, sort_keys=True)


@pytest.mark.parametrize("interval", ["99999999999999999999h", "8761h", "600000m"])
def test_an_interval_beyond_a_year_is_refused_by_validate_and_apply(
    tmp_path: Path, sqlite_url: str, interval: str
) -> None:
    (tmp_path / "s.yaml").write_text(SERVER + f"  discovery:\n    interval: {interval}\n")
    before = _dump(sqlite_url)
    where = "s.yaml:9: MCPServer default/x: field spec.discovery.interval"
    registry = ("--registry", sqlite_url)
    for argv in (("validate",), ("plan", *registry), ("apply", "--no-probe", *registry)):
        code, out, err = run(*argv, "-f", str(tmp_path))
        assert (code, out) == (1, ""), (argv, err)
        assert err == f"error: {where}: interval must be at most 8760h (one year)\n"
    assert _dump(sqlite_url) == before


def test_flags_taking_a_duration_refuse_one_beyond_a_year(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "s.yaml").write_text(SERVER)
    age = "99999999999999999999h"
    code, _, err = run("apply", "-f", str(tmp_path), "--no-probe", "--client-max-age", age, "--registry", sqlite_url)
    assert code == 1
    assert err == "error: --client-max-age: duration '99999999999999999999h' is longer than 8760h (one year)\n"


def test_an_integer_beyond_what_the_registry_stores_is_refused(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SERVER.replace("  namespace: default\n", "  generation: 99999999999999999999\n"))
    code, out, err = run("validate", "-f", str(tmp_path))
    assert (code, out) == (1, "")
    assert err == "error: s.yaml:5: MCPServer default/x: field metadata.generation: must be at most 2147483647\n"


def test_a_duplicate_key_fails_apply_and_writes_nothing(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "s.yaml").write_text(SERVER + "  url: https://evil.example.com/mcp\n")
    before = _dump(sqlite_url)
    code, out, err = run("apply", "-f", str(tmp_path), "--no-probe", "--registry", sqlite_url)
    assert (code, out) == (1, "")
    where = "s.yaml:8: MCPServer default/x: field spec.url"
    assert err == f"error: {where}: duplicate key: already set at line 7; remove one of them\n"
    assert _dump(sqlite_url) == before


def test_validate_renders_templates_exactly_as_plan_does(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "s.yaml").write_text(SERVER.replace("a.example.com", "{{ tenant.vars.nope }}.example.com"))
    where = "s.yaml:1: MCPServer default/x: field spec.url: "
    results = [
        run("validate", "-f", str(tmp_path)),
        run("plan", "-f", str(tmp_path), "--registry", sqlite_url),
    ]
    for code, out, err in results:
        assert (code, out) == (1, "")
        assert err.startswith(f"error: {where}undefined template variable tenant.vars.nope") and err.count("\n") == 1
    assert results[0][2] == results[1][2]


def test_validate_accepts_what_plan_renders(tmp_path: Path, sqlite_url: str) -> None:
    (tmp_path / "s.yaml").write_text(SERVER.replace("a.example.com", "{{ tenant.slug }}.example.com"))
    assert run("validate", "-f", str(tmp_path))[0] == 0
    assert run("plan", "-f", str(tmp_path), "--registry", sqlite_url)[0] == 2


CONNECTION = """\
---
apiVersion: mcp.reconciler.dev/v1alpha1
kind: MCPConnection
metadata:
  name: shared
  namespace: default
spec:
  serverRef: x
  scope: platform
"""
BEARER = "  auth:\n    type: bearer\n    secretKeyRef: {name: t, key: token}\n"
CODE_FLOW = "  auth:\n    type: oauthAuthorizationCode\n    pkce: public\n"


@pytest.mark.parametrize(
    ("server_auth", "expected"),
    [
        (BEARER, "(auth type bearer) needs a credential: set auth.secretKeyRef\n"),
        (CODE_FLOW, "needs a credential: set auth.secretKeyRef (or credentialMode: perMember, for each member's"),
    ],
)
def test_a_shared_connection_without_a_credential_is_refused(
    tmp_path: Path, sqlite_url: str, server_auth: str, expected: str
) -> None:
    (tmp_path / "s.yaml").write_text(SERVER + server_auth + CONNECTION)
    before = _dump(sqlite_url)
    for argv in (("validate",), ("apply", "--no-probe", "--registry", sqlite_url)):
        code, out, err = run(*argv, "-f", str(tmp_path))
        assert (code, out) == (1, "")
        assert err.startswith("error: s.yaml:12: MCPConnection default/shared: field spec.auth: a shared connection")
        assert expected in err
    assert _dump(sqlite_url) == before


@pytest.mark.parametrize(
    "connection",
    [
        CONNECTION + "  auth:\n    secretKeyRef: {name: t, key: token}\n",
        CONNECTION
        + "  headers:\n    - name: x-api-key\n      valueFrom:\n        secretKeyRef: {name: t, key: token}\n",
        CONNECTION + "  credentialMode: perMember\n",
    ],
)
def test_a_connection_with_a_credential_or_per_member_is_accepted(tmp_path: Path, connection: str) -> None:
    (tmp_path / "s.yaml").write_text(SERVER + CODE_FLOW + connection)
    code, _, err = run("validate", "-f", str(tmp_path))
    assert code == 0, err


def test_a_shared_connection_to_a_server_without_auth_needs_no_credential(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SERVER + CONNECTION)
    assert run("validate", "-f", str(tmp_path))[0] == 0


def test_show_secrets_without_a_folder_is_one_clear_error(sqlite_url: str) -> None:
    before = _dump(sqlite_url)
    code, out, err = run("resolve", "-n", "default", "--show-secrets", "--registry", sqlite_url)
    assert (code, out) == (1, "")
    assert err == "error: --show-secrets needs -f DIR: the folder whose Secrets hold the header values\n"
    assert _dump(sqlite_url) == before
