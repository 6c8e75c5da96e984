"""The connect flow in a real headless browser (Debian's Chromium, driven by Playwright) against a real OpenID
provider (`oidc-provider`): a platform starts alice's login through `serve`'s connect service, the browser fills
the provider's login page and accepts its consent page, lands on `{public URL}/oauth/callback`, and the page says
she is connected; `resolve` then hands her a JWT the MCP server protected by that provider accepts.
`.ci/run` installs Chromium; without it the test skips locally (a failure in CI). SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest
from starlette.types import ASGIApp

from reconciler.demo.serving import ServerLoop
from reconciler.engine.connecting import EngineConnector
from reconciler.engine.inputs import StaticSecrets
from reconciler.probe import ProbeSettings
from reconciler.registry import Registry
from reconciler.runtime import build_serving_app, resolve
from tests.fixtures.oidc_provider import OIDCProtectedMCP
from tests.integration.cli.test_commands import run
from tests.integration.cli.test_connection_truth import granted_folder
from tests.integration.credentials.support import probe

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "connect-browser-platform-token"
BROWSER_TIMEOUT_MS = 30_000


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    return CHROMIUM


def log_in_with_chromium(executable: str, url: str, *, lands_on: str) -> str:
    """Alice's browser: the provider's login page, its consent page, then the service's page; its heading.

    In a thread of its own: Playwright's synchronous API runs an event loop, which the engine's calls must not
    find running in theirs."""

    def browse() -> str:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
            try:
                page = browser.new_page()
                page.set_default_timeout(BROWSER_TIMEOUT_MS)
                page.goto(url)
                page.fill("input[name=login]", "alice")
                page.fill("input[name=password]", "any password")
                page.click("button[type=submit]")
                page.wait_for_selector("button[type=submit]")  # the consent page
                page.click("button[type=submit]")
                page.wait_for_url(f"{lands_on}**")
                return str(page.inner_text("h1"))
            finally:
                browser.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(browse).result(timeout=BROWSER_TIMEOUT_MS / 1000 * 4)


@pytest.fixture
def service(registry: Registry) -> Iterator[str]:
    """`serve`'s app with the engine's connector, its public URL where it listens."""
    settings = ProbeSettings(allow_private_networks=True)

    def app(url: str) -> ASGIApp:
        connector = EngineConnector(registry, secrets=StaticSecrets(), settings=settings, public_url=url)
        return build_serving_app(registry, token=TOKEN, public_url=url, connector=connector)

    with ServerLoop() as loop:
        yield loop.serve_asgi(app)


def test_a_member_connects_in_chromium_through_oidc_provider(
    tmp_path: Path,
    registry_url: str,
    registry: Registry,
    service: str,
    chromium: str,
    oidc_protected_mcp: OIDCProtectedMCP,
) -> None:
    folder = granted_folder(tmp_path, oidc_protected_mcp.url, {"type": "oauthAuthorizationCode", "pkce": "public"})
    # Applied with the service's public URL: the client registered at the provider lists its callback.
    code, out, err = run(
        "apply", "-f", folder, "--allow-private-networks", "--public-url", service, "--registry", registry_url
    )
    assert code == 0, out + err

    started = httpx2.post(
        f"{service}/oauth/connections",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"namespace": "acme", "server": "crm", "member": "alice"},
        timeout=30,
    )
    assert started.status_code == 201, started.text
    document = started.json()

    heading = log_in_with_chromium(chromium, document["authorizationUrl"], lands_on=f"{service}/oauth/callback")
    assert heading == "Connected"

    status = httpx2.get(document["statusUrl"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()
    assert status["status"] == "connected", status
    (server,) = resolve(registry, "acme", user="alice", secrets=StaticSecrets(), show_secrets=True).servers
    assert server.state == "ready", server.reason
    result = probe(oidc_protected_mcp.url, dict(server.headers))
    assert result.ok, result.message
    assert result.tools is not None and {tool.name for tool in result.tools} == {"whoami", "fortune"}
