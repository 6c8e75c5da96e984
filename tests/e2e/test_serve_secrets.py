"""`serve --secrets kubernetes` on the real API server: a pre-registered confidential client (Wacht's confidential
PKCE) whose secret is a Kubernetes Secret. The operator reconciles the server; `serve`'s connect service, reading
Secrets as a service account allowed only `get` on `secrets` in the namespace (what the chart's
`serve.secrets.read` grants), completes a member's login (the code exchange authenticates with the secret) and its
endpoint's `resolve_template` refreshes the member's due token the same way; the live protected MCP server accepts
the token. The secret appears in no log, status, Event, registry row or answer. Without a Secret source, starting
the login is refused saying what to configure. SQLite and PostgreSQL.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import yaml

from reconciler.cli import _probe_settings, build_parser
from reconciler.cli_serving import connector_for, on_demand_renewal, serve_secrets
from reconciler.demo.serving import ServerLoop
from reconciler.engine.inputs import StaticSecrets
from reconciler.registry import Registry
from reconciler.runtime import build_serving_app, resolve
from tests.e2e.kube import KubeHttp, wait_for
from tests.e2e.running import RunningOperator
from tests.e2e.support import GROUP_VERSION, create, get, secret, server, wait_ready
from tests.fixtures.authorization_server import OAuthServers, oauth_servers, oauth_servers_session
from tests.integration.credentials.support import probe
from tests.integration.runtime.test_endpoint import _call, structured

__all__ = ["oauth_servers", "oauth_servers_session"]

Start = Callable[..., RunningOperator]
NewNamespace = Callable[..., str]
PLATFORM_TOKEN = "serve-secrets-e2e-platform-token"
CLIENT_ID = "crm-confidential"
CLIENT_SECRET = "crm-client-secret-5d2f9a71c4e8"
HTTP_TIMEOUT = 30.0
WAIT = 90.0
"""A bound for liveness on a busy 2-core machine, not a speed target."""
TOKEN_SECONDS = 4
"""The fixture's access-token lifetime here: due for refresh at 80% (3.2 s), so `resolve_template` refreshes it."""


@pytest.fixture(autouse=True)
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One store key for the operator and serve (one process here, as one Secret in a cluster)."""
    monkeypatch.setenv("MCP_RECONCILER_KEY_FILE", str(tmp_path / "store.key"))


def service_account_kubeconfig(kube: KubeHttp, namespace: str, path: Path) -> Path:
    """A kubeconfig for a ServiceAccount allowed only `get` on `secrets` in `namespace` (the chart's serve Role),
    with a token from the TokenRequest API, as a pod's projected token would be."""
    kube.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "serve"}},
    )
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    kube.post(
        f"{rbac}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "serve-secrets"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
        },
    )
    kube.post(
        f"{rbac}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "serve-secrets"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "serve-secrets"},
            "subjects": [{"kind": "ServiceAccount", "name": "serve", "namespace": namespace}],
        },
    )
    issued = kube.post(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/serve/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
    )
    token = issued["status"]["token"]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "e2e", "cluster": {"server": kube.server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "serve", "user": {"token": token}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "serve"}}],
                "current-context": "e2e",
            }
        )
    )
    return path


@pytest.fixture
def serve_with(registry: Registry, registry_url: str) -> Iterator[Callable[..., str]]:
    """`serve` (connect service + MCP endpoint) over the operator's registry, wired by the CLI from its flags."""
    with ServerLoop() as loop:
        closers: list[Callable[[], None]] = []

        def start(*flags: str) -> str:
            args = build_parser().parse_args(["serve", "--registry", registry_url, "--allow-private-networks", *flags])
            secrets, close = serve_secrets(args)
            closers.append(close)

            def app(url: str) -> Any:
                return build_serving_app(
                    registry,
                    token=PLATFORM_TOKEN,
                    public_url=url,
                    connector=connector_for(url, secrets=secrets, settings=_probe_settings(args))(registry),  # type: ignore[misc]
                    renewing=on_demand_renewal(secrets=secrets, settings=_probe_settings(args)),
                )

            return loop.serve_asgi(app)

        try:
            yield start
        finally:
            for close in closers:
                close()


def start_login(base: str, namespace: str) -> httpx2.Response:
    with httpx2.Client(timeout=HTTP_TIMEOUT) as http:
        return http.post(
            f"{base}/oauth/connections",
            headers={"Authorization": f"Bearer {PLATFORM_TOKEN}"},
            json={"namespace": namespace, "server": "crm", "member": "alice"},
        )


