"""Renew the client-credentials tokens runtimes are handed before they expire, without a probe or a change.

Passes (`apply`, the operator's resync) renew a due token by probing the server (`probing.token_refresh_due`),
but only when they run with probing and get to it. `resolve` is asked at any time: for each
`oauthClientCredentials` server of the given tenants whose sealed token is missing or past `refresh_at` of its
lifetime (`renewal_due`, pure), this runs the same preparation a probe would (`credentials.prepare_many`: the
token cache mints afresh exactly when due) and reports what it renewed and what failed. Called by the CLI's
`resolve` on demand, before the registry is read for the decision.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass, field

import anyio

from reconciler.credentials import (
    CredentialFailure,
    LocalSecret,
    MintedSecrets,
    SecretReader,
    discovery_from_status,
)
from reconciler.credentials.stores import ACCESS_TOKEN
from reconciler.credentials.tokens import DEFAULT_REFRESH_AT
from reconciler.engine.authorizing import prepare_many
from reconciler.engine.crediting import credentials_context
from reconciler.probe import ProbeHttp, ProbeSettings
from reconciler.registry import Registry
from reconciler.registry.records import ServerRecord


@dataclass
class Renewal:
    """What one renewal run did: servers whose token it minted afresh, and why others could not be renewed."""

    renewed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """`tenant/server` → the failure's class and reason (never a secret)."""


def renewal_due(token: LocalSecret | None, *, now: dt.datetime, refresh_at: float = DEFAULT_REFRESH_AT) -> bool:
    """Pure: a token is due when missing, or once `refresh_at` of its lifetime has passed (never without expiry)."""
    if token is None:
        return True
    if token.expires_at is None:
        return False
    issued = _issued_at(token)
    expires = _aware(token.expires_at)
    if issued is None or issued >= expires:
        return now >= expires
    return now >= issued + (expires - issued) * refresh_at


def renew_client_credentials(
    registry: Registry,
    secrets: SecretReader,
    *,
    tenants: Collection[str] | None,
    settings: ProbeSettings,
    now: dt.datetime | None = None,
) -> Renewal:
    """Renew every due client-credentials token of `tenants` (None: all). Network calls go to authorization
    servers only, through the probe's SSRF-guarded client; each server's failure is its own."""
    now = now or dt.datetime.now(dt.UTC)
    state = registry.fetch_state(tenants=tenants)
    servers = [
        record
        for record in state.rows.values()
        if isinstance(record, ServerRecord) and record.auth_type == "oauthClientCredentials" and record.enabled
    ]
    renewal = Renewal()
    if not servers:
        return renewal
    probe_states = registry.fetch_probe_states(tenants=tenants)

    async def run() -> Renewal:
        async with ProbeHttp() as http:
            context = credentials_context(registry, secrets, http, settings)
            minted = context.stores.minted
            due = [record for record in servers if renewal_due(_stored_token(minted, record), now=now)]
            if not due:
                return renewal
            discoveries = {
                (record.tenant, record.name): discovery
                for record in due
                if (state_row := probe_states.get((record.tenant, record.name))) is not None
                and (discovery := discovery_from_status(state_row.discovery)) is not None
            }
            prepared = await prepare_many(due, context=context, discoveries=discoveries, now=now)
            for (tenant, name), outcome in sorted(prepared.items()):
                if isinstance(outcome, CredentialFailure):
                    renewal.failed[f"{tenant}/{name}"] = f"{outcome.reason}: {outcome.message}"
                else:
                    renewal.renewed.append(f"{tenant}/{name}")
            return renewal

    return anyio.run(run)


def _stored_token(minted: MintedSecrets, record: ServerRecord) -> LocalSecret | None:
    return minted.get(record.tenant, record.name, ACCESS_TOKEN)


def _issued_at(token: LocalSecret) -> dt.datetime | None:
    text = token.meta.get("issuedAt")
    if isinstance(text, str):
        try:
            return _aware(dt.datetime.fromisoformat(text))
        except ValueError:
            return None
    return _aware(token.updated_at) if token.updated_at is not None else None


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
