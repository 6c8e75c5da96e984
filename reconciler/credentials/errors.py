"""The credentials package's errors, rooted in the domain's two roots so drivers need no OAuth knowledge.

    PermanentError
    ├── SecretNotFound            a referenced Secret or key does not exist (names the reference)
    ├── CrossNamespaceReference   a reference outside the namespace of the object that holds it
    ├── SecretKeyProblem          the local store's key is missing, malformed, insecure or not the one used
    ├── IncompleteAuthSpec        an OAuth endpoint or client the spec omits and discovery did not find
    ├── AuthServerBlocked         the SSRF guard refused an authorization-server URL
    ├── AuthServerChanged         a pre-registered client's resource moved to another authorization server
    └── OAuthRejected             the authorization server said no (`error` from RFC 6749 section 5.2)
        ├── InvalidClient         `invalid_client`: wrong client id or secret, or an unsupported auth method
        └── RegistrationRefused   dynamic registration (RFC 7591) is impossible or was refused
    RetryableError
    ├── SecretStoreUnavailable    the Kubernetes API could not be asked for a Secret right now
    └── AuthServerUnavailable     the authorization server could not be reached or failed (5xx, timeout)

Every error carries `error_class` (the probe's classes: `auth`, `transport`, `timeout`, `blocked`, `tls`,
`protocol`) and `reason` (a condition reason), so the engine reports a minting failure exactly like a probe
failure. Messages name references, endpoints and OAuth error codes, never a secret value: callers scrub what an
authorization server echoes back before it gets here (`redact`).
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.errors import ErrorClass, PermanentError, RetryableError

REDACTED = "<redacted>"
MIN_REDACTED_LENGTH = 4


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret value (at least four characters, longest first) replaced by `<redacted>`."""
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_REDACTED_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class SecretNotFound(PermanentError):
    """A Secret or key a credential needs is missing; `reference` says which (`<namespace>/<secret>#<key>`)."""

    reason = "SecretNotFound"
    error_class: ErrorClass = "auth"

    def __init__(self, reference: str, *, purpose: str | None = None) -> None:
        self.reference = reference
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"secret {reference} does not exist or has no such key{what}")


class CrossNamespaceReference(PermanentError):
    """An object may only read Secrets in its own namespace."""

    reason = "InvalidSpec"
    error_class: ErrorClass = "auth"

    def __init__(self, reference: str, *, namespace: str, why: str | None = None) -> None:
        self.reference = reference
        super().__init__(
            f"secret reference {reference}: "
            + (why or f"objects in namespace {namespace!r} may only use Secrets in their own namespace")
        )


class SecretKeyProblem(PermanentError):
    """The key of the local encrypted store cannot be used; the message says what to fix, never the key."""

    reason = "SecretStoreKey"
    error_class: ErrorClass = "auth"


class IncompleteAuthSpec(PermanentError):
    """The spec leaves out something OAuth needs (token endpoint, authorize endpoint) and discovery has no answer."""

    reason = "InvalidSpec"
    error_class: ErrorClass = "auth"


class OAuthRejected(PermanentError):
    """The authorization server answered a request with an OAuth error.

    `oauth_error` is the RFC 6749 error code (`invalid_grant`, `invalid_scope`, ...), `endpoint` the URL without
    query. Retrying the same request fails the same way until the spec or the Secret changes.
    """

    reason = "AuthError"
    error_class: ErrorClass = "auth"

    def __init__(self, message: str, *, oauth_error: str | None = None, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.oauth_error = oauth_error
        self.endpoint = endpoint


class InvalidClient(OAuthRejected):
    """`invalid_client`: the client id or secret is wrong, or the client may not use this auth method."""


class RegistrationRefused(OAuthRejected):
    """Dynamic client registration cannot be done: no endpoint, no usable auth method, or the server refused."""


class AuthServerBlocked(PermanentError):
    """The SSRF guard refused an authorization-server URL (private address without permission, bad scheme)."""

    reason = "Blocked"
    error_class: ErrorClass = "blocked"


class AuthServerChanged(PermanentError):
    """The resource names another authorization server than the one its pre-registered client (`spec.auth.clientId`)
    was first used with. SEP-2352: credentials are bound to their issuer, so the client is not sent to the new one
    and the spec must name a client of the new issuer. Names both issuers, never the client id (it may be a
    Secret's value)."""

    reason = "AuthServerChanged"  # Reason.AUTH_SERVER_CHANGED
    error_class: ErrorClass = "auth"

    def __init__(self, *, previous: str, current: str) -> None:
        self.previous = previous
        self.current = current
        super().__init__(
            f"the authorization server changed from {previous} to {current}; the pre-registered client "
            f"(spec.auth.clientId) was used with {previous} and is not sent to {current}: register a client "
            f"there and set spec.auth.clientId to it"
        )


class AuthServerUnavailable(RetryableError):
    """The authorization server could not be reached or failed on its side; try again later."""

    reason = "AuthServerUnavailable"

    def __init__(self, message: str, *, error_class: ErrorClass = "transport", delay: float = 30.0) -> None:
        super().__init__(message, delay=delay)
        self.error_class: ErrorClass = error_class


class SecretStoreUnavailable(RetryableError):
    """Reading a Secret failed for a reason other than its absence (API unreachable, forbidden, timed out)."""

    reason = "SecretStoreUnavailable"
    error_class: ErrorClass = "transport"
