"""Encryption of locally stored secrets: AES-256-GCM from `cryptography`, each value bound to its reference.

`local_store.MintedSecretStore` seals a value before it reaches the registry and unseals it on the way out.
The reference (`local:<tenant>/<name>#<purpose>`) is the associated data, so a ciphertext copied onto another
row does not decrypt. Every sealed value records the id of the key that sealed it (a keyed hash, not the key),
which turns "wrong key" into a clear error instead of a generic decryption failure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from reconciler.credentials.errors import SecretKeyProblem

KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT_PREFIX = "v1."
_KEY_ID_LABEL = b"mcp-reconciler local secret store key id"


def key_id(key: bytes) -> str:
    """A short public name for a key: equal keys, equal ids; useless for recovering the key."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def encode_key(key: bytes) -> str:
    """The textual form of a key (urlsafe base64, as `MCP_RECONCILER_KEY` and key files hold it)."""
    return base64.urlsafe_b64encode(key).decode("ascii")


def decode_key(text: str, *, source: str) -> bytes:
    """A 32-byte key from its urlsafe base64 text; `source` names where it came from for the error message."""
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as err:
        raise SecretKeyProblem(f"{source} is not urlsafe base64 (expected 32 random bytes, encoded)") from err
    if len(key) != KEY_BYTES:
        raise SecretKeyProblem(f"{source} decodes to {len(key)} bytes; the local secret store needs {KEY_BYTES}")
    return key


def generate_key() -> bytes:
    return os.urandom(KEY_BYTES)


class SecretSealer:
    """Seals and unseals values with one key. The key never appears in its repr."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SecretKeyProblem(f"the local secret store key must be {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self.key_id = key_id(key)

    def __repr__(self) -> str:
        return f"SecretSealer(key_id={self.key_id!r})"

    def seal(self, reference: str, value: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = self._aead.encrypt(nonce, value.encode("utf-8"), reference.encode("utf-8"))
        return FORMAT_PREFIX + base64.urlsafe_b64encode(nonce + ciphertext).decode("ascii")

    def unseal(self, reference: str, sealed: str, *, sealed_with: str) -> str:
        """The plaintext; `SecretKeyProblem` when another key sealed it or the ciphertext was altered."""
        if sealed_with != self.key_id:
            raise SecretKeyProblem(
                f"{reference} was encrypted with key {sealed_with}, but the configured key is {self.key_id}: "
                "set MCP_RECONCILER_KEY (or the key file) to the key this registry was used with"
            )
        if not sealed.startswith(FORMAT_PREFIX):
            raise SecretKeyProblem(f"{reference} is stored in an unknown format; it cannot be decrypted")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(FORMAT_PREFIX) :].encode("ascii"))
            plaintext = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], reference.encode("utf-8"))
        except (InvalidTag, binascii.Error, ValueError) as err:
            raise SecretKeyProblem(
                f"{reference} does not decrypt with key {self.key_id}: the stored value was altered or moved"
            ) from err
        return plaintext.decode("utf-8")
