"""The credentials layer leaks nothing: distinctive secret values are seeded, every flow runs (minting, caching,
renewal, invalid_client, DCR public and confidential, login and refresh, client rotation, header modes, rotation
verification, a missing Secret, deletion, a real MCP server quoting the token in `WWW-Authenticate`), and no
plaintext value may appear in any log record (root logger at DEBUG, every logger, httpx2, httpcore2 and mcp
included), any error, any repr or status, or anywhere in a full `registry.dump()`."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.credentials import (
    ResolvedHeaders,
    add_server_credential,
    add_stored_headers,
)
from reconciler.demo.servers import MCP_PATH
from reconciler.demo.serving import ServerLoop
from reconciler.engine.authorizing import (
    release_server_credentials,
    rotate_server_client,
)
from reconciler.errors import ReconcilerError
from reconciler.probe import credential_verifier, verify_credential
from reconciler.registry.records import HeaderRecord
from tests.fixtures.authorization_server import OAuthServers
from tests.fixtures.mcp_servers import reflecting_token_app
from tests.integration.credentials.support import LOCAL, NAMESPACE, TENANT, probe, run, server, target, world
from tests.integration.credentials.test_authorization_code import code_server, member_logs_in
from tests.integration.credentials.test_authorization_code import prepare as prepare_code
from tests.integration.credentials.test_client_credentials import cc_server
from tests.integration.credentials.test_client_credentials import prepare as prepare_cc

SEEDED = {
    "client_secret": "zzLeak-ClientSecret-6a1f0c",
    "wrong_secret": "zzLeak-WrongSecret-93bd17",
    "bearer": "zzLeak-Bearer-2c7e55",
    "api_key": "zzLeak-ApiKey-d04a8e",
    "header": "zzLeak-Header-1b9f3a",
    "new_bearer": "zzLeak-NewBearer-77c0de",
}
CLIENT_ID = "leak-client"


def test_no_plaintext_anywhere(
    registry_url: str, oauth_servers: OAuthServers, server_loop: ServerLoop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every library's loggers inherit DEBUG
    for name in ("httpx2", "httpcore2", "mcp", "uvicorn", "reconciler"):
        caplog.set_level(logging.DEBUG, logger=name)  # restored after the test
    seen: list[str] = []  # reprs, messages and status of everything the flows returned or raised

    def keep(value: Any) -> Any:
        seen.append(repr(value))
        if isinstance(value, BaseException):
            seen.append(str(value))
        return value

    def expect_failure(action: Callable[[], Any]) -> None:
        try:
            action()
        except ReconcilerError as err:
            keep(err)
        else:
            raise AssertionError("expected the flow to fail")

    secrets = {
        (NAMESPACE, "oauth"): {"clientSecret": SEEDED["client_secret"], "wrong": SEEDED["wrong_secret"]},
        (NAMESPACE, "static"): {"bearer": SEEDED["bearer"], "key": SEEDED["api_key"], "header": SEEDED["header"]},
    }
    main = oauth_servers.main
    main.add_client(CLIENT_ID, SEEDED["client_secret"])
    main.token_lifetime = 100
    with world(registry_url, secrets) as w:
        records = [
            cc_server(
                "cc", oauth_servers.protected, clientId=CLIENT_ID, clientSecretRef=f"{NAMESPACE}/oauth#clientSecret"
            ),
            cc_server(
                "cc-wrong", oauth_servers.protected, clientId=CLIENT_ID, clientSecretRef=f"{NAMESPACE}/oauth#wrong"
            ),
            cc_server("cc-missing", oauth_servers.protected, clientSecretRef=f"{NAMESPACE}/gone#clientSecret"),
            server("dyn", oauth_servers.protected, "oauthClientCredentials", dynamicRegistration=True),
            code_server("public", oauth_servers.protected, "public"),
            code_server("confidential", oauth_servers.protected, "confidential"),
        ]
        w.add_servers(*records)
        cc, wrong, missing, dyn, public, confidential = records
        start = dt.datetime.now(dt.UTC)

        # client credentials: mint, reuse, renew, use
        minted = keep(prepare_cc(w, cc, now=start))
        keep(prepare_cc(w, cc, now=start + dt.timedelta(seconds=10)))
        renewed = keep(prepare_cc(w, cc, now=start + dt.timedelta(seconds=90)))
        seen.append(json.dumps(minted.credential_status()) + json.dumps(renewed.credential_status()))
        keep(probe(oauth_servers.protected, dict(renewed.headers)))
        keep(probe(oauth_servers.protected, {"Authorization": "Bearer " + SEEDED["wrong_secret"]}))
        expect_failure(lambda: prepare_cc(w, wrong))
        expect_failure(lambda: prepare_cc(w, missing))

        # dynamic registration, login, refresh-capable tokens, client rotation
        dynamic = keep(prepare_cc(w, dyn))
        keep(probe(oauth_servers.protected, dict(dynamic.headers)))
        for record in (public, confidential):
            prepared = keep(prepare_code(w, record))
            keep(probe(oauth_servers.protected, keep(member_logs_in(w, prepared, main.issuer)).headers()))
        old = dynamic.client
        assert old is not None
        keep(
            run(
                lambda http: rotate_server_client(
                    dyn,
                    context=w.context(http),
                    previous=old,
                    verify_with=credential_verifier(
                        target(oauth_servers.protected, name="dyn"), settings=LOCAL, http=http
                    ),
                )
            )
        )

        # header modes and rotation verification with a new bearer value
        echo = oauth_servers.echo
        echo.required = {"Authorization": f"Token {SEEDED['bearer']}", "X-Key": SEEDED["header"]}
        resolved = ResolvedHeaders()
        add_stored_headers(resolved, [HeaderRecord(name="X-Key", secret_ref=f"{NAMESPACE}/static#header")], w.store)
        add_server_credential(
            resolved, "bearer", {"secretRef": f"{NAMESPACE}/static#bearer", "scheme": "Token"}, w.store
        )
        add_server_credential(
            resolved, "apiKey", {"secretRef": f"{NAMESPACE}/static#key", "headerName": "X-Api"}, w.store
        )
        assert keep(probe(echo.url, resolved.headers)).ok
        # a real MCP server that quotes the presented token back in WWW-Authenticate
        reflecting = server_loop.serve_asgi(lambda _url: reflecting_token_app()) + MCP_PATH
        assert keep(probe(reflecting, resolved.headers)).error_class == "auth"
        echo.required = {"Authorization": f"Bearer {SEEDED['new_bearer']}"}
        keep(probe(echo.url, {"Authorization": f"Bearer {SEEDED['bearer']}", "X-Key": SEEDED["api_key"]}))
        keep(
            run(
                lambda http: verify_credential(
                    target(echo.url, {"Authorization": f"Bearer {SEEDED['new_bearer']}"}), settings=LOCAL, http=http
                )
            )
        )

        # deletion
        for name in ("dyn", "confidential", "public", "cc"):
            keep(
                run(
                    lambda http, name=name: release_server_credentials(
                        TENANT, name, context=w.context(http), allow_private=True
                    )
                )
            )
        dump = json.dumps(w.registry.dump(), default=str)

    values = [*SEEDED.values(), *oauth_servers.issued_values()]
    assert len(values) > len(SEEDED) + 8  # tokens, refresh tokens, DCR secrets and registration tokens were issued
    logged = caplog.text + "".join(repr(record.args) + str(record.msg) for record in caplog.records)
    returned = "\n".join(seen)
    for value in values:
        assert value not in logged, f"a secret value appears in the logs ({value[:8]}…)"
        assert value not in dump, f"a secret value appears in the registry ({value[:8]}…)"
        assert value not in returned, f"a secret value appears in a repr, message or status ({value[:8]}…)"
    assert len(caplog.records) > 20  # the flows really did log (httpx2 requests, registrations, probes)
