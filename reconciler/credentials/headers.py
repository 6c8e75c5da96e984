"""Turn stored header and credential references into the request headers a probe or runtime sends.

Precedence (later wins, by case-insensitive name): the server's static headers, then the connection's
headers, then the credential header (`Authorization: <scheme> <token>` for bearer auth and connection
tokens, `<headerName>: <key>` for API keys). Values are read from a `SecretReader` at call time and are
never logged; callers get a `MissingSecret` list instead of an exception when a reference cannot be read.
Called by the engine's probe step and by the runtime resolution API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class SecretReader(Protocol):
    """Reads secret values by reference and never logs them: `engine.inputs.SecretSource`'s shape, for code that
    does not import the engine (this package, the runtime)."""

    def read(self, namespace: str, name: str, key: str) -> str | None:
        """The value, or None when the Secret or the key does not exist."""
        ...


class StoredHeader(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> str | None: ...
    @property
    def secret_ref(self) -> str | None: ...


def parse_reference(reference: str) -> tuple[str, str, str]:
    """`<namespace>/<secret>#<key>` → (namespace, secret, key); ValueError for anything else."""
    head, sep, key = reference.partition("#")
    namespace, slash, name = head.partition("/")
    if not (sep and slash and namespace and name and key):
        raise ValueError(f"not a secret reference: {reference!r}")
    return namespace, name, key


@dataclass
class ResolvedHeaders:
    """Headers ready to send, plus the references that could not be read."""

    headers: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def set(self, name: str, value: str) -> None:
        for existing in [key for key in self.headers if key.lower() == name.lower()]:
            del self.headers[existing]
        self.headers[name] = value


def read_reference(secrets: SecretReader, reference: str) -> str | None:
    namespace, name, key = parse_reference(reference)
    return secrets.read(namespace, name, key)


def add_stored_headers(result: ResolvedHeaders, headers: Sequence[StoredHeader], secrets: SecretReader) -> None:
    for header in headers:
        if header.secret_ref is not None:
            value = read_reference(secrets, header.secret_ref)
            if value is None:
                result.missing.append(header.secret_ref)
                continue
            result.set(header.name, value)
        elif header.value is not None:
            result.set(header.name, header.value)


def add_server_credential(
    result: ResolvedHeaders, auth_type: str, auth: Mapping[str, Any], secrets: SecretReader
) -> None:
    """Bearer and API-key servers carry their own credential; OAuth tokens are minted elsewhere."""
    reference = auth.get("secretRef")
    if auth_type not in ("bearer", "apiKey") or not isinstance(reference, str):
        return
    value = read_reference(secrets, reference)
    if value is None:
        result.missing.append(reference)
    elif auth_type == "bearer":
        result.set("Authorization", f"{auth.get('scheme') or 'Bearer'} {value}")
    else:
        result.set(str(auth.get("headerName") or "X-API-Key"), value)


def add_connection_credential(
    result: ResolvedHeaders, secret_ref: str | None, scheme: str | None, secrets: SecretReader
) -> None:
    if secret_ref is None:
        return
    value = read_reference(secrets, secret_ref)
    if value is None:
        result.missing.append(secret_ref)
    else:
        result.set("Authorization", f"{scheme or 'Bearer'} {value}")
