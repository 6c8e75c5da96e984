"""`mcp-reconciler serve`'s start-up checks: a bad callers file is one located error and nothing is served."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli.test_commands import run

TOKEN = "serve-command-token-0123456789"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("callers: [{tokenSha256: nothex}]", "callers.yaml: callers[0].tokenSha256: expected 64 lowercase hex digits"),
        ("callers: {a: b}", "callers.yaml: expected a mapping with a `callers` list"),
        ("callers: [", "callers.yaml: cannot read the callers file"),
    ],
)
def test_a_bad_callers_file_is_refused_before_serving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    callers = tmp_path / "callers.yaml"
    callers.write_text(text)
    monkeypatch.setenv("MCP_RECONCILER_SERVE_TOKEN", TOKEN)

    code, out, err = run(
        "serve", "--callers", str(callers), "--port", "0", "--registry", f"sqlite:///{tmp_path / 'r.db'}"
    )

    assert code == 1
    assert message in err
    assert out == ""


def test_serve_mcp_is_still_accepted_and_needs_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCP_RECONCILER_SERVE_TOKEN", raising=False)

    code, _, err = run("serve-mcp", "--registry", f"sqlite:///{tmp_path / 'r.db'}")

    assert code == 1
    assert "set $MCP_RECONCILER_SERVE_TOKEN" in err
