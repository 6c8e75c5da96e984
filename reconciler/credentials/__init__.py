"""Credential handling: keyed fingerprints and request-header resolution from secret references."""

from reconciler.credentials.fingerprints import fingerprint
from reconciler.credentials.headers import (
    ResolvedHeaders,
    SecretReader,
    add_connection_credential,
    add_server_credential,
    add_stored_headers,
    parse_reference,
    read_reference,
)

__all__ = [
    "ResolvedHeaders",
    "SecretReader",
    "add_connection_credential",
    "add_server_credential",
    "add_stored_headers",
    "fingerprint",
    "parse_reference",
    "read_reference",
]
