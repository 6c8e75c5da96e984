"""Bad input that used to get through: each case is one clear error naming where it is, and nothing written.

Every case runs the real command against a real SQLite registry (and the registry cases against files that
are not registries); `test_apply_fuzz.py` replays all of them, and many more, as its corpus.
"""

from __future__ import annotations

import json
import subprocess
import sys
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


EXAMPLE = Path(__file__).parents[3] / "examples" / "01-quickstart"
SERVE_TOKEN = "a-serve-token-of-enough-length"
# Every command that opens the registry, as a user would run it against the quickstart folder.
REGISTRY_COMMANDS: list[tuple[str, ...]] = [
    ("plan", "-f", str(EXAMPLE)),
    ("plan", "-f", str(EXAMPLE), "-o", "json"),
    ("apply", "-f", str(EXAMPLE), "--no-probe"),
    ("get",),
    ("get", "mcps", "everything", "-n", "demo", "-o", "yaml"),
    ("test", "everything", "-n", "demo", "-f", str(EXAMPLE)),
    ("resolve", "-n", "demo", "--template", "assistant", "-o", "json"),
    ("resolve", "-n", "demo", "--show-secrets", "-f", str(EXAMPLE)),
    ("migrate",),
    ("serve-mcp", "--port", "0"),
]


def _not_registries(root: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of file that is not a registry, with the reason the one-line error must give."""
    good = root / "good.db"
    assert run("apply", "-f", str(EXAMPLE), "--no-probe", "--registry", f"sqlite:///{good}")[0] == 0
    made = {
        "corrupt": (root / "corrupt.db", "file is not a database"),
        "truncated": (root / "truncated.db", "database disk image is malformed"),
        "empty": (root / "empty.db", "the file is empty"),
        "directory": (root / "directory.db", "it is a directory"),
    }
    made["corrupt"][0].write_bytes(bytes((index * 7919 + 13) % 256 for index in range(8192)))
    made["truncated"][0].write_bytes(good.read_bytes()[:8192])
    made["empty"][0].write_bytes(b"")
    made["directory"][0].mkdir()
    return made


def _contents(path: Path) -> bytes | list[str]:
    return sorted(child.name for child in path.iterdir()) if path.is_dir() else path.read_bytes()


def test_every_command_on_a_file_that_is_not_a_registry_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_RECONCILER_SERVE_TOKEN", SERVE_TOKEN)
    for kind, (path, reason) in _not_registries(tmp_path).items():
        url = f"sqlite:///{path}"
        before = _contents(path)
        for argv in REGISTRY_COMMANDS:
            code, out, err = run(*argv, "--registry", url)
            assert (code, out) == (1, ""), (kind, argv, err)
            assert err == f"error: registry {url} is not a registry database ({reason})\n", (kind, argv)
        assert _contents(path) == before, kind
        assert not path.with_name(path.name + "-wal").exists(), kind


HOLD_WRITE_LOCK = """\
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes stdin (or dies)
"""


def test_a_registry_locked_by_another_writer_is_one_line_for_writers_and_no_wait_for_readers(
    tmp_path: Path, sqlite_url: str
) -> None:
    assert run("apply", "-f", str(EXAMPLE), "--no-probe", "--registry", sqlite_url)[0] == 0
    before = _dump(sqlite_url)
    changed = tmp_path / "changed"
    changed.mkdir()
    (changed / "s.yaml").write_text(SERVER)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, sqlite_url.removeprefix("sqlite:///")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        # The writer waits out the busy timeout (30 s) in its own process while the readers run here.
        writer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler.cli",
                "apply",
                "-f",
                str(changed),
                "--no-probe",
                "--no-prune",
                "--registry",
                sqlite_url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            for argv in [("plan", "-f", str(EXAMPLE)), ("get",), ("resolve", "-n", "demo"), ("migrate",)]:
                code, _, err = run(*argv, "--registry", sqlite_url)
                assert code in (0, 2), (argv, err)
            _, err = writer.communicate(timeout=240)
        finally:
            writer.kill()
        assert writer.returncode == 1, err
        assert err.startswith(f"error: registry {sqlite_url} ") and err.count("\n") == 1, err
        assert "locked" in err or "busy" in err, err
    finally:
        holder.communicate(input="", timeout=60)
    assert _dump(sqlite_url) == before
