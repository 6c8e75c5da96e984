"""Connect and disconnect a member's own account on an `oauthAuthorizationCode` server: the I/O half.

`credentials.connecting` decides (the login's URL, state and verifier; whether a callback answers it; what to
seal; the revocation request). This module performs, with `minting.py` (the code exchange) and `revoking.py`
(the issuer's metadata, the revocations): it prepares the server's client as a pass would (reusing a
registered one), reads the issuer's metadata, exchanges the code through the probe's SSRF-guarded client, and
writes the sealed tokens and the member's `user_tokens` row in one registry transaction, so a reconnect replaces
both or neither. A disconnect revokes (RFC 7009, where the issuer offers it) and then deletes both. Either may go
through one of the server's `perMember` MCPConnections (`connection`): the tokens are then kept for it. Called by
the CLI's `connect` / `disconnect` and `serve`'s connect service (`EngineConnector`); the loopback callback and the
browser are the driver's.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio

from reconciler.credentials import (
    MintedSecretStore,
    SecretReader,
    discovery_from_status,
    load_store_key,
)
from reconciler.credentials.connecting import (
    Login,
    begin_login,
    check_member_id,
    code_from_callback,
    login_token_client,
    with_step_up,
)
from reconciler.credentials.errors import IncompleteAuthSpec
from reconciler.credentials.issuers import IssuerFacts
from reconciler.credentials.member_tokens import member_token_name, member_token_rows
from reconciler.credentials.stores import ACCESS_TOKEN, REFRESH_TOKEN
from reconciler.credentials.tokens import MintedToken, TokenClient
from reconciler.engine.authorizing import prepare_server_credentials
from reconciler.engine.crediting import credentials_context
from reconciler.engine.inputs import StaticSecrets
from reconciler.engine.minting import exchange_authorization_code
from reconciler.engine.revoking import issuer_facts, revoke
from reconciler.errors import PermanentError
from reconciler.probe import ProbeHttp, ProbeSettings
from reconciler.records import AuthDiscovery
from reconciler.registry import Registry
from reconciler.registry.records import ConnectionRecord, ServerRecord

CODE_FLOW = "oauthAuthorizationCode"


@dataclass(frozen=True)
class MemberLogin:
    """A login begun for one member on one server: what finishing it needs (secrets kept out of the repr)."""

    tenant: str
    server: str
    member: str
    login: Login
    token_client: TokenClient = field(repr=False)
    resource: str | None
    allow_private: bool
    connection: str | None = None
    """The `perMember` MCPConnection the tokens are kept for; None: the member's own on the server itself."""

    @property
    def authorization_url(self) -> str:
        return self.login.authorization_url


@dataclass(frozen=True)
class Disconnection:
    revoked: tuple[str, ...]
    """Token types the issuer was asked to revoke and confirmed (`refresh_token`, `access_token`)."""
    revocation: str
    """What happened about revocation, in words (revoked, not offered by the issuer, nothing to revoke)."""
    rows: int


def begin_member_login(
    registry: Registry,
    secrets: SecretReader,
    *,
    tenant: str,
    server: str,
    member: str,
    redirect_uri: str,
    settings: ProbeSettings,
    now: dt.datetime | None = None,
    state: str | None = None,
    public_url: str | None = None,
    connection: str | None = None,
) -> MemberLogin:
    """Prepare the server's client (registering it if it has none) and begin one login for `member`; `state`
    when the caller signs its own (the connect service); `connection` when the member connects through one of the
    server's `perMember` MCPConnections rather than on the server itself."""
    check_member_id(member)
    record, discovery = _code_server(registry, tenant, server)
    if connection is not None:
        _member_connection(registry, record, connection)
    tenant = record.tenant
    challenged = _challenged_scopes(registry, record)

    async def run() -> MemberLogin:
        async with ProbeHttp() as http:
            context = credentials_context(registry, secrets, http, settings, public_url=public_url)
            prepared = await prepare_server_credentials(record, context=context, discovery=discovery, now=now)
            known = discovery or prepared.discovery
            template = prepared.authorization_url_template
            if template is not None:
                template = with_step_up(template, challenged)
            token_url = record.auth.get("tokenUrl") or (known.token_url if known else None)
            if template is None or not token_url:
                missing = "authorization" if template is None else "token"
                field_name = "authUrl" if template is None else "tokenUrl"
                raise IncompleteAuthSpec(
                    f"server {tenant}/{server}: no {missing} endpoint; set spec.auth.{field_name} "
                    "(discovery found none)"
                )
            access = context.access(allow_private=record.allow_private)
            issuer = known.authorization_servers[0] if known and known.authorization_servers else None
            facts = await issuer_facts(issuer, access=access) if issuer else IssuerFacts()
            login = begin_login(
                template,
                redirect_uri=redirect_uri,
                issuer=facts.issuer or issuer,
                iss_required=facts.iss_parameter_supported,
                state=state,
            )
            client = login_token_client(
                record.auth,
                token_url=token_url,
                registered=prepared.client,
                secrets=secrets,
                advertised=_advertised_methods(facts, known),
            )
            resource = record.auth.get("resource") or (known.resource if known else None)
            return MemberLogin(tenant, server, member, login, client, resource, record.allow_private, connection)

    return anyio.run(run)


