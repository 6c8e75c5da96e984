"""`private_key_jwt` client assertions: the algorithm fitted to the key and the server, the claims RFC 7523
asks for, and clear errors for keys that cannot sign (never the key itself)."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from reconciler.credentials.assertions import (
    algorithms_for,
    client_assertion,
    jwk_thumbprint,
    public_jwk,
    signing_algorithm,
)
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


PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


@pytest.mark.parametrize(
    ("key", "kty", "alg"), [(RSA, "RSA", "RS256"), (P256, "EC", "ES256"), (ED, "OKP", "EdDSA")], ids=str
)
def test_the_published_jwk_is_the_public_half_only_and_verifies_the_assertions(key: object, kty: str, alg: str) -> None:
    jwk = public_jwk(pem(key), key_id=None, algorithm=None)

    assert not PRIVATE_MEMBERS & set(jwk)
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == (kty, alg, "sig")
    assert jwk["kid"] == jwk_thumbprint(jwk), "without keyId the kid is the RFC 7638 thumbprint"
    signed = client_assertion(client_id="c", audience="a", pem=pem(key), algorithm=alg, key_id=jwk["kid"])
    verifier = jwt.PyJWK.from_dict(jwk)
    assert jwt.decode(signed, verifier.key, algorithms=[alg], audience="a")["sub"] == "c"


def test_the_published_jwk_keeps_a_declared_kid_and_algorithm_and_checks_it() -> None:
    jwk = public_jwk(pem(RSA), key_id="k1", algorithm="PS384")
    assert (jwk["kid"], jwk["alg"]) == ("k1", "PS384")
    with pytest.raises(IncompleteAuthSpec, match="ES256 does not fit the key"):
        public_jwk(pem(RSA), key_id=None, algorithm="ES256")


def test_the_rfc_7638_thumbprint_of_the_rfcs_own_example() -> None:
    example = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjB"
            "ZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8"
            "KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_"
            "xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(example) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
