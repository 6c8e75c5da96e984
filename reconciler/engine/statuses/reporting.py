"""The status the report step gives one object: the credential facts of the row in use, the server's probe
sections, the pass's rotation verdict and an authorization-code server's member-token rollup, on top of
`building`'s conditions, ids and times.

Pure; called by the report step for every object it reports, and by Test Connection for the server it tested,
so both write the same document for the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.api import MCPConnection, MCPServer
from reconciler.api.server import ApiKeyAuth, BearerAuth, OAuthAuthorizationCodeAuth, OAuthHealth
from reconciler.engine.desired import DesiredObject
from reconciler.engine.planning import Action, Verb
from reconciler.engine.statuses.building import StatusInputs, build_status_with
from reconciler.engine.statuses.credentials import rotation_sections
from reconciler.engine.statuses.probes import ProbeSections
from reconciler.registry.records import Record, ServerRecord


@dataclass(frozen=True)
class Rotation:
    """What the credentials step decided about this object's credential in this pass."""

    rotated: bool = False
    """A changed Secret was verified against the live server, or an OAuth client was registered anew."""
    held_back: str | None = None
    """Why a changed Secret is not in use (the check's message); None when nothing is held back."""


def row_credential_facts(obj: DesiredObject, in_use: Record) -> dict[str, Any]:
    """Credential facts of the row the registry holds (`in_use`) by status key: after a rotation held back, that
    is the last verified credential, not the rejected value the object now names."""
    resource = obj.resource
    if isinstance(resource, MCPServer) and isinstance(resource.spec.auth, BearerAuth | ApiKeyAuth):
        auth = in_use.auth if isinstance(in_use, ServerRecord) else {}
        return {"credentials": {"secretRef": auth.get("secretRef"), "fingerprint": auth.get("secretFingerprint")}}
    if isinstance(resource, MCPConnection) and resource.spec.auth is not None:
        return {"fingerprint": getattr(in_use, "fingerprint", None)}
    return {}


def _member_authorized(obj: DesiredObject) -> bool:
    resource = obj.resource
    return isinstance(resource, MCPServer) and isinstance(resource.spec.auth, OAuthAuthorizationCodeAuth)


def in_use(obj: DesiredObject, action: Action) -> Record:
    """The row after this pass: an action that writes nothing (a held-back rotation, ObserveOnly) leaves the
    observed row in place; everything else leaves the desired one."""
    if action.verb is Verb.NOOP and action.observed is not None:
        return action.observed
    return obj.record


def reported_status(
    inputs: StatusInputs,
    *,
    probe: ProbeSections,
    rotation: Rotation | None = None,
    oauth: OAuthHealth | None = None,
    connected_members: int | None = None,
) -> dict[str, Any]:
    """The document for one object: `inputs` (whose `extra` is ignored) with the row's credential facts, the
    probe's sections (a minted token's facts over the row's) and, from a pass that ran the credentials step,
    the `rotation`'s facts and condition (None, as for Test Connection: the stored facts are not carried), and an
    authorization-code server's `oauth` rollup (None, as for Test Connection: the stored one is kept), and a
    per-member connection's `connected_members` (None: not counted in this pass, the stored count is kept)."""
    extra = row_credential_facts(inputs.obj, in_use(inputs.obj, inputs.action))
    sections = probe.as_extra()
    if "credentials" in sections and "credentials" in extra:
        sections["credentials"] = {**extra["credentials"], **sections["credentials"]}
    extra.update(sections)
    if oauth is not None:
        extra["oauth"] = oauth
    elif inputs.previous and inputs.previous.get("oauth") and _member_authorized(inputs.obj):
        extra["oauth"] = inputs.previous["oauth"]
    if connected_members is not None:
        extra["connectedMembers"] = connected_members
    elif inputs.previous and inputs.previous.get("connectedMembers") is not None:
        extra["connectedMembers"] = inputs.previous["connectedMembers"]
    conditions = list(probe.conditions)
    if rotation is not None:
        rotation_extra, rotation_conditions = rotation_sections(
            inputs.previous,
            extra.get("credentials"),
            rotated=rotation.rotated,
            held_back=rotation.held_back,
            now=inputs.now,
        )
        extra.update(rotation_extra)
        conditions += rotation_conditions
    return build_status_with(inputs, extra=extra, extra_conditions=conditions)