def finish_member_login(
    registry: Registry,
    pending: MemberLogin,
    callback: Mapping[str, str],
    *,
    settings: ProbeSettings,
    now: dt.datetime | None = None,
) -> MintedToken:
    """Check the callback, exchange its code and store the member's tokens; the token for a summary line."""
    code = code_from_callback(pending.login, callback)

    async def run() -> MintedToken:
        async with ProbeHttp() as http:
            context = credentials_context(registry, StaticSecrets(), http, settings)
            return await exchange_authorization_code(
                client=pending.token_client,
                code=code,
                code_verifier=pending.login.code_verifier,
                redirect_uri=pending.login.redirect_uri,
                resource=pending.resource,
                access=context.access(allow_private=pending.allow_private),
                fingerprint_key=registry.fingerprint_key(),
                now=now,
            )

    token = anyio.run(run)
    issuer = pending.login.issuer or _origin(pending.token_client.token_url)
    rows = member_token_rows(
        token,
        tenant=pending.tenant,
        server=pending.server,
        user=pending.member,
        connection=pending.connection,
        client_id=pending.token_client.client_id,
        issuer=issuer,
    )
    minted = _minted(registry)
    with registry.transaction() as transaction:
        minted.put_all(rows.seal, transaction=transaction)
        if rows.drop_refresh_token:
            minted.delete(pending.tenant, rows.owner, [REFRESH_TOKEN], transaction=transaction)
        transaction.put_member_token(rows.record)
    return token


def disconnect_member(
    registry: Registry,
    secrets: SecretReader,
    *,
    tenant: str,
    server: str,
    member: str,
    settings: ProbeSettings,
    public_url: str | None = None,
    connection: str | None = None,
) -> Disconnection:
    """Revoke the member's tokens where the issuer offers revocation, then delete them and their row; `connection`
    for the tokens kept for one of the server's `perMember` MCPConnections rather than on the server itself."""
    check_member_id(member)
    record, discovery = _code_server(registry, tenant, server)
    if connection is not None:
        _member_connection(registry, record, connection)
    tenant = record.tenant
    owner = member_token_name(server=server, connection=connection, user=member)
    minted = _minted(registry)
    held = {
        hint: found.value
        for hint, purpose in (("refresh_token", REFRESH_TOKEN), ("access_token", ACCESS_TOKEN))
        if (found := minted.get(tenant, owner, purpose)) is not None
    }

    async def run() -> tuple[tuple[str, ...], str]:
        if not held:
            return (), "nothing to revoke: no token is stored for this member"
        async with ProbeHttp() as http:
            context = credentials_context(registry, secrets, http, settings, public_url=public_url)
            prepared = await prepare_server_credentials(record, context=context, discovery=discovery)
            known = discovery or prepared.discovery
            issuer = known.authorization_servers[0] if known and known.authorization_servers else None
            access = context.access(allow_private=record.allow_private)
            facts = await issuer_facts(issuer, access=access) if issuer else IssuerFacts()
            if facts.revocation_endpoint is None:
                return (), "not revoked: the issuer advertises no revocation endpoint (RFC 7009)"
            token_url = record.auth.get("tokenUrl") or (known.token_url if known else None) or ""
            client = login_token_client(
                record.auth,
                token_url=token_url,
                registered=prepared.client,
                secrets=secrets,
                advertised=_advertised_methods(facts, known),
            )
            # The refresh token first: revoking it may end the access tokens issued with it (RFC 7009 §2.1).
            revoked = tuple(
                [
                    hint
                    for hint, value in held.items()
                    if await revoke(facts.revocation_endpoint, value, hint=hint, client=client, access=access)
                ]
            )
            return revoked, f"revoked at {facts.revocation_endpoint}: {', '.join(revoked) or 'nothing confirmed'}"

    revoked, revocation = anyio.run(run)
    with registry.transaction() as transaction:
        minted.delete(tenant, owner, transaction=transaction)
        rows = transaction.delete_user_tokens(tenant=tenant, server=server, user_id=member, connection=connection)
    return Disconnection(revoked=revoked, revocation=revocation, rows=rows)


