"""`resolve`: the effective MCP servers of one agent invocation, read from the registry at call time.

Called by agent runtimes (Python), by the CLI's `resolve` command (through `commands.resolve_command`) and
by the agent-facing MCP endpoint. Three steps: fetch what the decision needs (a fixed number of indexed
queries, `Registry.fetch_resolution_inputs`), decide (pure, `deciding.decide`), then read secret values for
the chosen headers from the `SecretReader` — only when one is given, and shown only with `show_secrets`.
A secret that cannot be read blocks its server and is named by reference; values never reach an error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Sequence

from reconciler.api.times import format_time
from reconciler.credentials import (
    MintedSecretStore,
    SecretKeyProblem,
    SecretReader,
    fingerprint,
    is_local_reference,
    last_good_value,
    load_store_key,
    parse_reference,
)
from reconciler.credentials.connect_links import LinkTarget
from reconciler.errors import PermanentError, ReconcilerError
from reconciler.registry import Registry
from reconciler.registry.lookups import ResolutionInputs
from reconciler.runtime.deciding import Caller, Decisions, HeaderSource, ServerDecision, decide
from reconciler.runtime.linking import ConnectLinks, links_for
from reconciler.runtime.renewing import (
    ClientCredentialsRenewal,
    MemberTokenValues,
    TokenRenewal,
    default_renewal,
    renew_due_tokens,
    tokens_handed_out,
)
from reconciler.runtime.resolution import MASK, Resolution, ResolvedServer, ServerState, ToolNamespace


class UnknownTenant(PermanentError):
    """No tenant has this slug or lives in this namespace."""

    reason = "UnknownTenant"


def resolve(
    registry: Registry,
    tenant: str,
    *,
    template: str | None = None,
    agent: str | None = None,
    user: str | None = None,
    teams: Sequence[str] = (),
    secrets: SecretReader | None = None,
    show_secrets: bool = False,
    namespace_tools: bool | ToolNamespace = False,
    explain: bool = False,
    platform_tenant: str | None = None,
    now: dt.datetime | None = None,
    renew_tokens: bool = False,
    renewal: TokenRenewal | None = None,
    public_url: str | None = None,
    client_credentials: ClientCredentialsRenewal | None = None,
) -> Resolution:
    """The servers, URLs, headers and tools `template` gets for this agent and member.

    `tenant` is a tenant slug or its namespace. Without `template`, every server of the tenant is offered.
    Header values are masked unless `show_secrets` (which needs `secrets`); with `secrets` given, every
    referenced secret is read so a missing one shows up as a blocked server either way. Forbidden servers
    are listed only with `explain`. `platform_tenant` (a slug or namespace) is the platform whose featured
    servers every tenant is offered last, with the platform's own credential and only where a grant in the
    platform namespace names the Organization. Tokens the reconciler minted (client credentials) are read from the
    registry's sealed store whatever `secrets` is, and one that has expired by `now` is never handed out.
    `now` (the clock, unless given) is when members' tokens are judged
    expired: an expired one that cannot be refreshed makes its server `needs_reauthorization`. `namespace_tools`
    names tools `mcp:<server>:<tool>` (`True` or `"server"`) or `mcp:<connection>:<tool>` (`"connection"`).

    `renew_tokens` is the one switch for renewing, before the rows are read, the due tokens (past 80% of their
    lifetime) this resolution is about to hand out: the member's own, else the organization's shared one it falls
    back to (single-flight across concurrent resolutions; `renewing`), with `renewal` (default:
    `default_renewal(registry)`; without a store key there is no sealed token to renew), and the client-credentials
    tokens, through `client_credentials` when the caller passes the engine's. The sealed values it stores are read
    from its local store. The CLI's `resolve` and `serve`'s endpoint renew by default; a library call only when
    asked, since renewing sends requests to authorization servers.

    With `public_url` (where the connect service of `serve` is reachable: its `--public-url`), a server that waits on
    the member's own login (`needs_connection`, `needs_reauthorization`) carries a `connect_url`: a signed link,
    valid for an hour, that starts exactly that login (`linking`). The link is signed with a key derived from the
    registry's store key; without one yet, the server's action says so instead.
    """
    if show_secrets and secrets is None:
        raise ValueError("show_secrets needs a secret source to read header values from")
    team_names = tuple(dict.fromkeys(teams))
    caller = Caller(agent=agent, user=user, teams=team_names)
    if renew_tokens:
        if client_credentials is not None and (found := registry.find_tenant(tenant)) is not None:
            client_credentials(registry, found.slug)
        if renewal is None:
            try:
                renewal = default_renewal(registry)
            except SecretKeyProblem:
                renewal = None  # no store key: no member token was ever sealed, so none is due
        if renewal is not None:
            _renew_member_tokens(
                registry, tenant, template=template, caller=caller, renewal=renewal, secrets=secrets, now=now
            )
    if renewal is not None and secrets is not None:
        secrets = MemberTokenValues(secrets, renewal.minted)
    inputs, decisions = fetch_decisions(
        registry,
        tenant,
        template=template,
        caller=caller,
        namespace_tools=namespace_tools,
        platform_tenant=platform_tenant,
        now=now,
    )
    verifiers: dict[str, VerifiedValues] = {}
    minted = MintedValues(registry, now=now, store=renewal.minted if renewal is not None else None)

    def verified(decision: ServerDecision) -> VerifiedValues | None:
        # A platform server's values were recorded (and last-good copies kept) under the platform tenant.
        if secrets is None:
            return None
        slug = decision.server.tenant
        return verifiers.setdefault(slug, VerifiedValues(registry, slug))

    servers = tuple(
        _resolved(decision, secrets=secrets, show_secrets=show_secrets, verified=verified(decision), minted=minted)
        for decision in decisions.servers
        if explain or decision.state is not ServerState.FORBIDDEN
    )
    if public_url is not None:
        servers = _with_connect_links(
            servers,
            decisions.servers,
            registry=registry,
            public_url=public_url,
            tenant=inputs.tenant.slug,
            now=now or dt.datetime.now(dt.UTC),
        )
    return Resolution(
        tenant=inputs.tenant.slug,
        namespace=inputs.tenant.namespace,
        template=template,
        agent=agent,
        user=user,
        teams=team_names,
        servers=servers,
        explained=explain,
        secrets_shown=show_secrets,
        notes=decisions.notes if explain else (),
    )


def _with_connect_links(
    servers: tuple[ResolvedServer, ...],
    decisions: Sequence[ServerDecision],
    *,
    registry: Registry,
    public_url: str,
    tenant: str,
    now: dt.datetime,
) -> tuple[ResolvedServer, ...]:
    """Each server waiting on the member's own login with the link that starts it (or, without a store key to sign
    with, an action that says why there is none). The link names `tenant` by its slug: the connect service looks it
    up slug first, and a namespace can be another tenant's slug (a tenant label chooses slugs freely)."""
    logins = {decision.server.name: decision for decision in decisions if decision.connect_member is not None}
    links: ConnectLinks | str | None = None
    linked: list[ResolvedServer] = []
    for server in servers:
        decision = logins.get(server.name)
        if decision is None or decision.connect_member is None or server.state not in _WAITING_ON_LOGIN:
            linked.append(server)
            continue
        links = links if links is not None else links_for(registry, public_url)
        if isinstance(links, str):
            linked.append(dataclasses.replace(server, action=f"{server.action} (no connect link: {links})"))
            continue
        target = LinkTarget(
            namespace=tenant,
            server=server.name,
            member=decision.connect_member,
            connection=decision.connect_connection,
        )
        linked.append(dataclasses.replace(server, connect_url=links.url(target, now=now)))
    return tuple(linked)


