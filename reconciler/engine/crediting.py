"""The pass-level credential I/O of the credentials step (`engine/steps/credentials.py`), around apply and probe.
The credentials package decides; this module and `authorizing.py` (one OAuth server's exchanges, which this module
calls) perform: all network I/O goes through one SSRF-guarded `ProbeHttp` per step, handed to the credentials
decisions' performer as the authorization-server port (`ProbeAuthServer`) and as the verification probe
(`credential_verifier`), and the registry is the storage port.

    before apply    verify_rotations: a changed Secret behind a server's or connection's credential is probed
                    against the live server first; only a verified value is written (same row, in place), a
                    rejected or unverifiable one is held back and reported as RotationFailed.
                    release_deleted: deregister dynamically registered clients and drop minted values of
                    servers about to be deleted (their rows cascade afterwards). It runs with or without
                    probing (`apply --no-probe`, the operator's finalizer): a deletion never leaves a client
                    registered or a sealed value behind silently.
    after apply     prepare_credentials: mint or reuse OAuth client-credentials tokens, register clients
                    dynamically (RFC 7591), re-register those due (`authorizing.py`); the probe step then probes with
                    those headers (`with_credentials`).

The decisions (which actions are rotations, how status reads) are pure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Callable, Iterable, Mapping, Sequence

import anyio

from reconciler.credentials import (
    CredentialContext,
    CredentialFailure,
    CredentialSettings,
    CredentialStores,
    MintedSecretStore,
    PreparedCredentials,
    ResolvedHeaders,
    SecretReader,
    VerifiedValue,
    add_connection_credential,
    add_stored_headers,
    discovery_from_status,
    load_store_key,
    pin_verified,
    read_reference,
    verdict,
)
from reconciler.engine.authorizing import prepare_many, release_server_credentials, rotate_server_client
from reconciler.engine.desired import DesiredObject
from reconciler.engine.planning import Action, Plan, Verb
from reconciler.engine.probing import ProbeJob, ProbeOptions, build_target, credential_outcome
from reconciler.engine.revoking import forget_member_tokens
from reconciler.engine.statuses.reporting import Rotation
from reconciler.engine.steps.passing import CredentialStep as CredentialStep  # re-exported: its home before
from reconciler.engine.steps.passing import RotationCheck
from reconciler.errors import ReconcilerError
from reconciler.probe import (
    ProbeAuthServer,
    ProbeHttp,
    ProbeResult,
    ProbeSettings,
    ProbeTarget,
    credential_verifier,
    probe_many,
    verify_credential,
)
from reconciler.registry import Registry, RegistryTransaction
from reconciler.registry.records import ConnectionRecord, ProbeStateRecord, RowKey, ServerRecord, UserTokenRecord

OAUTH_TYPES = ("oauthClientCredentials", "oauthAuthorizationCode")
FINGERPRINT_FIELDS = (
    "fingerprint",
    "secretFingerprint",
    "clientIdFingerprint",
    "clientSecretFingerprint",
    "clientAssertionKeyFingerprint",
)


def is_rotation(action: Action) -> bool:
    """Pure: an update whose only changes are credential fingerprints is a Secret rotation."""
    return (
        action.verb is Verb.UPDATE
        and bool(action.changes)
        and all(change.path.rsplit(".", 1)[-1] in FINGERPRINT_FIELDS for change in action.changes)
        and action.key[0] in ("servers", "connections")
    )


def credentials_context(
    registry: Registry,
    secrets: SecretReader,
    http: ProbeHttp,
    settings: ProbeSettings,
    *,
    client_max_age: dt.timedelta | None = None,
    public_url: str | None = None,
) -> CredentialContext:
    key = load_store_key(environ=os.environ, database_path=registry.database_path())
    minted = MintedSecretStore(registry, key)
    return CredentialContext(
        stores=CredentialStores(registry, minted),
        secrets=secrets,
        authserver=ProbeAuthServer(http, settings),
        fingerprint_key=registry.fingerprint_key(),
        settings=CredentialSettings.for_public_url(public_url, client_max_age=client_max_age),
        max_concurrency=settings.max_concurrency,
    )


async def _rotate_due_clients(
    records: Sequence[ServerRecord],
    prepared: dict[tuple[str, str], PreparedCredentials | CredentialFailure],
    *,
    jobs: Sequence[ProbeJob],
    context: CredentialContext,
    step: CredentialStep,
    http: ProbeHttp,
    settings: ProbeSettings,
) -> None:
    """Re-register clients whose secret expires soon (or is older than the configured age); the old client
    stays in use until the new one is verified, and the outcome shows as a credential rotation in status."""
    targets = {job.obj.key[1:]: job.target for job in jobs}
    for record in records:
        key = (record.tenant, record.name)
        current = prepared.get(key)
        if not isinstance(current, PreparedCredentials) or not current.client_rotation_due or current.client is None:
            continue
        target = targets.get(key)
        verify_with = None if target is None else credential_verifier(target, settings=settings, http=http)
        try:
            outcome = await rotate_server_client(
                record, context=context, previous=current.client, verify_with=verify_with
            )
        except Exception as err:  # this server's fault alone: the others still rotate and probe
            prepared[key] = CredentialFailure.internal(record, err)
            continue
        prepared[key] = dataclasses.replace(current, client=outcome.rotation.current, client_rotation_due=None)
        if outcome.rotation.promoted:
            step.client_rotations[key] = outcome.rotation.message or "client re-registered and verified"


def _rotation_target(
    action: Action,
    *,
    objects: Mapping[RowKey, DesiredObject],
    connections: Mapping[tuple[str, str], ConnectionRecord],
    secrets: SecretReader,
) -> ProbeTarget | None:
    """The probe that proves the new credential: the server itself, or the server through the connection."""
    if action.key[0] == "servers":
        obj = objects.get(action.key)
        return None if obj is None else build_target(obj, connections=connections, secrets=secrets)
    connection = action.desired
    if not isinstance(connection, ConnectionRecord):
        return None
    server = objects.get(("servers", connection.tenant, connection.server))
    if server is None:
        return None
    base = build_target(server, connections=connections, secrets=secrets)
    resolved = ResolvedHeaders(headers=dict(base.headers))
    add_stored_headers(resolved, connection.headers, secrets)
    add_connection_credential(resolved, connection.secret_ref, connection.authorization_scheme, secrets)
    return dataclasses.replace(base, headers=resolved.headers, list_tools=not resolved.missing)


def before_apply(
    plan: Plan,
    *,
    objects: Sequence[DesiredObject],
    registry: Registry,
    secrets: SecretReader,
    settings: ProbeSettings,
) -> tuple[Plan, CredentialStep]:
    """Verify rotations and release deleted servers' credentials; returns the plan with unverified rotations
    held back (their rows keep the last good fingerprint)."""
    step = CredentialStep()
    rotations = [action for action in plan.actions if is_rotation(action)]
    if not rotations:
        return plan, step
    by_key = {obj.key: obj for obj in objects}
    connections = {
        (obj.record.tenant, obj.record.name): obj.record for obj in objects if isinstance(obj.record, ConnectionRecord)
    }

    async def run() -> None:
        async with ProbeHttp() as http:
            for action in rotations:
                target = _rotation_target(action, objects=by_key, connections=connections, secrets=secrets)
                if target is None:
                    continue
                result = await verify_credential(target, settings=settings, http=http)
                outcome = verdict(result)
                step.rotations[action.key] = RotationCheck(action, outcome, _rotation_message(action, result))

    anyio.run(run)
    if not step.rotations:
        return plan, step
    actions = []
    for action in plan.actions:
        check = step.rotations.get(action.key)
        if check is None:
            actions.append(action)
        elif check.outcome == "verified":
            actions.append(dataclasses.replace(action, message=check.message))
        else:
            actions.append(
                Action(
                    Verb.NOOP,
                    action.key,
                    action.source,
                    desired=action.desired,
                    observed=action.observed,
                    message=check.message,
                )
            )
    return dataclasses.replace(plan, actions=tuple(actions)), step


def release_deleted(
    actions: Iterable[Action], *, registry: Registry, secrets: SecretReader, settings: ProbeSettings
) -> list[str]:
    """Before OAuth servers' rows are deleted: revoke their members' tokens where the issuer offers it (RFC 7009)
    and delete them, deregister their dynamically registered clients (RFC 7592, each exchange bounded by
    `settings.total_timeout`) and delete every value sealed for them, whatever the authorization server answers.
    Returns one warning per client that may still be registered, naming it."""
    actions = list(actions)
    deleted = [
        action.observed
        for action in actions
        if action.verb is Verb.DELETE
        and isinstance(action.observed, ServerRecord)
        and action.observed.auth_type in OAUTH_TYPES
    ]
    gone = {(row.tenant, row.name) for row in deleted}
    connections = [
        action.observed
        for action in actions
        if action.verb is Verb.DELETE
        and isinstance(action.observed, ConnectionRecord)
        and (action.observed.tenant, action.observed.server) not in gone
    ]
    if connections:
        _revoke_connections_members(connections, registry=registry, secrets=secrets, settings=settings)
    if not deleted:
        return []
    warnings: list[str] = []

    def left_behind(row: ServerRecord, client_id: str, issuer: str, why: str) -> None:
        warnings.append(
            f"server {row.tenant}/{row.name} was deleted but its OAuth client {client_id} may still be registered "
            f"at {issuer}: {why}; delete the client there"
        )

    async def run() -> None:
        async with ProbeHttp() as http:
            context: CredentialContext | ReconcilerError
            try:
                context = credentials_context(registry, secrets, http, settings)
            except ReconcilerError as error:  # no store key: the registration tokens cannot be unsealed
                context = error
            for row in deleted:
                clients = registry.fetch_oauth_clients(tenant=row.tenant, server=row.name)
                issuers = {client.client_id: client.issuer for client in clients}
                try:
                    if isinstance(context, ReconcilerError):
                        raise context
                    # Members' tokens first, while the client that may revoke them is still registered.
                    access = context.access(allow_private=row.allow_private)
                    members = registry.fetch_user_tokens(tenant=row.tenant, server=row.name)
                    await forget_member_tokens(row.tenant, row.name, members, stores=context.stores, access=access)
                    released = await release_server_credentials(
                        row.tenant, row.name, context=context, allow_private=row.allow_private
                    )
                except ReconcilerError as error:
                    # The sealed values go in every case; only deregistration needed them.
                    # Members' sealed tokens go with their rows (registry.delete); these are the server's own.
                    with registry.transaction() as transaction:
                        transaction.delete_local_secrets(row.tenant, row.name, None)
                    for client in clients:
                        left_behind(row, client.client_id, client.issuer, f"deregistration impossible ({error})")
                    continue
                for client_id, result in sorted(released.clients.items()):
                    if result == "failed":
                        issuer = issuers.get(client_id, "its authorization server")
                        left_behind(
                            row, client_id, issuer, "its RFC 7592 deregistration failed (unreachable or refused)"
                        )

    anyio.run(run)
    return warnings


def _revoke_connections_members(
    connections: Sequence[ConnectionRecord], *, registry: Registry, secrets: SecretReader, settings: ProbeSettings
) -> None:
    """Before connections' rows are deleted (their server stays): revoke the tokens members obtained through them,
    where the issuer offers it; the rows and sealed values go with `registry.delete`. Best effort: a failure here
    never holds a deletion back."""
    by_server: dict[tuple[str, str], list[UserTokenRecord]] = {}
    for connection in connections:
        rows = registry.fetch_user_tokens(tenant=connection.tenant, server=connection.server)
        members = [row for row in rows if row.connection == connection.name]
        if members:
            by_server.setdefault((connection.tenant, connection.server), []).extend(members)
    if not by_server:
        return

    async def run() -> None:
        async with ProbeHttp() as http:
            try:
                context = credentials_context(registry, secrets, http, settings)
            except ReconcilerError:
                return  # no store key: nothing sealed can be read to revoke
            for (tenant, server), members in sorted(by_server.items()):
                row = registry.fetch_state(tenants=[tenant]).get(("servers", tenant, server))
                allow_private = isinstance(row, ServerRecord) and row.allow_private
                access = context.access(allow_private=allow_private)
                await forget_member_tokens(tenant, server, members, stores=context.stores, access=access)

    anyio.run(run)


def _references(action: Action) -> list[str]:
    refs: list[str] = []
    desired = action.desired
    if isinstance(desired, ServerRecord):
        refs += [ref for ref in (desired.auth.get("secretRef"),) if isinstance(ref, str)]
        refs += [h.secret_ref for h in desired.headers if h.secret_ref]
    elif isinstance(desired, ConnectionRecord):
        refs += [ref for ref in (desired.secret_ref,) if ref]
        refs += [h.secret_ref for h in desired.headers if h.secret_ref]
    return refs


def _rotation_message(action: Action, result: ProbeResult) -> str:
    refs = ", ".join(_references(action)) or "the credential"
    outcome = verdict(result)
    if outcome == "verified":
        return f"rotated in place: the new value of {refs} was verified against the live server"
    if outcome == "rejected":
        return (
            f"RotationFailed: the server rejected the new value of {refs} ({result.error_class}: {result.message}); "
            "the last verified fingerprint stays on the row"
        )
    return (
        f"RotationFailed: the new value of {refs} could not be verified ({result.error_class}: {result.message}); "
        "the last verified fingerprint stays on the row until the server can confirm it"
    )


def prepare_credentials(
    jobs: Sequence[ProbeJob],
    *,
    options: ProbeOptions,
    registry: Registry,
    secrets: SecretReader,
    states: Mapping[tuple[str, str], ProbeStateRecord],
    step: CredentialStep,
) -> dict[tuple[str, str], PreparedCredentials | CredentialFailure]:
    """OAuth preparation (mint, register, re-register) for the servers about to be probed. Synchronous: it mixes
    short registry transactions with calls to authorization servers, so callers run it off the event loop and
    off the registry's threads (both bounded resources a slow authorization server must not hold)."""
    oauth = [
        job.obj.record
        for job in jobs
        if isinstance(job.obj.record, ServerRecord) and job.obj.record.auth_type in OAUTH_TYPES
    ]
    if not oauth:
        return {}

    async def run() -> dict[tuple[str, str], PreparedCredentials | CredentialFailure]:
        async with ProbeHttp() as http:
            context = credentials_context(
                registry,
                secrets,
                http,
                options.settings,
                client_max_age=options.client_max_age,
                public_url=options.public_url,
            )
            discoveries = {
                (record.tenant, record.name): discovery
                for record in oauth
                if (discovery := discovery_from_status(_discovery_of(states, record))) is not None
            }
            prepared = dict(await prepare_many(oauth, context=context, discoveries=discoveries))
            await _rotate_due_clients(
                oauth, prepared, jobs=jobs, context=context, step=step, http=http, settings=options.settings
            )
            return prepared

    return anyio.run(run)


