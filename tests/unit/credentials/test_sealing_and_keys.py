"""The local store's encryption and key handling: AES-GCM bound to the reference, clear wrong-key errors, and key
files created with mode 0600 (refused when others can read them)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from reconciler.credentials import KEY_ENV, KEY_FILE_ENV, SecretKeyProblem, default_key_path, load_store_key
from reconciler.credentials.sealing import SecretSealer, encode_key, generate_key, key_id

VALUE = "tok-Plaintext-7c1d"
REF = "local:acme/crm#oauth-access-token"


def test_round_trip_and_ciphertext_differs_from_plaintext() -> None:
    sealer = SecretSealer(generate_key())
    sealed = sealer.seal(REF, VALUE)
    assert VALUE not in sealed and sealed.startswith("v1.")
    assert sealer.seal(REF, VALUE) != sealed  # a fresh nonce every time
    assert sealer.unseal(REF, sealed, sealed_with=sealer.key_id) == VALUE
    assert "key" not in repr(sealer).replace("key_id", "")


def test_wrong_key_is_named_by_id_not_value() -> None:
    right, wrong = generate_key(), generate_key()
    sealed = SecretSealer(right).seal(REF, VALUE)
    with pytest.raises(SecretKeyProblem, match="encrypted with key") as caught:
        SecretSealer(wrong).unseal(REF, sealed, sealed_with=key_id(right))
    message = str(caught.value)
    assert key_id(right) in message and key_id(wrong) in message and MCP_KEY_HINT in message
    assert encode_key(right) not in message and encode_key(wrong) not in message


MCP_KEY_HINT = "MCP_RECONCILER_KEY"


def test_ciphertext_moved_to_another_reference_does_not_decrypt() -> None:
    sealer = SecretSealer(generate_key())
    sealed = sealer.seal(REF, VALUE)
    with pytest.raises(SecretKeyProblem, match="altered or moved"):
        sealer.unseal("local:acme/other#oauth-access-token", sealed, sealed_with=sealer.key_id)


def test_key_from_the_environment() -> None:
    key = generate_key()
    assert load_store_key(environ={KEY_ENV: encode_key(key)}) == key


@pytest.mark.parametrize("text", ["not base64!!", encode_key(b"short")])
def test_a_bad_environment_key_is_a_clear_error_without_the_value(text: str) -> None:
    with pytest.raises(SecretKeyProblem, match=KEY_ENV) as caught:
        load_store_key(environ={KEY_ENV: text})
    assert text not in str(caught.value)


def test_key_file_created_once_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "key"
    first = load_store_key(environ={}, key_file=path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_store_key(environ={}, key_file=path) == first
    assert load_store_key(environ={KEY_FILE_ENV: str(path)}) == first


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    load_store_key(environ={}, key_file=path)
    os.chmod(path, 0o644)
    with pytest.raises(SecretKeyProblem, match="chmod 600"):
        load_store_key(environ={}, key_file=path)


def test_missing_key_without_create(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyProblem, match="no key"):
        load_store_key(environ={}, key_file=tmp_path / "absent", create=False)


def test_default_key_path(tmp_path: Path) -> None:
    assert default_key_path(str(tmp_path / "mcp-registry.db")) == tmp_path / "mcp-registry.db.key"
    assert default_key_path(None, home=tmp_path) == tmp_path / ".config" / "mcp-reconciler" / "key"


def test_default_path_next_to_the_database(tmp_path: Path) -> None:
    database = tmp_path / "registry.db"
    key = load_store_key(environ={}, database_path=str(database))
    assert (tmp_path / "registry.db.key").is_file()
    assert load_store_key(environ={}, database_path=str(database)) == key
