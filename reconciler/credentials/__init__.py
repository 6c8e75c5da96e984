"""Credentials: secret stores, OAuth token minting and dynamic client registration, and in-place rotation.

The engine imports from here only (the submodules are the package's own layout):

- references and headers: `parse_reference`, `read_reference`, `require_reference`, `local_reference`,
  `ResolvedHeaders` and the `add_*` helpers (header precedence: server headers < connection headers < the
  credential header), `fingerprint`;
- stores: `SecretStore` (read / aread), `LocalSecretStore` (CLI: folder Secrets + minted values),
  `KubernetesSecretStore` (operator), `MintedSecretStore` (values the reconciler mints, encrypted in the
  registry), `load_store_key`;
- OAuth decisions (pure; the engine's `engine/authorizing.py` performs them through the ports below):
  `discovery_from_status`, `ClientRegistration`, `RegisteredClient`, `choose_auth_method`, `client_rotation_due`,
  `TokenClient`, `MintedToken`, `authorization_url_template`, and the rest of `planning.py`, `registration.py` and
  `tokens.py`; `CredentialContext` names the ports the engine passes, `PreparedCredentials` / `CredentialFailure`
  what the credentials step produced;
- members' tokens (pure): `renewal_due`, `is_invalid_grant`, `member_token_name`, `member_token_secrets` and
  `member_tokens.member_token_rows` (where a member's token set is sealed), `RenewalOutcome`, `DueMemberToken`; the
  one refresh, to the issuer the token came from, as sans-IO steps, `member_refresh_steps` (each request and read
  yielded, its answer sent back), which the runtime's single-flight renewal (`runtime/renewing.py`) and the engine's
  batches (`engine/renewing.py`) both perform with `AuthServerAccess.run`, through the ports in
  `MemberTokenRenewal`;
- rotation: `plan_rotation` and `verdict` (pure; the verification probe itself is the probe's `verify_credential`);
- `private_key_jwt`: `public_jwk` (the public half of a client-assertion key, for a published JWKS);
- step-up: `step_up_scopes` (pure; the scopes to re-authorize with after an `insufficient_scope` refusal);
- ports: `AuthServerClient` (HTTP to authorization servers; the engine passes the probe's `ProbeAuthServer`),
  `CredentialRegistry` / `CredentialTransaction` (storage; the registry satisfies them). This package imports
  neither the probe nor the registry;
- errors: see `errors.py` for the tree.

The names load lazily: a caller that needs one module's names does not import the kubernetes client.
"""

from typing import TYPE_CHECKING

from reconciler.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from reconciler.credentials.assertions import public_jwk
    from reconciler.credentials.authorization import (
        authorization_url_template,
        fill_authorization_url,
        new_pkce,
    )
    from reconciler.credentials.authserver import AuthServerAccess, AuthServerClient
    from reconciler.credentials.errors import (
        AuthServerBlocked,
        AuthServerChanged,
        AuthServerUnavailable,
        CrossNamespaceReference,
        IncompleteAuthSpec,
        InvalidClient,
        OAuthRejected,
        RegistrationRefused,
        SecretKeyProblem,
        SecretNotFound,
        SecretStoreUnavailable,
    )
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
    from reconciler.credentials.keys import KEY_ENV, KEY_FILE_ENV, default_key_path, load_store_key
    from reconciler.credentials.kubernetes_store import KubernetesSecretStore, NamespacedSecrets, SecretNotLoaded
    from reconciler.credentials.last_good import VerifiedValue, last_good_value, pin_verified
    from reconciler.credentials.local_store import (
        LocalSecret,
        LocalSecretStore,
        MemoryMintedSecrets,
        MintedSecrets,
        MintedSecretStore,
        NewSecret,
    )
    from reconciler.credentials.member_tokens import (
        DueMemberToken,
        MemberTokenRenewal,
        RenewalOutcome,
        is_invalid_grant,
        member_refresh_steps,
        member_token_name,
        member_token_secrets,
        renewal_due,
    )
    from reconciler.credentials.planning import (
        CredentialContext,
        CredentialFailure,
        CredentialSettings,
        PreparedCredentials,
        ReleasedCredentials,
        ServerClientRotation,
        ServerFacts,
        discovery_from_status,
    )
    from reconciler.credentials.registration import (
        ClientRegistration,
        ClientRotation,
        CredentialStores,
        RegisteredClient,
        choose_auth_method,
        client_rotation_due,
    )
    from reconciler.credentials.rotation import (
        ProbeOutcome,
        RotationAction,
        RotationDecision,
        RotationPolicy,
        plan_rotation,
        verdict,
    )
    from reconciler.credentials.scopes import step_up_scopes
    from reconciler.credentials.storage import (
        CredentialRegistry,
        CredentialTransaction,
        MemberTokenRegistry,
        MemberTokenTransaction,
    )
    from reconciler.credentials.stores import (
        SecretStore,
        arequire_reference,
        is_local_reference,
        local_reference,
        require_reference,
    )
    from reconciler.credentials.tokens import MintedToken, TokenClient

