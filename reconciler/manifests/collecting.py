"""Dispatches each parsed document by kind and validates it, collecting what the folder declares and every problem.

Called by `loading.py` with each document `parsing.py` yields; `finish` turns the whole folder into the engine's
`DesiredInput`, or raises one `InvalidInput` with every problem. Kinds of our API group are validated against
the `api` models, their errors worded by `api.invalid_fields` (the operator words them the same way) and placed
at their source line; Namespaces, the tenant ConfigMap and Secrets go to `core_kinds.py`; anything else is
skipped with a warning. An object declared twice is refused, naming both places.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from pydantic import ValidationError

from reconciler.api import KINDS, Resource
from reconciler.api.common import API_GROUP, GROUP_VERSION
from reconciler.api.invalid_fields import describe_field_error
from reconciler.engine.inputs import DesiredInput, SourceLocation, StaticSecrets, Tenant
from reconciler.errors import InvalidInput, Problem
from reconciler.manifests import core_kinds
from reconciler.manifests.locating import Document, Identity, key_line, line_of_steps

__all__ = ["Collector"]

_MANAGED_KINDS = {info.kind: info for info in KINDS}


@dataclass
class Collector:
    """Accumulates what the folder declares and what is wrong with it, document by document."""

    default_namespace: str
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    resources: list[Resource] = field(default_factory=list)
    locations: dict[tuple[str, str, str], SourceLocation] = field(default_factory=dict)
    namespaces: set[str] = field(default_factory=set)
    slugs: dict[str, str] = field(default_factory=dict)
    tenant_vars: dict[str, dict[str, str]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def problem(self, problem: Problem) -> None:
        self.problems.append(problem)

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def finish(self) -> DesiredInput:
        if self.problems:
            raise InvalidInput(self.problems)
        tenants = {
            namespace: Tenant(
                namespace=namespace,
                slug=self.slugs.get(namespace, namespace),
                vars=self.tenant_vars.get(namespace, {}),
            )
            for namespace in sorted(self.namespaces)
        }
        return DesiredInput(
            resources=self.resources,
            locations=self.locations,
            tenants=tenants,
            secrets=StaticSecrets(values=self.secrets),
            warnings=self.warnings,
        )

    def accept(self, document: Document) -> None:
        body = document.body
        if body is None:
            return
        if not isinstance(body, dict):
            self.problem(
                Problem(
                    f"a manifest must be a mapping with apiVersion, kind and metadata, not {_describe_type(body)}",
                    file=document.file,
                    line=document.line,
                )
            )
            return
        api_version = self._required_text(document, "apiVersion")
        kind = self._required_text(document, "kind")
        if api_version is None or kind is None:
            return
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        if group == API_GROUP:
            self._accept_own_kind(document, api_version=api_version, kind=kind)
        elif api_version == "v1" and kind in core_kinds.CORE_KINDS:
            core_kinds.accept_core_kind(self, document, kind=kind)
        else:
            self.skip(document, kind=kind)

    def skip(self, document: Document, *, kind: str) -> None:
        """Warn that a document of a kind we do not manage is left alone."""
        metadata = document.body.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        name, namespace = metadata.get("name"), metadata.get("namespace")
        label = "(unnamed)" if name is None else str(name)
        if namespace is not None:
            label = f"{namespace}/{label}"
        self.warning(f"{document.file}:{document.line}: skipping {kind} {label} (not managed by mcp-reconciler)")

    def identity(self, document: Document, *, kind: str, namespaced: bool = True) -> Identity | None:
        """Kind, namespace and name of a managed object, or None after reporting why there are none."""
        metadata = document.body.get("metadata")
        metadata_line = key_line(document.node, "metadata") or document.line
        if not isinstance(metadata, dict):
            message = "required field is missing" if metadata is None else "must be a mapping"
            message = f"{message} (every {kind} needs metadata with a name)"
            self.problem(Problem(message, file=document.file, line=metadata_line, field="metadata"))
            return None
        if metadata.get("name") is None:
            message = f"required field is missing (every {kind} needs a name)"
            self.problem(Problem(message, file=document.file, line=metadata_line, field="metadata.name"))
            return None
        namespace = metadata.get("namespace") if namespaced else None
        if namespaced and namespace is None:
            namespace = self.default_namespace
        return Identity(kind=kind, namespace="" if namespace is None else str(namespace), name=str(metadata["name"]))

    def register(self, document: Document, identity: Identity) -> bool:
        """Remember where an object was declared; False (and a problem) when it was declared before."""
        earlier = self.locations.get(identity.key)
        if earlier is not None:
            self.problem(
                identity.locate(
                    f"declared twice: first at {earlier.file}:{earlier.line}, again here", document=document
                )
            )
            return False
        self.locations[identity.key] = SourceLocation(file=document.file, line=document.line)
        return True

    def _required_text(self, document: Document, key: str) -> str | None:
        value = document.body.get(key)
        if isinstance(value, str) and value:
            return value
        message = "required field is missing" if value is None else "must be a non-empty string"
        line = key_line(document.node, key) or document.line
        self.problem(Problem(message, file=document.file, line=line, field=key))
        return None

    def _accept_own_kind(self, document: Document, *, api_version: str, kind: str) -> None:
        info = _MANAGED_KINDS.get(kind)
        if info is None:
            known = ", ".join(_MANAGED_KINDS)
            line = key_line(document.node, "kind") or document.line
            self.problem(
                Problem(
                    f"unknown kind {kind} in {API_GROUP}: use one of {known}",
                    file=document.file,
                    line=line,
                    field="kind",
                )
            )
            return
        identity = self.identity(document, kind=kind)
        if identity is None:
            return
        if api_version != GROUP_VERSION:
            self.problem(
                identity.locate(
                    f"unsupported apiVersion {api_version}: use {GROUP_VERSION}",
                    document=document,
                    line=key_line(document.node, "apiVersion"),
                    field="apiVersion",
                )
            )
            return
        registered = self.register(document, identity)
        body = {key: value for key, value in document.body.items() if key != "status"}
        metadata = dict(body["metadata"])
        if metadata.get("namespace") is None:
            metadata["namespace"] = self.default_namespace
        body["metadata"] = metadata
        try:
            resource = cast(Resource, info.model.model_validate(body))
        except ValidationError as error:
            for detail in error.errors(include_url=False, include_input=False, include_context=True):
                refused = describe_field_error(detail, document.body)
                at = line_of_steps(document, refused.steps)
                self.problem(identity.locate(refused.message, document=document, line=at, field=refused.field))
            return
        if not registered:
            return
        self.resources.append(resource)
        self.namespaces.add(resource.metadata.namespace)


def _describe_type(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__} value"