def _code_server(registry: Registry, tenant: str, server: str) -> tuple[ServerRecord, AuthDiscovery | None]:
    """The applied server row and its last discovery; a clear error when it is not an authorization-code server."""
    found = registry.find_tenant(tenant)
    if found is None:
        raise PermanentError(f"no tenant has slug or namespace {tenant!r} in registry {registry.url}")
    state = registry.fetch_state(tenants=[found.slug])
    record = state.get(("servers", found.slug, server))
    if not isinstance(record, ServerRecord):
        raise PermanentError(f"MCPServer {found.namespace}/{server} is not in registry {registry.url}: apply it first")
    if record.auth_type != CODE_FLOW:
        raise PermanentError(
            f"MCPServer {found.namespace}/{server}: spec.auth.type is {record.auth_type}; members connect their "
            f"own account only on {CODE_FLOW} servers"
        )
    probe_state = registry.fetch_probe_states(tenants=[found.slug]).get((found.slug, server))
    return record, discovery_from_status(probe_state.discovery if probe_state is not None else None)


def _member_connection(registry: Registry, record: ServerRecord, name: str) -> ConnectionRecord:
    """The server's active `perMember` connection `name`, which members' own logins may go through; a clear error
    for any other."""
    namespace = registry.find_tenant(record.tenant)
    where = f"MCPConnection {namespace.namespace if namespace else record.tenant}/{name}"
    found = registry.fetch_state(tenants=[record.tenant]).get(("connections", record.tenant, name))
    if not isinstance(found, ConnectionRecord):
        raise PermanentError(f"{where} is not in registry {registry.url}: apply it first")
    if found.server != record.name:
        raise PermanentError(f"{where} belongs to server {found.server}, not {record.name}")
    if found.credential_mode != "perMember" or not found.active:
        what = "inactive" if found.active is False else f"{found.credential_mode}, not perMember"
        raise PermanentError(
            f"{where} is {what}: members connect their own account only through an active perMember one"
        )
    return found


def _challenged_scopes(registry: Registry, record: ServerRecord) -> tuple[str, ...]:
    """The scopes the server's last test was refused for (`insufficient_scope`): a new login asks for them too."""
    state = registry.fetch_probe_states(tenants=[record.tenant]).get((record.tenant, record.name))
    scopes = (state.last_test or {}).get("challengedScopes") if state is not None else None
    return tuple(str(scope) for scope in scopes) if isinstance(scopes, list) else ()


def _advertised_methods(facts: IssuerFacts, known: AuthDiscovery | None) -> tuple[str, ...]:
    """The token endpoint's client authentication methods: from the issuer's metadata, else the last discovery."""
    return facts.token_endpoint_auth_methods or (known.token_endpoint_auth_methods_supported if known else ())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _minted(registry: Registry) -> MintedSecretStore:
    return MintedSecretStore(registry, load_store_key(environ=os.environ, database_path=registry.database_path()))


class EngineConnector:
    """The connect service's `Connector` over these functions, for one open registry (what `serve` builds)."""

    def __init__(
        self, registry: Registry, *, secrets: SecretReader, settings: ProbeSettings, public_url: str | None
    ) -> None:
        self._registry = registry
        self._secrets = secrets
        self._settings = settings
        self._public_url = public_url

    def begin(
        self,
        *,
        namespace: str,
        server: str,
        member: str,
        redirect_uri: str,
        state: str,
        connection: str | None = None,
    ) -> MemberLogin:
        return begin_member_login(
            self._registry,
            self._secrets,
            tenant=namespace,
            server=server,
            member=member,
            redirect_uri=redirect_uri,
            settings=self._settings,
            state=state,
            public_url=self._public_url,
            connection=connection,
        )

    def finish(self, pending: object, callback: dict[str, str]) -> None:
        if not isinstance(pending, MemberLogin):
            raise TypeError(f"not a login this connector began: {type(pending).__name__}")
        finish_member_login(self._registry, pending, callback, settings=self._settings)

    def disconnect(self, *, namespace: str, server: str, member: str, connection: str | None = None) -> str:
        done = disconnect_member(
            self._registry,
            self._secrets,
            tenant=namespace,
            server=server,
            member=member,
            settings=self._settings,
            public_url=self._public_url,
            connection=connection,
        )
        return done.revocation
