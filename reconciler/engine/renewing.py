"""Members' tokens renewed by the reconciler's own runs, not only when an agent resolves.

Called by the CLI's `apply` after its pass (when it probes: the same network permission) and by the operator's
periodic sweep (`operator.reconciling`, every `member_token_interval` over the namespaces it serves). Reads the
member tokens that have a refresh token (one query, of the run's tenants), keeps the due ones
(`credentials.renewal_due`: past 80% of their lifetime) and renews them with the single-flight
`renew_member_tokens_in_batches` (a batch's leases claimed, and its renewed tokens stored, together, here; each
refresh is `credentials.member_tokens.member_refresh_steps`, the pure steps the runtime's single-token renewal
performs too), sent through the probe's authorization-server adapter (`AuthServerAccess.run`), their reads answered
from the registry and the stores here; a runtime resolving at the same moment shares the registry's
lease, so one refresh request is sent either way. The lease is three of the port's request bounds, which is what
lets a batch spend refresh tokens safely (see `renew_member_tokens_in_batches`). A token another caller is
refreshing is left to it without waiting (a run hands no token out), so racing runs (operator replicas, an `apply`
beside the sweep) spread over the set instead of queueing behind each other's leases. Failures are counted and
logged here, never raised: a token that cannot be renewed shows up in the next resolution as `needs_reauthorization`
(refused) or stays as it is (anything else).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import anyio

from reconciler.credentials import (
    DueMemberToken,
    MemberTokenRenewal,
    MintedSecretStore,
    NewSecret,
    OAuthRejected,
    RenewalOutcome,
    SecretReader,
    is_invalid_grant,
    load_store_key,
    member_token_name,
    renewal_due,
)
from reconciler.credentials.authserver import AuthServerAccess
from reconciler.credentials.member_tokens import (
    ClientsWanted,
    ValueWanted,
    member_refresh_steps,
    refreshed_token_rows,
)
from reconciler.credentials.stores import REFRESH_TOKEN, read_stored_value
from reconciler.credentials.tokens import MintedToken
from reconciler.errors import ReconcilerError, RetryableError
from reconciler.probe import ProbeAuthServer, ProbeHttp, ProbeSettings
from reconciler.registry import Registry
from reconciler.registry.records import RefreshableMemberToken, UserTokenRecord

logger = logging.getLogger(__name__)

RENEWAL_BATCH = 100
"""Tokens claimed, refreshed and stored together by `renew_member_tokens_in_batches`."""


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


async def renew_member_tokens_in_batches(
    due: Sequence[DueMemberToken], *, renewal: MemberTokenRenewal, batch_size: int = RENEWAL_BATCH
) -> Counter[RenewalOutcome]:
    """Renew many members' tokens, single-flight like `renew_member_token`, for a caller that hands no token out
    (the engine's runs): a token someone else holds or just renewed is left to them without waiting (`WAITED`).

    Per batch, three registry round trips instead of three per token: one claim of every lease (`lease`, as for
    one token), one read of the refresh tokens, one transaction storing the renewed tokens and releasing the rest.
    A lease is only unsafe if it can run out while its refresh token is being spent, so a batch sends refreshes
    only during the first third of its lease: each one is bounded by a third (the port's request bound, which
    `lease` is sized from), and the store has the last third. A refresh token is never spent after that; the
    tokens left over are released for the next run. The store writes only rows whose lease is still this
    batch's, so a token another caller took over keeps that caller's token set. Never raises for a failed
    refresh."""
    outcomes: Counter[RenewalOutcome] = Counter()
    for start in range(0, len(due), batch_size):
        outcomes.update(await _renew_batch(due[start : start + batch_size], renewal=renewal))
    return +outcomes


async def _renew_batch(batch: Sequence[DueMemberToken], *, renewal: MemberTokenRenewal) -> Counter[RenewalOutcome]:
    holder = uuid.uuid4().hex
    started = time.monotonic()
    seen = {
        item.token.row_id: item.token.expires_at
        for item in batch
        if item.token.row_id is not None and item.token.expires_at is not None
    }
    held = renewal.registry.claim_token_refreshes(seen, holder=holder, lease=renewal.lease)
    spend_until = started + renewal.lease.total_seconds() / 3
    outcomes = Counter({RenewalOutcome.WAITED: len(batch) - len(held)})
    mine = [item for item in batch if item.token.row_id in held]
    renewed: list[tuple[UserTokenRecord, MintedToken]] = []
    released: list[int] = []
    refused: list[UserTokenRecord] = []
    try:
        refresh_tokens = _read_many([item.token.refresh_token_ref for item in mine], renewal=renewal)
        for item in mine:
            token = item.token
            assert token.row_id is not None
            if time.monotonic() > spend_until:
                released.append(token.row_id)
                continue
            what = f"member {token.user_id}'s token for {token.tenant}/{token.server}"
            steps = member_refresh_steps(
                token,
                refresh_tokens.get(token.refresh_token_ref or ""),
                server_url=item.server_url,
                server_auth=item.server_auth,
                fingerprint_key=renewal.fingerprint_key,
                now=_now(),
                token_endpoints=renewal.token_endpoints,
                oauth_clients=renewal.oauth_clients,
            )
            access = AuthServerAccess(client=renewal.authserver, allow_private=item.allow_private)
            try:
                refreshed = await access.run(steps, answer=functools.partial(_read_for_refresh, renewal=renewal))
            except OAuthRejected as err:
                if is_invalid_grant(err):
                    logger.info("%s: the refresh token was refused (invalid_grant); the member must reconnect", what)
                    refused.append(token)
                else:
                    logger.warning("%s was not refreshed: %s", what, err)
                    released.append(token.row_id)
                continue
            except ReconcilerError as err:
                logger.warning("%s was not refreshed: %s", what, err)
                released.append(token.row_id)
                continue
            renewed.append((token, refreshed))
    finally:
        # Also on cancellation: the refresh tokens already spent are rotated, and only the store keeps the new ones.
        done = {token.row_id for token, _ in renewed} | set(released) | {token.row_id for token in refused}
        released += [row_id for row_id in held if row_id not in done]
        outcomes.update(_store_batch(renewed, released=released, refused=refused, renewal=renewal, holder=holder))
    return outcomes


def _read_many(references: Sequence[str | None], *, renewal: MemberTokenRenewal) -> dict[str, str]:
    """The refresh tokens behind `references`, the sealed ones in one read."""
    wanted = [reference for reference in references if reference is not None]
    found = renewal.minted.read_many(wanted)
    for reference in wanted:
        if reference not in found and (value := _read(reference, renewal=renewal)) is not None:
            found[reference] = value
    return found


def _read_for_refresh(wanted: ValueWanted | ClientsWanted, *, renewal: MemberTokenRenewal) -> object:
    """What a member's refresh steps asked to read. The runtime answers them the same way (it may not import this
    module, nor this module it: the few lines are kept in both)."""
    if isinstance(wanted, ClientsWanted):
        return renewal.registry.fetch_oauth_clients(tenant=wanted.tenant, server=wanted.server)
    return _read(wanted.reference, renewal=renewal)


def _read(reference: str, *, renewal: MemberTokenRenewal) -> str | None:
    return read_stored_value(reference, minted=renewal.minted, secrets=renewal.secrets)


def _store_batch(
    renewed: Sequence[tuple[UserTokenRecord, MintedToken]],
    *,
    released: Sequence[int],
    refused: Sequence[UserTokenRecord],
    renewal: MemberTokenRenewal,
    holder: str,
) -> Counter[RenewalOutcome]:
    """One transaction: the renewed tokens whose lease is still `holder`'s, with their sealed values; the other
    leases given back; refused refresh tokens forgotten."""
    records: list[UserTokenRecord] = []
    sealed: dict[int | None, list[NewSecret]] = {}
    for token, refreshed in renewed:
        record, sealed[token.row_id] = refreshed_token_rows(token, refreshed)
        records.append(record)
    try:
        with renewal.registry.transaction() as transaction:
            stored = transaction.store_refreshed_tokens(records, holder=holder)
            renewal.minted.put_all(
                [secret for row_id in sorted(stored) for secret in sealed[row_id]], transaction=transaction
            )
            transaction.release_token_refreshes(released, holder=holder)
            for token in refused:
                assert token.row_id is not None
                if transaction.release_token_refresh(token.row_id, holder=holder, forget_refresh_token=True):
                    name = member_token_name(server=token.server, connection=token.connection, user=token.user_id)
                    renewal.minted.delete(token.tenant, name, [REFRESH_TOKEN], transaction=transaction)
    except RetryableError as err:
        logger.warning("%d renewed member tokens could not be stored: %s", len(renewed), err)
        return Counter({RenewalOutcome.FAILED: len(renewed) + len(released), RenewalOutcome.REFUSED: len(refused)})
    for token, refreshed in renewed:
        what = f"member {token.user_id}'s token for {token.tenant}/{token.server}"
        if token.row_id in stored:
            logger.info("%s refreshed; it expires at %s", what, refreshed.expires_at)
        else:
            # The lease ran out mid-refresh and another caller took over: its token set stands, ours is discarded.
            logger.warning("%s: the refresh outlived its lease", what)
    return Counter(
        {
            RenewalOutcome.RENEWED: len(stored),
            RenewalOutcome.FAILED: len(renewed) - len(stored) + len(released),
            RenewalOutcome.REFUSED: len(refused),
        }
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
