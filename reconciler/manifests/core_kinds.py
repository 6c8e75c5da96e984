"""Reads the Kubernetes core objects a folder may hold next to our kinds: Namespaces, the tenant ConfigMap, Secrets.

Called by `collecting.Collector.accept` for `v1` documents of these kinds. A Namespace gives its tenant slug (its
tenant label, else its name), the ConfigMap named `TENANT_CONFIGMAP` gives the tenant's variables, and a Secret
gives the values credentials are read from. Secret values are decoded here and never put into a message: a
problem names the key and what is wrong with it, not the value.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any

from reconciler.api.common import DNS1123_LABEL, DNS1123_SUBDOMAIN, SECRET_KEY_PATTERN
from reconciler.api.invalid_fields import PATTERN_MEANINGS, join_path
from reconciler.engine.inputs import TENANT_CONFIGMAP, TENANT_LABEL
from reconciler.manifests.locating import Document, Identity, node_line_at

if TYPE_CHECKING:
    from reconciler.manifests.collecting import Collector

__all__ = ["CORE_KINDS", "accept_core_kind"]

CORE_KINDS = ("Namespace", "ConfigMap", "Secret")


def accept_core_kind(collector: Collector, document: Document, *, kind: str) -> None:
    """Record what a core object contributes to its namespace's tenant, or report why it cannot."""
    if kind == "ConfigMap" and _metadata_name(document.body) != TENANT_CONFIGMAP:
        collector.skip(document, kind=kind)
        return
    identity = collector.identity(document, kind=kind, namespaced=kind != "Namespace")
    if identity is None:
        return
    problems_before = len(collector.problems)
    name_pattern = DNS1123_LABEL if kind == "Namespace" else DNS1123_SUBDOMAIN
    if not _matches(name_pattern, identity.name, max_length=63 if kind == "Namespace" else 253):
        line = node_line_at(document, ("metadata", "name"))
        collector.problem(
            identity.locate(PATTERN_MEANINGS[name_pattern], document=document, line=line, field="metadata.name")
        )
    if kind != "Namespace" and not _matches(DNS1123_LABEL, identity.namespace, max_length=63):
        line = node_line_at(document, ("metadata", "namespace"))
        collector.problem(
            identity.locate(PATTERN_MEANINGS[DNS1123_LABEL], document=document, line=line, field="metadata.namespace")
        )
    if len(collector.problems) > problems_before:
        return
    registered = collector.register(document, identity)
    if kind == "Namespace":
        slug = _tenant_slug(collector, document, identity)
        if slug is not None and registered:
            collector.namespaces.add(identity.name)
            collector.slugs[identity.name] = slug
    elif kind == "ConfigMap":
        variables = _string_map(collector, document, identity, section="data", secret=False)
        if variables is not None and registered:
            collector.namespaces.add(identity.namespace)
            collector.tenant_vars[identity.namespace] = variables
    else:
        values = _secret_values(collector, document, identity)
        if values is not None and registered:
            collector.namespaces.add(identity.namespace)
            collector.secrets[(identity.namespace, identity.name)] = values


def _tenant_slug(collector: Collector, document: Document, identity: Identity) -> str | None:
    """The namespace's tenant slug: its tenant label, else its name; None after reporting a bad label."""
    labels = document.body["metadata"].get("labels")
    if labels is not None and not isinstance(labels, dict):
        line = node_line_at(document, ("metadata", "labels"))
        collector.problem(identity.locate("must be a mapping", document=document, line=line, field="metadata.labels"))
        return None
    if not labels or TENANT_LABEL not in labels:
        return identity.name
    value = labels[TENANT_LABEL]
    if isinstance(value, str) and _matches(DNS1123_LABEL, value, max_length=63):
        return value
    collector.problem(
        identity.locate(
            "tenant slug " + PATTERN_MEANINGS[DNS1123_LABEL] + ", at most 63 characters",
            document=document,
            line=node_line_at(document, ("metadata", "labels", TENANT_LABEL)),
            field=join_path(join_path("metadata", "labels"), TENANT_LABEL),
        )
    )
    return None


def _secret_values(collector: Collector, document: Document, identity: Identity) -> dict[str, str] | None:
    """Decoded `data` overlaid with `stringData` (Kubernetes lets stringData win); None after problems."""
    encoded = _string_map(collector, document, identity, section="data", secret=True)
    plain = _string_map(collector, document, identity, section="stringData", secret=True)
    values: dict[str, str] = {}
    failed = encoded is None or plain is None
    for key, text in (encoded or {}).items():
        decoded = _decode_secret_value(collector, document, identity, key=key, text=text)
        if decoded is None:
            failed = True
        else:
            values[key] = decoded
    if failed or plain is None:
        return None
    values.update(plain)
    return values


def _decode_secret_value(
    collector: Collector, document: Document, identity: Identity, *, key: str, text: str
) -> str | None:
    line = node_line_at(document, ("data", key))
    field_path = join_path("data", key)
    try:
        raw = base64.b64decode(text.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        message = f"Secret key {key!r} is not valid base64"
        collector.problem(identity.locate(message, document=document, line=line, field=field_path))
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        message = f"Secret key {key!r} holds binary data; only UTF-8 text can be used as a credential"
        collector.problem(identity.locate(message, document=document, line=line, field=field_path))
        return None


def _string_map(
    collector: Collector, document: Document, identity: Identity, *, section: str, secret: bool
) -> dict[str, str] | None:
    """A `data`-like section as str → str; None after reporting problems. Never quotes a value."""
    content = document.body.get(section)
    if content is None:
        return {}
    if not isinstance(content, dict):
        line = node_line_at(document, (section,))
        collector.problem(identity.locate("must be a mapping", document=document, line=line, field=section))
        return None
    result: dict[str, str] = {}
    valid = True
    for key, value in content.items():
        line = node_line_at(document, (section, key))
        field_path = join_path(section, key)
        if not isinstance(key, str) or (secret and not _matches(SECRET_KEY_PATTERN, key, max_length=253)):
            message = "keys must be made of letters, digits, '-', '_' and '.'" if secret else "keys must be strings"
            collector.problem(identity.locate(message, document=document, line=line, field=field_path))
            valid = False
        elif not isinstance(value, str):
            hint = "" if secret else " (quote numbers and booleans)"
            collector.problem(
                identity.locate(f"must be a string{hint}", document=document, line=line, field=field_path)
            )
            valid = False
        else:
            result[key] = value
    return result if valid else None


def _matches(pattern: str, value: str, *, max_length: int) -> bool:
    return 0 < len(value) <= max_length and re.match(pattern, value) is not None


def _metadata_name(body: dict[Any, Any]) -> object:
    metadata = body.get("metadata")
    return metadata.get("name") if isinstance(metadata, dict) else None