def prepare_and_probe(
    jobs: Sequence[ProbeJob],
    *,
    options: ProbeOptions,
    registry: Registry,
    secrets: SecretReader,
    states: Mapping[tuple[str, str], ProbeStateRecord],
    step: CredentialStep,
    on_result: Callable[[ProbeTarget, ProbeResult], None] | None = None,
) -> tuple[list[ProbeResult], dict[tuple[str, str], PreparedCredentials | CredentialFailure]]:
    """`prepare_credentials`, then the probes themselves, for synchronous callers (Test Connection)."""
    prepared = prepare_credentials(jobs, options=options, registry=registry, secrets=secrets, states=states, step=step)
    targets = [with_credentials(job.target, prepared.get(job.obj.key[1:])) for job in jobs]

    async def run() -> list[ProbeResult]:
        async with ProbeHttp() as http:
            results = await probe_many(targets, settings=options.settings, http=http, on_result=on_result)
            return [
                credential_outcome(job.obj, result, prepared.get(job.obj.key[1:]))
                for job, result in zip(jobs, results, strict=True)
            ]

    return anyio.run(run), prepared


def _discovery_of(states: Mapping[tuple[str, str], ProbeStateRecord], record: ServerRecord) -> dict[str, object] | None:
    state = states.get((record.tenant, record.name))
    return None if state is None else state.discovery


