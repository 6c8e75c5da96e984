"""Turn parsed resources into the registry rows they should produce: render templates, swap secrets for refs.

Pure given its inputs (resources, tenants, secret values, the fingerprint key); called by the reconcile loop
between validation and planning. Secret values are read only to fingerprint them and never leave this module.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from reconciler.api import (
    Header,
    MCPAccessGrant,
    MCPConnection,
    MCPServer,
    MCPTemplateBinding,
    Resource,
    SecretKeyRef,
)
from reconciler.api.durations import parse_duration
from reconciler.api.hosts import url_host_problem
from reconciler.api.server import (
    ApiKeyAuth,
    BearerAuth,
    OAuthAuthorizationCodeAuth,
    OAuthClientCredentialsAuth,
)
from reconciler.credentials import fingerprint
from reconciler.engine.inputs import ADOPT_ANNOTATION, DesiredInput, Tenant
from reconciler.engine.rendering import TemplateError, render_template
from reconciler.engine.validation import discovery_candidates, validate
from reconciler.errors import InvalidInput, Problem, ReconcilerError
from reconciler.registry.managers import DEFAULT_MANAGER
from reconciler.registry.records import (
    BindingRecord,
    BoundServerRecord,
    ConnectionRecord,
    GrantRecord,
    GrantSubjectRecord,
    HeaderRecord,
    MemberHeaderRecord,
    ObservedState,
    Ownership,
    Record,
    RowKey,
    ServerRecord,
    SourceRef,
    computed_once,
    key_of,
)

FINGERPRINT_SUFFIX = "Fingerprint"
"""Auth columns holding a secret part's fingerprint end in this; the reference sits in `<part>Ref`."""


@dataclass(frozen=True)
class MissingSecret:
    """A referenced Secret or key that could not be read; the row keeps the reference, status says which."""

    field: str
    reference: str


@dataclass(frozen=True)
class DesiredObject:
    """One resource and the row it should produce."""

    resource: Resource
    tenant: Tenant
    record: Record
    missing_secrets: tuple[MissingSecret, ...] = ()

    @computed_once
    def key(self) -> RowKey:
        # Cached (the object is immutable): a pass looks each object up by key and source many times over.
        return key_of(self.record)

    @computed_once
    def source(self) -> SourceRef:
        return SourceRef(self.resource.kind, self.resource.metadata.namespace, self.resource.metadata.name)

    @property
    def observe_only(self) -> bool:
        return isinstance(self.resource, MCPServer) and self.resource.spec.management_policy == "ObserveOnly"

    @property
    def adopt(self) -> bool:
        return self.resource.metadata.annotations.get(ADOPT_ANNOTATION, "").lower() == "true"


