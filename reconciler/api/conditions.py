"""Condition types and reasons as enums, so the CLI and the operator say the same thing the same way.

Used by the engine's condition builders and by anything reading status (Argo CD health, `get`).
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"
    SYNCED = "Synced"
    DISCOVERED = "Discovered"
    CREDENTIALS_VALID = "CredentialsValid"
    TOOLS_DRIFTED = "ToolsDrifted"
    AUTH_SERVER_CHANGED = "AuthServerChanged"
    UPSTREAM = "Upstream"
    """Set only on servers imported from a Registry API, by the upstream check (not by a pass, which keeps it)."""


class Reason(StrEnum):
    # Ready
    AVAILABLE = "Available"
    UNAVAILABLE = "Unavailable"
    CREATING = "Creating"
    DISABLED = "Disabled"
    SECRET_NOT_FOUND = "SecretNotFound"
    TRANSPORT_ERROR = "TransportError"
    AUTH_ERROR = "AuthError"
    INSUFFICIENT_SCOPE = "InsufficientScope"
    DOWNSTREAM_ERROR = "DownstreamError"
    TIMEOUT = "Timeout"
    PROTOCOL_ERROR = "ProtocolError"
    TLS_ERROR = "TLSError"
    BLOCKED = "Blocked"
    INTERNAL_ERROR = "InternalError"
    TOOLS_NOT_APPROVED = "ToolsNotApproved"
    TOOL_RISK_CHANGED = "ToolRiskChanged"
    """Ready and ToolsDrifted: a tool's readOnlyHint or destructiveHint flipped, or a tool was renamed with an
    identical description and schema; high-severity drift under every tool policy."""
    # Synced
    RECONCILE_SUCCESS = "ReconcileSuccess"
    RECONCILE_ERROR = "ReconcileError"
    RECONCILE_PAUSED = "ReconcilePaused"
    INVALID_SPEC = "InvalidSpec"
    MISSING_REFERENCE = "MissingReference"
    CONFLICT = "Conflict"
    OBSERVE_ONLY = "ObserveOnly"
    DRIFT_DETECTED = "DriftDetected"
    # Discovered / CredentialsValid / ToolsDrifted
    DISCOVERY_SUCCEEDED = "DiscoverySucceeded"
    DISCOVERY_FAILED = "DiscoveryFailed"
    DISCOVERY_DISABLED = "DiscoveryDisabled"
    NOT_PROBED = "NotProbed"
    CREDENTIALS_RESOLVED = "CredentialsResolved"
    NO_CREDENTIALS = "NoCredentials"
    ROTATION_FAILED = "RotationFailed"
    AUTH_SERVER_CHANGED = "AuthServerChanged"
    """CredentialsValid: the spec's pre-registered client is bound to another issuer (SEP-2352)."""
    AWAITING_USER_AUTHORIZATION = "AwaitingUserAuthorization"
    TOOLS_UNCHANGED = "ToolsUnchanged"
    TOOLS_CHANGED = "ToolsChanged"
    # AuthServerChanged
    ISSUER_CHANGED = "IssuerChanged"
    PREREGISTERED_CLIENT_NOT_USED = "PreregisteredClientNotUsed"
    # Upstream
    UPSTREAM_ACTIVE = "UpstreamActive"
    UPSTREAM_DEPRECATED = "UpstreamDeprecated"
    UPSTREAM_DELETED = "UpstreamDeleted"


PROBE_FAILURE_REASONS: dict[str, Reason] = {
    "transport": Reason.TRANSPORT_ERROR,
    "auth": Reason.AUTH_ERROR,
    "insufficient_scope": Reason.INSUFFICIENT_SCOPE,
    "downstream": Reason.DOWNSTREAM_ERROR,
    "timeout": Reason.TIMEOUT,
    "protocol": Reason.PROTOCOL_ERROR,
    "tls": Reason.TLS_ERROR,
    "blocked": Reason.BLOCKED,
    "internal": Reason.INTERNAL_ERROR,
}
"""Ready's reason when the last probe failed, by the probe's error class (`reconciler.probe.ErrorClass`)."""
