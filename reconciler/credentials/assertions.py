"""`private_key_jwt` client assertions (RFC 7523 §2.2, OpenID Connect Core §9): the client authenticates at the
token endpoint with a short-lived JWT signed by its private key, so no shared secret is sent or stored.

Pure apart from the clock and a random `jti`. `signing_algorithm` picks the JWS algorithm: the one the spec
declares (checked against the key), else the first the authorization server advertises
(`token_endpoint_auth_signing_alg_values_supported`) that fits the key, else the key's usual one.
`client_assertion` signs `iss = sub = client_id`, `aud = ` the token endpoint, a unique `jti` and a one-minute
lifetime. `public_jwk` is the public half a CIMD client publishes at its `jwks_uri` (the engine computes it when it
reads the key; `serve` publishes it). The key and the assertion never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from reconciler.credentials.errors import IncompleteAuthSpec

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

# PyJWT and cryptography are imported inside the functions that read or sign a key: modules that only need the
# constants below (the runtime's JWKS endpoint, the token client) then start without them.

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_SECONDS = 60
KEY_FIELD = "spec.auth.clientAssertion.privateKey"

PUBLIC_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
"""The RFC 7638 members of each key type: its public parameters, and the input of its thumbprint."""
_RSA = ("RS256", "PS256", "RS384", "PS384", "RS512", "PS512")
_EC_BY_CURVE = {"secp256r1": ("ES256",), "secp384r1": ("ES384",), "secp521r1": ("ES512",)}


def _key(pem: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise IncompleteAuthSpec(f"{KEY_FIELD}: not an unencrypted PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return key
    raise IncompleteAuthSpec(f"{KEY_FIELD}: only RSA, EC (P-256/384/521) and Ed25519 keys sign client assertions")


def algorithms_for(pem: str) -> tuple[str, ...]:
    """The JWS algorithms a key can sign with, its usual one first."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = _key(pem)
    if isinstance(key, rsa.RSAPrivateKey):
        return _RSA
    if isinstance(key, ec.EllipticCurvePrivateKey):
        found = _EC_BY_CURVE.get(key.curve.name)
        if found is None:
            raise IncompleteAuthSpec(f"{KEY_FIELD}: EC curve {key.curve.name} has no JWS algorithm (use P-256/384/521)")
        return found
    return ("EdDSA",)


def signing_algorithm(pem: str, *, declared: str | None, advertised: Sequence[str]) -> str:
    """The algorithm to sign with; `IncompleteAuthSpec` when the declared one does not fit the key."""
    usable = algorithms_for(pem)
    if declared is not None:
        if declared not in usable:
            raise IncompleteAuthSpec(
                f"spec.auth.clientAssertion.algorithm: {declared} does not fit the key (it signs {', '.join(usable)})"
            )
        return declared
    return next((name for name in advertised if name in usable), usable[0])


def client_assertion(
    *, client_id: str, audience: str, pem: str, algorithm: str, key_id: str | None, now: dt.datetime | None = None
) -> str:
    """A signed, single-use client assertion for one token request."""
    import jwt

    issued = now or dt.datetime.now(dt.UTC)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(24),
        "iat": int(issued.timestamp()),
        "exp": int((issued + dt.timedelta(seconds=ASSERTION_SECONDS)).timestamp()),
    }
    headers = {"kid": key_id} if key_id else None
    return jwt.encode(claims, _key(pem), algorithm=algorithm, headers=headers)


def public_jwk(pem: str, *, key_id: str | None, algorithm: str | None) -> dict[str, Any]:
    """The public half of the key as a JWK for a published JWKS: the public parameters only, `kid` (`key_id`, else
    the RFC 7638 thumbprint), `alg` (`algorithm` checked against the key, else the key's usual one) and
    `use: sig`. Pure; `IncompleteAuthSpec` for a key that cannot sign assertions."""
    import jwt.algorithms
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = _key(pem)
    algorithm = signing_algorithm(pem, declared=algorithm, advertised=())
    exported: dict[str, Any]
    if isinstance(key, rsa.RSAPrivateKey):
        exported = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        exported = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        exported = jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public = {name: exported[name] for name in PUBLIC_MEMBERS[exported["kty"]]}
    return {**public, "kid": key_id or jwk_thumbprint(public), "alg": algorithm, "use": "sig"}


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: base64url SHA-256 of the key type's required members, sorted, without whitespace. Pure."""
    members = {name: jwk[name] for name in PUBLIC_MEMBERS[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, sort_keys=True, separators=(",", ":")).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