_WAITING_ON_LOGIN = (ServerState.NEEDS_CONNECTION, ServerState.NEEDS_REAUTHORIZATION)


def fetch_decisions(
    registry: Registry,
    tenant: str,
    *,
    template: str | None,
    caller: Caller,
    namespace_tools: bool | ToolNamespace = False,
    platform_tenant: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[ResolutionInputs, Decisions]:
    """The rows and the per-server decisions for one caller, before any secret value is read.

    `resolve` goes on to read header values; `exporting` turns the secret references into placeholders. The
    platform tenant's rows are read for no member and no team, so only its Organization grants can match.
    `now` (the clock, unless given) is when members' tokens are judged expired.
    """
    inputs = registry.fetch_resolution_inputs(tenant, template=template, user=caller.user, teams=caller.teams)
    if inputs is None:
        raise UnknownTenant(f"no tenant has slug or namespace {tenant!r} in registry {registry.url}")
    platform = None
    if platform_tenant is not None:
        platform = registry.fetch_resolution_inputs(platform_tenant, template=None)
        if platform is None:
            raise UnknownTenant(f"the platform namespace {platform_tenant!r} is no tenant in registry {registry.url}")
    decisions = decide(
        inputs,
        caller=caller,
        template=template,
        namespace_tools=namespace_tools,
        now=now or dt.datetime.now(dt.UTC),
        platform=platform,
    )
    return inputs, decisions


def _renew_member_tokens(
    registry: Registry,
    tenant: str,
    *,
    template: str | None,
    caller: Caller,
    renewal: TokenRenewal,
    secrets: SecretReader | None,
    now: dt.datetime | None,
) -> None:
    """Refresh the due tokens the caller would be handed among the offered servers' (the member's own, else the
    organization's) before the rows are read for the decision."""
    inputs = registry.fetch_resolution_inputs(tenant, template=template, user=caller.user, teams=caller.teams)
    if inputs is None or not inputs.tokens:
        return
    servers = {row.server.name: row.server for row in inputs.bound}
    handed_out = tokens_handed_out(inputs.tokens, user=caller.user)
    renew_due_tokens(
        registry,
        handed_out,
        servers,
        renewal=renewal,
        secrets=secrets if secrets is not None else renewal.client_secrets,
        now=now or dt.datetime.now(dt.UTC),
    )


class VerifiedValues:
    """Hands out only values the live server accepted: the Secret's current value when its fingerprint is the
    one the row recorded, else the pinned last-good copy, else nothing (a rotation not yet verified)."""

    def __init__(self, registry: Registry, tenant: str) -> None:
        self._registry = registry
        self._tenant = tenant
        self._key = registry.stored_fingerprint_key()
        self._store: MintedSecretStore | None = None
        self._store_loaded = False

    def check(self, server: str, source: HeaderSource, value: str) -> str | None:
        if source.fingerprint is None or source.secret_ref is None or self._key is None:
            return value
        if fingerprint(self._key, value) == source.fingerprint:
            return value
        store = self._minted()
        if store is None:
            return None
        return last_good_value(
            store, tenant=self._tenant, server=server, reference=source.secret_ref, fingerprint=source.fingerprint
        )

    def _minted(self) -> MintedSecretStore | None:
        if not self._store_loaded:
            self._store_loaded = True
            try:
                key = load_store_key(environ=os.environ, database_path=self._registry.database_path(), create=False)
            except ReconcilerError:
                return None
            self._store = MintedSecretStore(self._registry, key)
        return self._store


class MintedValues:
    """Values the reconciler minted (client-credentials tokens), sealed in the registry: read with the local store
    key, and handed out only before they expire. The key is loaded on first use, never created here."""

    def __init__(
        self, registry: Registry, *, now: dt.datetime | None = None, store: MintedSecretStore | None = None
    ) -> None:
        self._registry = registry
        self._now = now
        self._store = store
        self._problem: str | None = None
        self._loaded = store is not None

    def problem(self, reference: str) -> str | None:
        """Why the minted value behind `reference` cannot be handed out, or None when it can."""
        store = self._minted()
        if store is None:
            return f"{reference} cannot be read: {self._problem}"
        tenant, name, purpose = _local_parts(reference)
        member = name.startswith("member_")  # `credentials.member_token_name`
        whose = "the member's stored token" if member else f"the client-credentials token for {name}"
        try:
            found = store.get(tenant, name, purpose)
        except ReconcilerError as err:  # sealed with another key: named, never the value
            return f"{reference} cannot be read: {err}"
        if found is None:
            if member:
                return f"{whose} is not stored any more (disconnected while this resolution ran)"
            return f"the reconciler has not minted {whose} yet (or its last attempt failed)"
        now = self._now or dt.datetime.now(dt.UTC)
        if found.expires_at is not None and _aware(found.expires_at) <= now:
            return f"{whose} expired at {format_time(_aware(found.expires_at))}"
        return None

    def usable(self, reference: str) -> str | None:
        """The value, when `problem` finds none."""
        if self.problem(reference) is not None or self._store is None:
            return None
        tenant, name, purpose = _local_parts(reference)
        found = self._store.get(tenant, name, purpose)
        return None if found is None else found.value

    def _minted(self) -> MintedSecretStore | None:
        if not self._loaded:
            self._loaded = True
            try:
                key = load_store_key(environ=os.environ, database_path=self._registry.database_path(), create=False)
            except ReconcilerError as err:
                self._problem = str(err)
                return None
            self._store = MintedSecretStore(self._registry, key)
        return self._store


def _minted_problem(source: HeaderSource, minted: MintedValues | None) -> str | None:
    if minted is None or source.secret_ref is None or not is_local_reference(source.secret_ref):
        return None
    return minted.problem(source.secret_ref)


def _local_parts(reference: str) -> tuple[str, str, str]:
    namespace, name, purpose = parse_reference(reference)
    return namespace.removeprefix("local:"), name, purpose


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _resolved(
    decision: ServerDecision,
    *,
    secrets: SecretReader | None,
    show_secrets: bool,
    verified: VerifiedValues | None,
    minted: MintedValues | None = None,
) -> ResolvedServer:
    server = decision.server
    headers, unreadable, unverified = _header_values(
        decision.headers,
        secrets=secrets,
        show_secrets=show_secrets,
        verified=verified,
        server=server.name,
        minted=minted,
    )
    unusable = [problem for source in decision.headers if (problem := _minted_problem(source, minted)) is not None]
    if unusable:
        return _blocked(
            decision,
            "; ".join(unusable),
            "the reconciler mints and renews this token: run `mcp-reconciler apply` (or `resolve`, which renews "
            "due tokens) or let the operator's resync run; see the server's CredentialsValid condition",
        )
    if unverified:
        reason = (
            f"the current value of {', '.join(unverified)} has not been verified against the server and no "
            "last good value is available"
        )
        return _blocked(
            decision, reason, "fix the Secret (see the server's CredentialsValid condition), then reconcile"
        )
    if unreadable:
        reason = f"secret {', '.join(unreadable)} could not be read"
        return _blocked(decision, reason, "an administrator must restore the referenced Secret key")
    return decision.resolved(headers)


def _blocked(decision: ServerDecision, reason: str, action: str) -> ResolvedServer:
    """A server whose headers cannot be rendered safely: offered to nobody, with the reason and the fix."""
    return dataclasses.replace(
        decision.resolved({}),
        state=ServerState.BLOCKED,
        tools=(),
        tool_snapshot=None,
        reason=reason,
        action=action,
        explain=(*decision.explain[:-1], f"headers: {reason}", "state: blocked"),
    )


def _header_values(
    sources: Sequence[HeaderSource],
    *,
    secrets: SecretReader | None,
    show_secrets: bool,
    verified: VerifiedValues | None = None,
    server: str = "",
    minted: MintedValues | None = None,
) -> tuple[dict[str, str], list[str], list[str]]:
    """Header values (masked unless `show_secrets`), the references that could not be read, and those whose
    current value was never verified (with no last good copy to use instead)."""
    headers: dict[str, str] = {}
    unreadable: list[str] = []
    unverified: list[str] = []
    for source in sources:
        if source.secret_ref is None:
            value = source.value or ""
        elif minted is not None and is_local_reference(source.secret_ref):
            token = minted.usable(source.secret_ref)
            if token is None:
                continue  # `_minted_problem` says why
            value = token if show_secrets else MASK
        else:
            secret = _read(secrets, source.secret_ref) if secrets is not None else MASK
            if secret is None:
                unreadable.append(source.secret_ref)
                continue
            if verified is not None and secrets is not None:
                checked = verified.check(server, source, secret)
                if checked is None:
                    unverified.append(source.secret_ref)
                    continue
                secret = checked
            value = secret if show_secrets else MASK
        headers[source.name] = f"{source.prefix} {value}" if source.prefix else value
    return headers, unreadable, unverified


def _read(secrets: SecretReader, reference: str) -> str | None:
    try:
        namespace, name, key = parse_reference(reference)
    except ValueError:
        return None
    return secrets.read(namespace, name, key)