__all__ = [
    "KEY_ENV",
    "KEY_FILE_ENV",
    "AuthServerAccess",
    "AuthServerBlocked",
    "AuthServerChanged",
    "AuthServerClient",
    "AuthServerUnavailable",
    "ClientRegistration",
    "ClientRotation",
    "CredentialContext",
    "CredentialFailure",
    "CredentialRegistry",
    "CredentialSettings",
    "CredentialStores",
    "CredentialTransaction",
    "CrossNamespaceReference",
    "DueMemberToken",
    "IncompleteAuthSpec",
    "InvalidClient",
    "KubernetesSecretStore",
    "LocalSecret",
    "LocalSecretStore",
    "MemberTokenRegistry",
    "MemberTokenRenewal",
    "MemberTokenTransaction",
    "MemoryMintedSecrets",
    "MintedSecretStore",
    "MintedSecrets",
    "MintedToken",
    "NamespacedSecrets",
    "NewSecret",
    "OAuthRejected",
    "PreparedCredentials",
    "ProbeOutcome",
    "RegisteredClient",
    "RegistrationRefused",
    "ReleasedCredentials",
    "RenewalOutcome",
    "ResolvedHeaders",
    "RotationAction",
    "RotationDecision",
    "RotationPolicy",
    "SecretKeyProblem",
    "SecretNotFound",
    "SecretNotLoaded",
    "SecretReader",
    "SecretStore",
    "SecretStoreUnavailable",
    "ServerClientRotation",
    "ServerFacts",
    "TokenClient",
    "VerifiedValue",
    "add_connection_credential",
    "add_server_credential",
    "add_stored_headers",
    "arequire_reference",
    "authorization_url_template",
    "choose_auth_method",
    "client_rotation_due",
    "default_key_path",
    "discovery_from_status",
    "fill_authorization_url",
    "fingerprint",
    "is_invalid_grant",
    "is_local_reference",
    "last_good_value",
    "load_store_key",
    "local_reference",
    "member_refresh_steps",
    "member_token_name",
    "member_token_secrets",
    "new_pkce",
    "parse_reference",
    "pin_verified",
    "plan_rotation",
    "public_jwk",
    "read_reference",
    "renewal_due",
    "require_reference",
    "step_up_scopes",
    "verdict",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "assertions": ["public_jwk"],
        "authorization": ["authorization_url_template", "fill_authorization_url", "new_pkce"],
        "authserver": ["AuthServerAccess", "AuthServerClient"],
        "errors": [
            "AuthServerBlocked",
            "AuthServerChanged",
            "AuthServerUnavailable",
            "CrossNamespaceReference",
            "IncompleteAuthSpec",
            "InvalidClient",
            "OAuthRejected",
            "RegistrationRefused",
            "SecretKeyProblem",
            "SecretNotFound",
            "SecretStoreUnavailable",
        ],
        "fingerprints": ["fingerprint"],
        "headers": [
            "ResolvedHeaders",
            "SecretReader",
            "add_connection_credential",
            "add_server_credential",
            "add_stored_headers",
            "parse_reference",
            "read_reference",
        ],
        "keys": ["KEY_ENV", "KEY_FILE_ENV", "default_key_path", "load_store_key"],
        "kubernetes_store": ["KubernetesSecretStore", "NamespacedSecrets", "SecretNotLoaded"],
        "last_good": ["VerifiedValue", "last_good_value", "pin_verified"],
        "local_store": [
            "LocalSecret",
            "LocalSecretStore",
            "MemoryMintedSecrets",
            "MintedSecrets",
            "MintedSecretStore",
            "NewSecret",
        ],
        "member_tokens": [
            "DueMemberToken",
            "MemberTokenRenewal",
            "RenewalOutcome",
            "is_invalid_grant",
            "member_refresh_steps",
            "member_token_name",
            "member_token_secrets",
            "renewal_due",
        ],
        "planning": [
            "CredentialContext",
            "CredentialFailure",
            "CredentialSettings",
            "PreparedCredentials",
            "ReleasedCredentials",
            "ServerClientRotation",
            "ServerFacts",
            "discovery_from_status",
        ],
        "registration": [
            "ClientRegistration",
            "ClientRotation",
            "CredentialStores",
            "RegisteredClient",
            "choose_auth_method",
            "client_rotation_due",
        ],
        "rotation": [
            "ProbeOutcome",
            "RotationAction",
            "RotationDecision",
            "RotationPolicy",
            "plan_rotation",
            "verdict",
        ],
        "scopes": ["step_up_scopes"],
        "storage": ["CredentialRegistry", "CredentialTransaction", "MemberTokenRegistry", "MemberTokenTransaction"],
        "stores": ["SecretStore", "arequire_reference", "is_local_reference", "local_reference", "require_reference"],
        "tokens": [
            "MintedToken",
            "TokenClient",
        ],
    },
)
