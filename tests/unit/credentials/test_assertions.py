"""`private_key_jwt` client assertions: the algorithm fitted to the key and the server, the claims RFC 7523
asks for, and clear errors for keys that cannot sign (never the key itself)."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from reconciler.credentials.assertions import algorithms_for, client_assertion, signing_algorithm
from reconciler.credentials.errors import IncompleteAuthSpec


def pem(key: object) -> str:
    return key.private_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
P256 = ec.generate_private_key(ec.SECP256R1())
ED = ed25519.Ed25519PrivateKey.generate()


def test_the_algorithm_fits_the_key_then_follows_the_server() -> None:
    assert algorithms_for(pem(RSA))[0] == "RS256" and algorithms_for(pem(P256)) == ("ES256",)
    assert algorithms_for(pem(ED)) == ("EdDSA",)
    assert signing_algorithm(pem(RSA), declared=None, advertised=["ES256", "PS256", "RS256"]) == "PS256"
    assert signing_algorithm(pem(P256), declared=None, advertised=["RS256"]) == "ES256"
    assert signing_algorithm(pem(RSA), declared="RS384", advertised=["RS256"]) == "RS384"
    with pytest.raises(IncompleteAuthSpec, match="ES256 does not fit the key"):
        signing_algorithm(pem(RSA), declared="ES256", advertised=[])


def test_an_assertion_carries_what_rfc_7523_asks_for() -> None:
    now = dt.datetime.now(dt.UTC)
    signed = client_assertion(
        client_id="machine", audience="https://as.example/token", pem=pem(P256), algorithm="ES256", key_id="k1", now=now
    )
    assert jwt.get_unverified_header(signed)["kid"] == "k1"
    claims = jwt.decode(signed, P256.public_key(), algorithms=["ES256"], audience="https://as.example/token")
    assert claims["iss"] == claims["sub"] == "machine"
    assert claims["exp"] - claims["iat"] == 60 and len(claims["jti"]) >= 24
    again = client_assertion(client_id="machine", audience="x", pem=pem(P256), algorithm="ES256", key_id=None)
    assert jwt.decode(again, options={"verify_signature": False})["jti"] != claims["jti"]


def test_a_key_that_cannot_sign_is_named_not_shown() -> None:
    with pytest.raises(IncompleteAuthSpec, match="not an unencrypted PEM private key") as caught:
        algorithms_for("-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----\n")
    assert "not-a-key" not in str(caught.value)
