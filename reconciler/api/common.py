"""Building blocks shared by the four kinds: strict model base, references, headers, metadata, conditions.

Every kind module imports these; the CRD generator reads their docstrings as `kubectl explain` text
(`describing.py`, only when it generates: the models themselves are built without them).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from reconciler.api.times import Timestamp

API_GROUP = "mcp.reconciler.dev"
API_VERSION = "v1alpha1"
GROUP_VERSION: Final = "mcp.reconciler.dev/v1alpha1"
CATEGORY = "mcp"

# DNS-1123 subdomain (object names) and label (names used inside URLs / slugs).
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
SECRET_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
HEADER_NAME_PATTERN = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"
GLOB_PATTERN = r"^[A-Za-z0-9_.:*?\[\]/-]+$"
MAX_REGISTRY_INTEGER = 2**31 - 1
"""Largest integer the registry stores (a 32-bit column on every backend); larger input is refused as invalid."""

ObjectName = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN)]
LabelName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
HeaderName = Annotated[str, Field(min_length=1, max_length=256, pattern=HEADER_NAME_PATTERN)]
ToolGlob = Annotated[str, Field(min_length=1, max_length=256, pattern=GLOB_PATTERN)]


class Model(BaseModel):
    """Strict base: unknown fields are errors, camelCase on the wire, docstrings become CRD descriptions. Validators
    are built on first use (`defer_build`), once per process: a command pays only for the kinds it validates, and
    a nested model's own validator is never built when only its parent validates it."""

    model_config = ConfigDict(
        defer_build=True,
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
        strict=True,
        hide_input_in_errors=True,
    )


class SecretKeyRef(Model):
    """A key of a Secret in the same namespace."""

    name: ObjectName
    """Name of the Secret (same namespace as the referring object)."""
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=SECRET_KEY_PATTERN)]
    """Key inside the Secret's data."""

    def reference(self, namespace: str) -> str:
        """The registry's textual reference: `<namespace>/<secret>#<key>`."""
        return f"{namespace}/{self.name}#{self.key}"


class CredentialValue(Model):
    """A credential field: a literal `value` (only for non-secret values such as a client id) or a Secret key."""

    value: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    """Literal, non-secret value (for example an OAuth client id)."""
    secret_key_ref: SecretKeyRef | None = None
    """Read the value from this Secret key."""

    @model_validator(mode="after")
    def _exactly_one(self) -> CredentialValue:
        if (self.value is None) == (self.secret_key_ref is None):
            raise ValueError("set exactly one of value or secretKeyRef")
        return self


class HeaderValueFrom(Model):
    """Where a header's value comes from when it is secret."""

    secret_key_ref: SecretKeyRef
    """The Secret key holding the header value."""


class Header(Model):
    """One HTTP header sent to the MCP server: a literal value (may use tenant templates) or a Secret key."""

    name: HeaderName
    """Header name, e.g. `x-workspace-slug`."""
    value: Annotated[str, Field(max_length=8192)] | None = None
    """Literal value; may contain `{{ tenant.slug }}` or `{{ tenant.vars.NAME }}`."""
    value_from: HeaderValueFrom | None = None
    """Take the value from a Secret key instead."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Header:
        if (self.value is None) == (self.value_from is None):
            raise ValueError("set exactly one of value or valueFrom")
        return self


def reject_duplicate_headers(headers: list[Header]) -> list[Header]:
    """Header names are case-insensitive on the wire, so `X-Key` and `x-key` are the same header twice."""
    seen: set[str] = set()
    for header in headers:
        if header.name.lower() in seen:
            raise ValueError(f"header {header.name!r} is listed twice")
        seen.add(header.name.lower())
    return headers


class ObjectMeta(Model):
    """The part of Kubernetes object metadata the reconciler reads; other metadata fields are ignored."""

    model_config = ConfigDict(
        defer_build=True,
        extra="ignore",
        alias_generator=to_camel,
        populate_by_name=True,
        hide_input_in_errors=True,
    )

    name: ObjectName
    namespace: LabelName = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: Annotated[int, Field(ge=0, le=MAX_REGISTRY_INTEGER)] | None = None
    uid: str | None = None
    resource_version: str | None = None
    creation_timestamp: dt.datetime | None = None
    deletion_timestamp: dt.datetime | None = None


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """A Kubernetes `metav1.Condition`."""

    model_config = Model.model_config | {"strict": False}

    type: Annotated[str, Field(max_length=316, pattern=r"^[A-Za-z][A-Za-z0-9]*$")]
    """Condition type, e.g. `Ready`."""
    status: ConditionStatus
    """`True`, `False` or `Unknown`."""
    reason: Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")]
    """CamelCase reason for the last transition."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """Human-readable detail."""
    observed_generation: int | None = None
    """The `.metadata.generation` this condition was set for."""
    last_transition_time: Timestamp
    """When the status last changed."""


class StatusBase(Model):
    """Status fields every kind carries; written by the reconciler, so parsed leniently."""

    model_config = Model.model_config | {"strict": False}

    observed_generation: int | None = None
    """The `.metadata.generation` last reconciled."""
    conditions: list[Condition] = Field(default_factory=list)
    """`Ready` and `Synced` always; servers add `Discovered`, `CredentialsValid`, `ToolsDrifted`."""
    registry_id: str | None = None
    """Primary key of the row in the registry database."""
    last_sync_time: Timestamp | None = None
    """When the registry last changed because of this object."""
    last_handled_reconcile_at: str | None = None
    """Echo of the `mcp.reconciler.dev/reconcile-requested-at` annotation last handled."""


class ToolFilter(Model):
    """Glob allow/deny lists on tool names; deny wins over allow, an empty allow list allows all."""

    allow: list[ToolGlob] = Field(default_factory=list, max_length=256)
    """Only tools matching one of these globs are exposed (empty: all)."""
    deny: list[ToolGlob] = Field(default_factory=list, max_length=256)
    """Tools matching one of these globs are never exposed."""


def dump_spec(model: BaseModel) -> dict[str, Any]:
    """Serialise a spec the way it was written: camelCase, only the fields the author set (no defaults)."""
    return model.model_dump(mode="json", by_alias=True, exclude_unset=True)