class _Builder:
    """Collects problems and missing secrets while one resource is converted."""

    def __init__(self, desired: DesiredInput, resource: Resource, *, fingerprint_key: bytes) -> None:
        self.desired = desired
        self.resource = resource
        self.namespace = resource.metadata.namespace
        self.tenant = desired.tenant_for(self.namespace)
        self.fingerprint_key = fingerprint_key
        self.problems: list[Problem] = []
        self.missing: list[MissingSecret] = []

    def problem(self, field: str, message: str) -> None:
        location = self.desired.location_of(self.resource.kind, self.namespace, self.resource.metadata.name)
        self.problems.append(
            Problem(
                message,
                file=location.file,
                line=location.line,
                kind=self.resource.kind,
                namespace=self.namespace,
                name=self.resource.metadata.name,
                field=field,
            )
        )

    def render(self, text: str, field: str) -> str:
        try:
            return render_template(text, self.tenant)
        except TemplateError as err:
            self.problem(field, str(err))
            return text

    def secret(self, ref: SecretKeyRef, field: str) -> tuple[str, str | None]:
        """The reference and the keyed fingerprint of the value (None when the Secret/key is missing)."""
        reference = ref.reference(self.namespace)
        value = self.desired.secrets.read(self.namespace, ref.name, ref.key)
        if value is None:
            self.missing.append(MissingSecret(field=field, reference=reference))
            return reference, None
        return reference, fingerprint(self.fingerprint_key, value)

    def public_key(self, ref: SecretKeyRef, field: str, *, key_id: str | None, algorithm: str | None) -> Any:
        """The public half (a JWK) of the private key in the Secret, to publish; None when the Secret is missing
        (`secret` records that) or the key unusable (a problem on `field`)."""
        value = self.desired.secrets.read(self.namespace, ref.name, ref.key)
        if value is None:
            return None
        # Imported here: PyJWT and cryptography's key types cost `validate` and `plan` 40 ms, and only servers
        # that sign client assertions need them.
        from reconciler.credentials.assertions import public_jwk

        try:
            return public_jwk(value, key_id=key_id, algorithm=algorithm)
        except ReconcilerError as err:
            self.problem(field, str(err))
            return None

    def headers(self, headers: list[Header], prefix: str) -> tuple[HeaderRecord, ...]:
        built = []
        for index, header in enumerate(headers):
            if header.value_from is not None:
                ref, print_ = self.secret(header.value_from.secret_key_ref, f"{prefix}[{index}].valueFrom.secretKeyRef")
                built.append(HeaderRecord(name=header.name, secret_ref=ref, fingerprint=print_))
            else:
                value = self.render(header.value or "", f"{prefix}[{index}].value")
                built.append(HeaderRecord(name=header.name, value=value))
        return tuple(built)

    def ownership(self, record_hash: str, *, deletion_policy: str = "Delete", manager: str) -> Ownership:
        source = SourceRef(self.resource.kind, self.namespace, self.resource.metadata.name)
        policy: Literal["Delete", "Orphan"] = "Orphan" if deletion_policy == "Orphan" else "Delete"
        return Ownership(manager=manager, source=source, spec_hash=record_hash, deletion_policy=policy)


def _auth_columns(builder: _Builder, server: MCPServer) -> dict[str, Any]:
    """Auth settings as stored: plain settings, and `<field>Ref`/`<field>Fingerprint` for secret parts."""
    auth = server.spec.auth
    columns: dict[str, Any] = auth.model_dump(mode="json", by_alias=True, exclude_none=True)
    columns.pop("type", None)
    if isinstance(auth, BearerAuth | ApiKeyAuth):
        columns.pop("secretKeyRef", None)
        ref, print_ = builder.secret(auth.secret_key_ref, "spec.auth.secretKeyRef")
        columns["secretRef"], columns["secretFingerprint"] = ref, print_
    if isinstance(auth, OAuthClientCredentialsAuth | OAuthAuthorizationCodeAuth):
        for attribute, camel in (("client_id", "clientId"), ("client_secret", "clientSecret")):
            value = getattr(auth, attribute)
            columns.pop(camel, None)
            if value is None:
                continue
            if value.secret_key_ref is not None:
                ref, print_ = builder.secret(value.secret_key_ref, f"spec.auth.{camel}.secretKeyRef")
                columns[f"{camel}Ref"], columns[f"{camel}Fingerprint"] = ref, print_
            else:
                columns[camel] = value.value
    if isinstance(auth, OAuthClientCredentialsAuth) and auth.client_assertion is not None:
        # The key is a secret part like clientSecret; the rest of the assertion settings are plain.
        assertion = columns.pop("clientAssertion")
        assertion.pop("privateKey", None)
        columns["clientAssertion"] = assertion
        ref, print_ = builder.secret(auth.client_assertion.private_key, "spec.auth.clientAssertion.privateKey")
        columns["clientAssertionKeyRef"], columns["clientAssertionKeyFingerprint"] = ref, print_
        if auth.client_id is None:
            # A CIMD client: `serve` publishes the key's public half at the document's `jwks_uri` from this row.
            public = builder.public_key(
                auth.client_assertion.private_key,
                "spec.auth.clientAssertion.privateKey",
                key_id=auth.client_assertion.key_id,
                algorithm=auth.client_assertion.algorithm,
            )
            if public is not None:
                columns["clientAssertionPublicKey"] = public
    return columns


