"""`with_stored_fingerprints`: a dry run's rows take every secret fingerprint from the stored row (same reference)
or have none (new reference), whatever was submitted; content hashes follow."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.api import MCPServer
from reconciler.engine.desired import DesiredObject, with_stored_fingerprints
from reconciler.engine.inputs import Tenant
from reconciler.registry.records import ConnectionRecord, HeaderRecord, ObservedState, Record, ServerRecord, key_of

RESOURCE = MCPServer.model_validate(
    {"metadata": {"name": "s", "namespace": "acme"}, "spec": {"url": "https://s.example.com/mcp"}}
)
TENANT = Tenant(namespace="acme", slug="acme")
REF, OTHER = "acme/creds#a", "acme/creds#b"


def server(**auth: Any) -> ServerRecord:
    return ServerRecord(tenant="acme", name="s", url="https://s.example.com/mcp", auth_type="bearer", auth=auth)


def connection(ref: str, print_: str | None, header_ref: str = REF) -> ConnectionRecord:
    header = HeaderRecord(name="X-Key", secret_ref=header_ref, fingerprint=print_)
    return ConnectionRecord(tenant="acme", name="s", server="s", secret_ref=ref, fingerprint=print_, headers=(header,))


def carried(desired: Record, stored: Record | None) -> Record:
    observed = ObservedState(rows={} if stored is None else {key_of(stored): stored})
    (obj,) = with_stored_fingerprints([DesiredObject(RESOURCE, TENANT, desired)], observed)
    assert obj.record.ownership.spec_hash == obj.record.content_hash()
    return obj.record


@pytest.mark.parametrize(
    ("desired", "stored", "expected"),
    [
        # bearer/apiKey: same reference keeps the stored print, whatever was submitted
        (server(secretRef=REF, secretFingerprint="guess"), server(secretRef=REF, secretFingerprint="kept"), "kept"),
        (server(secretRef=OTHER, secretFingerprint="guess"), server(secretRef=REF, secretFingerprint="kept"), None),
        (server(secretRef=REF, secretFingerprint="guess"), None, None),
        # OAuth client secret: the same rule through `<part>Ref` / `<part>Fingerprint`
        (
            server(clientSecretRef=REF, clientSecretFingerprint="guess"),
            server(clientSecretRef=REF, clientSecretFingerprint="kept"),
            "kept",
        ),
    ],
)
def test_server_auth_fingerprints(desired: ServerRecord, stored: ServerRecord | None, expected: str | None) -> None:
    record = carried(desired, stored)
    assert isinstance(record, ServerRecord)
    prints = {key: value for key, value in record.auth.items() if key.endswith("Fingerprint")}
    assert list(prints.values()) == [expected]


def test_connection_and_header_fingerprints() -> None:
    same = carried(connection(REF, "guess"), connection(REF, "kept"))
    moved = carried(connection(OTHER, "guess", header_ref=OTHER), connection(REF, "kept"))

    assert isinstance(same, ConnectionRecord) and isinstance(moved, ConnectionRecord)
    assert (same.fingerprint, same.headers[0].fingerprint) == ("kept", "kept")
    assert (moved.fingerprint, moved.headers[0].fingerprint) == (None, None)
