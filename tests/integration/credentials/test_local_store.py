"""The local encrypted store on real registries: only ciphertext reaches the database, the wrong key is a clear
error, values are replaced and deleted by owner, and the CLI store reads folder Secrets and minted values alike."""

from __future__ import annotations

import json

import pytest

from reconciler.credentials import (
    LocalSecretStore,
    MintedSecretStore,
    NewSecret,
    SecretKeyProblem,
    SecretNotFound,
    read_reference,
    require_reference,
)
from reconciler.credentials.sealing import generate_key
from reconciler.registry import Registry
from tests.integration.credentials.support import StaticSecrets

PLAIN = "Plaintext-Token-9b3e77aa"


def test_only_ciphertext_is_stored(registry: Registry) -> None:
    minted = MintedSecretStore(registry, generate_key())
    with registry.transaction() as transaction:
        minted.put_all(
            [NewSecret("acme", "crm", "oauth-access-token", PLAIN, {"issuedAt": "now"})], transaction=transaction
        )

    rows = registry.dump()["local_secrets"]
    assert len(rows) == 1
    assert rows[0]["ciphertext"] != PLAIN and PLAIN not in json.dumps(rows, default=str)
    assert rows[0]["key_id"] == minted.key_id and rows[0]["meta"] == {"issuedAt": "now"}
    found = minted.get("acme", "crm", "oauth-access-token")
    assert found is not None and found.value == PLAIN and found.reference == "local:acme/crm#oauth-access-token"
    assert PLAIN not in repr(found) and PLAIN not in repr(minted)


def test_the_wrong_key_is_a_clear_error(registry: Registry) -> None:
    with registry.transaction() as transaction:
        MintedSecretStore(registry, generate_key()).put_all(
            [NewSecret("acme", "crm", "dcr-client-secret", PLAIN)], transaction=transaction
        )
    other = MintedSecretStore(registry, generate_key())

    with pytest.raises(SecretKeyProblem, match=r"local:acme/crm#dcr-client-secret was encrypted with key") as caught:
        other.get("acme", "crm", "dcr-client-secret")
    assert "MCP_RECONCILER_KEY" in str(caught.value) and PLAIN not in str(caught.value)


def test_replace_and_delete_by_owner(registry: Registry) -> None:
    minted = MintedSecretStore(registry, generate_key())
    with registry.transaction() as transaction:
        minted.put_all(
            [NewSecret("acme", "crm", purpose, f"v-{purpose}") for purpose in ("a", "b", "c")], transaction=transaction
        )
    with registry.transaction() as transaction:
        minted.put_all(
            [NewSecret("acme", "crm", "a", "v-a2"), NewSecret("acme", "other", "a", "keep")], transaction=transaction
        )
    assert [item.value for item in minted.all_of("acme", "crm")] == ["v-a2", "v-b", "v-c"]

    with registry.transaction() as transaction:
        assert minted.delete("acme", "crm", ["b"], transaction=transaction) == 1
    with registry.transaction() as transaction:
        assert minted.delete("acme", "crm", transaction=transaction) == 2
    assert minted.all_of("acme", "crm") == [] and minted.get("acme", "other", "a") is not None


def test_cli_store_reads_folder_secrets_and_minted_values(registry: Registry) -> None:
    store = LocalSecretStore(StaticSecrets({("acme", "crm-token"): {"token": "from-folder"}}), registry, generate_key())
    with registry.transaction() as transaction:
        store.minted.put_all([NewSecret("acme", "crm", "oauth-access-token", "minted-value")], transaction=transaction)

    assert read_reference(store, "acme/crm-token#token") == "from-folder"
    assert read_reference(store, "local:acme/crm#oauth-access-token") == "minted-value"
    assert read_reference(store, "local:acme/crm#absent") is None
    with pytest.raises(SecretNotFound, match="acme/deleted#token"):
        require_reference(store, "acme/deleted#token")


def test_transactions_roll_back_sealed_writes(registry: Registry) -> None:
    minted = MintedSecretStore(registry, generate_key())
    with pytest.raises(RuntimeError), registry.transaction() as transaction:
        minted.put_all([NewSecret("acme", "crm", "a", PLAIN)], transaction=transaction)
        raise RuntimeError("crash half-way")
    assert minted.get("acme", "crm", "a") is None