def with_credentials(target: ProbeTarget, prepared: PreparedCredentials | CredentialFailure | None) -> ProbeTarget:
    if isinstance(prepared, PreparedCredentials):
        headers = {**target.headers, **prepared.headers}
        list_tools = prepared.list_tools if prepared.list_tools is not None else target.list_tools
        return dataclasses.replace(target, headers=headers, list_tools=list_tools)
    return target


def credential_facts(
    prepared: PreparedCredentials | CredentialFailure | None,
) -> tuple[dict[str, object] | None, CredentialFailure | None]:
    if isinstance(prepared, PreparedCredentials):
        return prepared.credential_status(), None
    if isinstance(prepared, CredentialFailure):
        return None, prepared
    return None, None


def rotated_now(step: CredentialStep) -> Iterable[RowKey]:
    return (key for key, check in step.rotations.items() if check.outcome == "verified")


def rotation_verdict(obj: DesiredObject, step: CredentialStep) -> Rotation:
    """Pure: what this run's rotation checks decided for an object: a verified one (or a re-registered OAuth
    client) counts as rotated, any other check holds it back."""
    check = step.rotations.get(obj.key)
    rotated = obj.key[1:] in step.client_rotations or (check is not None and check.outcome == "verified")
    return Rotation(rotated=rotated, held_back=check.message if check is not None and not rotated else None)


