"""A tenant's slug that is another tenant's namespace (`mcp.reconciler.dev/tenant` labels the `acme` namespace
`acme-corp`, and labels `intruder` `acme`) is refused when it is applied, and nothing is written. A registry that
holds such a pair already (written before the refusal existed; the fixture makes one by renaming a slug in SQL)
must still keep each tenant to itself in `serve`: a connect link issued for
a member of the `acme` namespace starts and stores that member's login there, never in the tenant whose slug is
`acme`; a Registry API caller whose callers entry names `acme` is scoped to one tenant, the one `resolve` reads
`acme` as (slug first), never to both. uvicorn on 127.0.0.1, the
engine's connector, the project's authorization server; SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import sqlalchemy as sa
import yaml

from reconciler.demo.serving import ServerLoop
from reconciler.engine.connecting import EngineConnector
from reconciler.engine.inputs import TENANT_LABEL, StaticSecrets
from reconciler.registry import Registry
from reconciler.runtime import build_serving_app, resolve
from reconciler.runtime.registry_api import CallerDirectory, RegistryCaller
from tests.fixtures.authorization_server import OAuthServers, oauth_servers, oauth_servers_session
from tests.integration.cli.test_commands import run
from tests.integration.cli.test_connection_truth import granted_folder
from tests.integration.runtime.test_connect_links import LOCAL, TIMEOUT, key_file, open_link
from tests.integration.runtime.test_endpoint import TOKEN

__all__ = ["key_file", "oauth_servers", "oauth_servers_session"]

MEMBER_TOKEN = "acme-namespace-member-token"


def _namespace(name: str, slug: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {TENANT_LABEL: slug}}}


def _tenants(tmp_path: Path, oauth_servers: OAuthServers, slugs: dict[str, str]) -> Path:
    """`crm` (authorization code, granted to the organization) in each namespace of `slugs`, labelled with its
    slug."""
    tmp_path.mkdir(exist_ok=True)
    folder = Path(
        granted_folder(tmp_path, oauth_servers.protected, {"type": "oauthAuthorizationCode", "pkce": "public"})
    )
    documents = [
        document for path in sorted(folder.glob("*.yaml")) for document in yaml.safe_load_all(path.read_text())
    ]
    for path in folder.glob("*.yaml"):
        path.unlink()
    for namespace, slug in slugs.items():
        copies = [{**document, "metadata": {**document["metadata"], "namespace": namespace}} for document in documents]
        text = yaml.safe_dump_all([_namespace(namespace, slug), *copies], sort_keys=False)
        (folder / f"{namespace}.yaml").write_text(text)
    return folder


def _apply(folder: Path, registry_url: str) -> tuple[int, str, str]:
    return run("apply", "-f", str(folder), "--allow-private-networks", "--registry", registry_url)


def test_a_slug_that_is_another_tenants_namespace_is_refused(
    tmp_path: Path, registry_url: str, registry: Registry, oauth_servers: OAuthServers
) -> None:
    code, out, err = _apply(_tenants(tmp_path, oauth_servers, {"acme": "acme-corp", "intruder": "acme"}), registry_url)

    assert code == 1, out + err
    assert "Namespace intruder: field metadata.labels['mcp.reconciler.dev/tenant']" in err, err
    assert "tenant slug 'acme' is the namespace of tenant 'acme-corp'" in err, err
    assert registry.fetch_state().tenants == {} and registry.fetch_resources() == []


def test_a_namespace_named_like_another_tenants_slug_is_refused(
    tmp_path: Path, registry_url: str, registry: Registry, oauth_servers: OAuthServers
) -> None:
    code, out, err = _apply(_tenants(tmp_path / "a", oauth_servers, {"acme": "acme-corp"}), registry_url)
    assert code == 0, out + err

    code, out, err = _apply(_tenants(tmp_path / "b", oauth_servers, {"acme-corp": "beta"}), registry_url)

    assert code == 1, out + err
    assert "Namespace acme-corp" in err and "its name is the tenant slug of namespace 'acme'" in err, err
    assert {tenant.slug for tenant in registry.fetch_state().tenants.values()} == {"acme-corp"}


@pytest.fixture
def aliased(tmp_path: Path, registry_url: str, registry: Registry, oauth_servers: OAuthServers) -> Registry:
    """The two tenants, `intruder`'s slug renamed to `acme` behind the reconciler's back."""
    folder = _tenants(tmp_path, oauth_servers, {"acme": "acme-corp", "intruder": "intruder"})
    code, out, err = _apply(folder, registry_url)
    assert code == 0, out + err
    engine = sa.create_engine(registry_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE tenants SET slug = 'acme' WHERE namespace = 'intruder'"))
    finally:
        engine.dispose()
    assert {(t.slug, t.namespace) for t in registry.fetch_state().tenants.values()} == {
        ("acme-corp", "acme"),
        ("acme", "intruder"),
    }
    return registry


@pytest.fixture
def served(aliased: Registry) -> Iterator[str]:
    connector = EngineConnector(aliased, secrets=StaticSecrets(), settings=LOCAL, public_url=None)
    member = RegistryCaller(member="alice", tenants=("acme",))
    callers = CallerDirectory(platform_token=TOKEN, members={hashlib.sha256(MEMBER_TOKEN.encode()).hexdigest(): member})
    with ServerLoop() as loop:
        yield loop.serve_asgi(
            lambda url: build_serving_app(aliased, token=TOKEN, callers=callers, public_url=url, connector=connector)
        )


def _state(registry: Registry, tenant: str) -> str:
    (server,) = resolve(registry, tenant, user="alice", secrets=StaticSecrets()).servers
    return server.state


def test_a_connect_link_stores_the_login_in_the_tenant_it_was_issued_for(served: str, aliased: Registry) -> None:
    (server,) = resolve(aliased, "acme-corp", user="alice", public_url=served).servers
    assert server.state == "needs_connection" and server.connect_url is not None

    page = open_link(server.connect_url)
    assert page.status_code == 200 and "Connected" in page.text, page.text
    assert _state(aliased, "acme-corp") == "ready", "alice's login belongs to the tenant that issued her link"
    assert _state(aliased, "intruder") == "needs_connection", "and never to the tenant whose slug is `acme`"


def test_a_callers_tenant_name_opens_one_tenant_only(served: str) -> None:
    with httpx2.Client(timeout=TIMEOUT) as http:
        answer = http.get(f"{served}/v0.1/servers", headers={"Authorization": f"Bearer {MEMBER_TOKEN}"})
    assert answer.status_code == 200, answer.text
    names = sorted(entry["server"]["name"] for entry in answer.json()["servers"])
    assert len(names) == 1 and names[0].endswith(".acme/crm"), names