def _check_url(builder: _Builder, url: str, field: str = "spec.url") -> None:
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        builder.problem(field, f"rendered URL {url!r} cannot be parsed")
        return
    # `split()` cuts at exactly the characters `str.isspace` names: a URL holding none comes back whole.
    if parts.scheme not in ("http", "https") or not hostname or url.split() != [url]:
        builder.problem(field, f"rendered URL {url!r} is not a valid http(s) URL")
        return
    # The same reading of the host as the model's and the SSRF guard's (`api.hosts`), now that templates are filled.
    problem = url_host_problem(url)
    if problem is not None:
        builder.problem(field, f"rendered URL {url!r}: {problem}")


def _server_record(builder: _Builder, server: MCPServer) -> ServerRecord:
    spec = server.spec
    rendering_problems = len(builder.problems)
    url = builder.render(spec.url, "spec.url")
    if len(builder.problems) == rendering_problems:  # a template that failed already said why; one error is enough
        _check_url(builder, url)
    return ServerRecord(
        tenant=builder.tenant.slug,
        name=server.metadata.name,
        display_name=spec.display_name,
        description=spec.description,
        url=url,
        transport=spec.transport,
        enabled=spec.enabled,
        featured=spec.featured,
        headers=builder.headers(spec.headers, "spec.headers"),
        auth_type=spec.auth.type,
        auth=_auth_columns(builder, server),
        owner_kind=spec.owner.kind if spec.owner else None,
        owner_name=spec.owner.name if spec.owner else None,
        tool_policy=spec.tools.policy,
        approved_hash=spec.tools.approved_hash,
        tools_allow=tuple(spec.tools.allow),
        tools_deny=tuple(spec.tools.deny),
        allow_private=spec.network.allow_private,
        discovery_enabled=spec.discovery.enabled,
        discovery_interval_seconds=int(parse_duration(spec.discovery.interval)),
        discovery_connection=spec.discovery.connection_ref,
    )


def _connection_record(builder: _Builder, connection: MCPConnection) -> ConnectionRecord:
    spec = connection.spec
    secret_ref = print_ = None
    if spec.auth is not None:
        secret_ref, print_ = builder.secret(spec.auth.secret_key_ref, "spec.auth.secretKeyRef")
    return ConnectionRecord(
        tenant=builder.tenant.slug,
        name=connection.metadata.name,
        server=spec.server_ref,
        scope=spec.scope,
        subject=spec.subject,
        credential_mode=spec.credential_mode,
        secret_ref=secret_ref,
        fingerprint=print_,
        authorization_scheme=spec.auth.authorization_scheme if spec.auth else None,
        headers=builder.headers(spec.headers, "spec.headers"),
        active=spec.active,
        use_for_discovery=spec.use_for_discovery,
        member_headers=tuple(MemberHeaderRecord(header.name, header.key) for header in spec.member_headers),
    )


def _grant_record(builder: _Builder, grant: MCPAccessGrant) -> GrantRecord:
    subjects = sorted(
        (GrantSubjectRecord(kind=s.kind, name=s.name) for s in grant.spec.subjects),
        key=lambda s: (s.kind, s.name or ""),
    )
    return GrantRecord(
        tenant=builder.tenant.slug,
        name=grant.metadata.name,
        target_server=grant.spec.target.server_ref,
        target_connection=grant.spec.target.connection_ref,
        subjects=tuple(subjects),
    )


def _binding_record(builder: _Builder, binding: MCPTemplateBinding) -> BindingRecord:
    return BindingRecord(
        tenant=builder.tenant.slug,
        name=binding.metadata.name,
        template=binding.spec.template,
        agents=tuple(binding.spec.agents),
        servers=tuple(
            BoundServerRecord(
                server=bound.server_ref,
                connection=bound.connection_ref,
                tools_allow=tuple(bound.tools.allow),
                tools_deny=tuple(bound.tools.deny),
                tools_read_only=binding.spec.tools.read_only or bound.tools.read_only,
            )
            for bound in binding.spec.servers
        ),
    )


_BUILDERS: dict[type, Callable[[_Builder, Any], Record]] = {
    MCPServer: _server_record,
    MCPConnection: _connection_record,
    MCPAccessGrant: _grant_record,
    MCPTemplateBinding: _binding_record,
}