def accepted_values(record: ServerRecord | ConnectionRecord, secrets: SecretReader) -> list[VerifiedValue]:
    """The secret values a row references, paired with the fingerprints the row records: what to pin once the
    live server has accepted them. Connection values are kept under their server's name, as runtimes look them
    up by server."""
    server = record.name if isinstance(record, ServerRecord) else record.server
    pairs: list[tuple[str, str | None]] = [(h.secret_ref, h.fingerprint) for h in record.headers if h.secret_ref]
    if isinstance(record, ServerRecord):
        reference = record.auth.get("secretRef")
        if isinstance(reference, str):
            fingerprint_ = record.auth.get("secretFingerprint")
            pairs.append((reference, fingerprint_ if isinstance(fingerprint_, str) else None))
    elif record.secret_ref is not None:
        pairs.append((record.secret_ref, record.fingerprint))
    values = []
    for reference, print_ in pairs:
        if print_ is None:
            continue
        value = read_reference(secrets, reference)
        if value is not None:
            values.append(VerifiedValue(record.tenant, server, reference, print_, value))
    return values


def pin_accepted(
    registry: Registry,
    values: Sequence[VerifiedValue],
    *,
    transaction: RegistryTransaction,
) -> None:
    """Keep encrypted last-good copies of values the live server accepted (see `credentials.last_good`)."""
    if not values:
        return
    key = load_store_key(environ=os.environ, database_path=registry.database_path())
    pin_verified(MintedSecretStore(registry, key), values, transaction=transaction)