@pytest.mark.timeout(300)
def test_serve_reads_a_confidential_clients_secret_from_the_cluster(
    kube: KubeHttp,
    new_namespace: NewNamespace,
    start_operator: Start,
    registry_url: str,
    registry: Registry,
    serve_with: Callable[..., str],
    oauth_servers: OAuthServers,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    namespace = new_namespace("servesecrets")
    main = oauth_servers.main
    main.add_client(CLIENT_ID, CLIENT_SECRET, grant_types=("authorization_code", "refresh_token"))
    kube.post(f"/api/v1/namespaces/{namespace}/secrets", secret(namespace, "crm-client", {"secret": CLIENT_SECRET}))
    # The operator's own sweep would refresh too: keep it out of the way, so the refresh seen is serve's.
    start_operator([namespace], registry_url, probe=True, allow_private_networks=True, member_token_interval=3600.0)
    crm = create(
        kube,
        server(
            namespace,
            "crm",
            url=oauth_servers.protected,
            auth={
                "type": "oauthAuthorizationCode",
                "pkce": "confidential",
                "clientId": {"value": CLIENT_ID},
                "clientSecret": {"secretKeyRef": {"name": "crm-client", "key": "secret"}},
            },
            network={"allowPrivate": True},
            discovery={"enabled": True},
        ),
    )
    everyone = create(
        kube,
        {
            "apiVersion": GROUP_VERSION,
            "kind": "MCPAccessGrant",
            "metadata": {"name": "everyone", "namespace": namespace},
            "spec": {"target": {"serverRef": "crm"}, "subjects": [{"kind": "Organization"}]},
        },
    )
    wait_ready(kube, everyone, timeout=WAIT)
    wait_for(lambda: registry.find_tenant(namespace), timeout=WAIT, what="the tenant in the registry")

    # Without a Secret source, the login is refused before anything reaches the authorization server.
    plain = serve_with()
    refused = start_login(plain, namespace)
    assert refused.status_code == 400, refused.text
    assert "--secrets kubernetes" in refused.text and "serve.secrets.read" in refused.text, refused.text
    assert f"{namespace}/crm-client" in refused.text
    assert main.grant_counts["authorization_code"] == 0

    kubeconfig = service_account_kubeconfig(kube, namespace, tmp_path / "serve.kubeconfig")
    served = serve_with("--secrets", "kubernetes", "--kubeconfig", str(kubeconfig))
    main.token_lifetime = TOKEN_SECONDS
    started = start_login(served, namespace)
    assert started.status_code == 201, started.text
    with httpx2.Client(timeout=HTTP_TIMEOUT) as http:
        page = http.get(started.json()["authorizationUrl"], follow_redirects=True)  # the member's browser
        assert page.status_code == 200 and "Connected" in page.text, page.text
        status = http.get(started.json()["statusUrl"], headers={"Authorization": f"Bearer {PLATFORM_TOKEN}"})
    assert status.json()["status"] == "connected", status.text
    assert main.grant_counts["authorization_code"] == 1, "the code exchange authenticated with the Secret's value"

    # The endpoint's resolve_template refreshes the due token, authenticated with the same secret.
    time.sleep(TOKEN_SECONDS * 0.85)
    (_, result) = anyio.run(
        functools.partial(_call, token=PLATFORM_TOKEN),
        f"{served}/mcp",
        [("resolve_template", {"tenant": namespace, "user": "alice"})],
    )
    answer = structured(result)
    (entry,) = answer["servers"]
    assert entry["state"] == "ready", entry
    assert main.grant_counts["refresh_token"] == 1, "serve's on-demand renewal refreshed the token"

    resolved = resolve(registry, namespace, user="alice", secrets=StaticSecrets(), show_secrets=True).server("crm")
    assert resolved.state == "ready", resolved.reason
    assert probe(oauth_servers.protected, dict(resolved.headers)).ok, "the live protected server accepts it"

    # The secret is nowhere: logs, the object and its status, Events, the registry, serve's answers.
    events = kube.get(f"/api/v1/namespaces/{namespace}/events")
    for where, text in {
        "logs": caplog.text,
        "the server object": json.dumps(get(kube, crm)),
        "Events": json.dumps(events),
        "the registry": json.dumps(registry.dump(), default=str),
        "serve's answers": refused.text + started.text + page.text + status.text + json.dumps(answer),
    }.items():
        assert CLIENT_SECRET not in text, f"the client secret leaked into {where}"
