"""Members' tokens renewed by the reconciler's own runs, not only when an agent resolves.

Called by the CLI's `apply` after its pass (when it probes: the same network permission) and by the operator's
periodic sweep (`operator.reconciling`, every `member_token_interval` over the namespaces it serves). Reads the
member tokens that have a refresh token (one query, of the run's tenants), keeps the due ones
(`credentials.renewal_due`: past 80% of their lifetime) and renews each with the credentials package's
single-flight `renew_member_tokens_in_batches` (a batch's leases claimed, and its renewed tokens stored, together),
through the probe's authorization-server adapter; a runtime resolving at the same moment shares the registry's
lease, so one refresh request is sent either way. The lease is three of the port's request bounds, which is what
lets a batch spend refresh tokens safely (see the credentials function). A token another caller is
refreshing is left to it without waiting (a run hands no token out), so racing runs (operator replicas, an `apply`
beside the sweep) spread over the set instead of queueing behind each other's leases. Failures are counted and
logged by the credentials package, never raised: a token that cannot be renewed shows up in the next resolution
as `needs_reauthorization` (refused) or stays as it is (anything else).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

import anyio

from reconciler.credentials import (
    RENEWAL_BATCH,
    DueMemberToken,
    MemberTokenRenewal,
    MintedSecretStore,
    RenewalOutcome,
    SecretReader,
    load_store_key,
    renew_member_tokens_in_batches,
    renewal_due,
)
from reconciler.errors import ReconcilerError
from reconciler.probe import ProbeAuthServer, ProbeHttp, ProbeSettings
from reconciler.registry import Registry
from reconciler.registry.records import RefreshableMemberToken


@dataclass(frozen=True)
class MemberRenewals:
    """What renewing members' tokens did: how many tokens ended in each outcome."""

    outcomes: Counter[RenewalOutcome] = field(default_factory=Counter)
    problem: str | None = None
    """Why nothing could be renewed at all (no local store key), when that is so."""

    def summary(self) -> str | None:
        """`member tokens: 2 renewed, 1 refused (the member must reconnect)`; None when nothing happened."""
        if self.problem is not None:
            return f"member tokens: not renewed: {self.problem}"
        parts = [f"{count} {outcome}" for outcome, count in sorted(self.outcomes.items()) if count]
        if not parts:
            return None
        refused = " (those members must reconnect)" if self.outcomes[RenewalOutcome.REFUSED] else ""
        return "member tokens: " + ", ".join(parts) + refused


def due_member_tokens(tokens: Collection[RefreshableMemberToken], *, now: dt.datetime) -> list[RefreshableMemberToken]:
    """The tokens to renew now. Pure."""
    return [item for item in tokens if item.token.row_id is not None and renewal_due(item.token, now=now)]


def renew_member_tokens(
    registry: Registry,
    *,
    tenants: Collection[str] | None,
    settings: ProbeSettings,
    namespaces: Collection[str] | None = None,
    secrets: SecretReader | None = None,
    now: dt.datetime | None = None,
    batch_size: int = RENEWAL_BATCH,
) -> MemberRenewals:
    """Renew the due member tokens of `tenants` and `namespaces` (None: all), `batch_size` leases at a time.
    Synchronous, like the loop's other steps: the operator runs it off the event loop."""
    found = registry.fetch_refreshable_member_tokens(tenants=tenants, namespaces=namespaces)
    due = due_member_tokens(found, now=now or _now())
    if not due:
        return MemberRenewals()
    try:
        key = load_store_key(environ=os.environ, database_path=registry.database_path(), create=False)
    except ReconcilerError as err:
        return MemberRenewals(problem=str(err))
    minted = MintedSecretStore(registry, key)
    fingerprint_key = registry.fingerprint_key()
    outcomes: Counter[RenewalOutcome] = Counter()

    async def renew_all() -> None:
        async with ProbeHttp() as http:
            renewal = MemberTokenRenewal(
                registry=registry,
                minted=minted,
                authserver=ProbeAuthServer(http, settings),
                fingerprint_key=fingerprint_key,
                secrets=secrets,
                lease=dt.timedelta(seconds=3 * settings.total_timeout),
                wait=0,
            )
            targets = [
                DueMemberToken(item.token, item.server_url, item.allow_private, item.server_auth) for item in due
            ]
            outcomes.update(await renew_member_tokens_in_batches(targets, renewal=renewal, batch_size=batch_size))

    anyio.run(renew_all)
    return MemberRenewals(outcomes=outcomes)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