def build_desired(desired: DesiredInput, *, fingerprint_key: bytes, manager: str) -> list[DesiredObject]:
    """Rows for every resource; raises InvalidInput with every problem found (templates, rendered URLs)."""
    problems: list[Problem] = []
    objects: list[DesiredObject] = []
    for_discovery = discovery_candidates(desired.resources)
    for resource in desired.resources:
        builder = _Builder(desired, resource, fingerprint_key=fingerprint_key)
        record = _BUILDERS[type(resource)](builder, resource)
        if isinstance(record, ServerRecord) and record.discovery_connection is None:
            # spec.discovery.connectionRef wins; else the one connection marked useForDiscovery (validated unique).
            marked = for_discovery.get((resource.metadata.namespace, resource.metadata.name))
            if marked:
                record = dataclasses.replace(record, discovery_connection=marked[0].metadata.name)
        deletion_policy = resource.spec.deletion_policy if isinstance(resource, MCPServer) else "Delete"
        record = record.owned(
            builder.ownership(record.content_hash(), deletion_policy=deletion_policy, manager=manager)
        )
        problems.extend(builder.problems)
        objects.append(
            DesiredObject(
                resource=resource, tenant=builder.tenant, record=record, missing_secrets=tuple(builder.missing)
            )
        )
    if problems:
        raise InvalidInput(problems)
    return objects


def with_stored_fingerprints(objects: list[DesiredObject], observed: ObservedState) -> list[DesiredObject]:
    """The same rows with every secret fingerprint taken from the stored row instead of from a submitted value.

    For dry runs on behalf of callers who may not learn anything about stored secrets (the runtime endpoint's
    `plan`): a reference that is unchanged keeps the stored fingerprint, a new one gets none, so the plan is
    the same whatever values were submitted. Pure.
    """
    carried = []
    for obj in objects:
        row = observed.get(obj.key)
        record = obj.record
        if isinstance(record, ServerRecord):
            stored_auth = row.auth if isinstance(row, ServerRecord) else {}
            record = dataclasses.replace(
                record,
                headers=_carry_headers(record.headers, row.headers if isinstance(row, ServerRecord) else ()),
                auth=_carry_auth(record.auth, stored_auth),
            )
        elif isinstance(record, ConnectionRecord):
            stored = row if isinstance(row, ConnectionRecord) else None
            same = stored is not None and stored.secret_ref == record.secret_ref
            record = dataclasses.replace(
                record,
                fingerprint=stored.fingerprint if same and stored is not None else None,
                headers=_carry_headers(record.headers, stored.headers if stored is not None else ()),
            )
        else:
            carried.append(obj)
            continue
        ownership = dataclasses.replace(obj.record.ownership, spec_hash=record.content_hash())
        carried.append(dataclasses.replace(obj, record=record.owned(ownership)))
    return carried


def _carry_headers(headers: tuple[HeaderRecord, ...], stored: tuple[HeaderRecord, ...]) -> tuple[HeaderRecord, ...]:
    prints = {(h.name, h.secret_ref): h.fingerprint for h in stored if h.secret_ref is not None}
    return tuple(
        dataclasses.replace(header, fingerprint=prints.get((header.name, header.secret_ref)))
        if header.secret_ref is not None
        else header
        for header in headers
    )


def _carry_auth(auth: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    carried = dict(auth)
    for key in auth:
        if key.endswith(FINGERPRINT_SUFFIX):
            ref = key.removesuffix(FINGERPRINT_SUFFIX) + "Ref"
            same = auth.get(ref) is not None and auth.get(ref) == stored.get(ref)
            carried[key] = stored.get(key) if same else None
    return carried


def validate_rendered(desired: DesiredInput, *, manager: str = DEFAULT_MANAGER) -> None:
    """Everything `plan` checks before it reads the registry: `validate`, then every object rendered into its
    row exactly as `plan` renders it (tenant variables, rendered URLs), so `validate` passes only what `plan`
    accepts. The rows are thrown away, so a throwaway key fingerprints the secrets."""
    validate(desired)
    build_desired(desired, fingerprint_key=os.urandom(_THROWAWAY_KEY_BYTES), manager=manager)


_THROWAWAY_KEY_BYTES = 32
