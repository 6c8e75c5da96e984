"""The resync fast path: prove nothing changed, cheaply, so an unchanged folder costs a few queries.

Two witnesses must agree. The input digest (an HMAC with the registry's fingerprint key over every resource,
tenant and Secret value, so it reveals nothing) says the desired state is what was last reconciled; the
registry's change stamp, bumped by database triggers on every write to the managed tables by anyone, says
no row moved since. Probes that are due still force the full path. Called by `steps/scopes.py` (`WholeSource.narrow`).

When the input is the same but the stamp moved (someone wrote rows behind our back), the triggers have also
stamped each tenant they wrote in; only those tenants are read and planned (`tenants_to_read`), so a resync
costs what changed rather than the whole registry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping

from reconciler.api import MCPServer
from reconciler.api.durations import parse_duration
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.probing import probe_interval, token_refresh_due
from reconciler.registry.records import ProbeStateRecord

DIGEST_VERSION = b"mcp-reconciler input digest v1"


def input_digest(desired: DesiredInput, *, key: bytes, manager: str, prune: bool) -> str:
    """HMAC over everything that determines the desired rows; order-sensitive on purpose (cheap, and a
    reordered folder merely takes the full path once)."""
    mac = hmac.new(key, DIGEST_VERSION, hashlib.sha256)
    mac.update(json.dumps([manager, prune]).encode())
    for resource in desired.resources:
        mac.update(resource.__pydantic_serializer__.to_json(resource, exclude={"status"}, exclude_unset=True))
        mac.update(b"\x1e")
    tenants = sorted((t.namespace, t.slug, sorted(t.vars.items())) for t in desired.tenants.values())
    mac.update(json.dumps(tenants).encode())
    secrets = sorted((ns, name, sorted(data.items())) for (ns, name), data in desired.secrets.values.items())
    mac.update(json.dumps(secrets).encode())
    return "hmac-sha256:" + mac.hexdigest()


def probes_due(
    desired: DesiredInput,
    states: Mapping[tuple[str, str], ProbeStateRecord],
    *,
    now: dt.datetime,
) -> bool:
    """Would the full path probe any server now (never probed, or its last probe older than its probe interval)?"""
    for resource in desired.resources:
        if not isinstance(resource, MCPServer) or not resource.spec.discovery.enabled:
            continue
        if resource.spec.management_policy == "ObserveOnly":
            continue
        state = states.get((desired.tenant_for(resource.metadata.namespace).slug, resource.metadata.name))
        if state is None or state.probed_at is None:
            return True
        interval = probe_interval(parse_duration(resource.spec.discovery.interval), state)
        if (now - state.probed_at).total_seconds() >= interval:
            return True
        if token_refresh_due(state, now=now):
            return True
    return False


def desired_tenants(desired: DesiredInput) -> frozenset[str]:
    """The tenant slugs the input has objects in."""
    return frozenset(desired.tenant_for(resource.metadata.namespace).slug for resource in desired.resources)


def tenants_to_read(stamps: Mapping[str, int], *, since: int, wanted: Collection[str]) -> frozenset[str] | None:
    """Pure: the tenants a resync must read after the change stamp moved past `since`, or None for all of them.

    A tenant moved when a write stamped it later than `since`; a tenant the input wants that the registry lacks
    was deleted, rows and all. When neither names any tenant, the stamp moved some other way (a TRUNCATE, which
    stamps no tenant; a hand edit of the stamp), and only reading everything is safe.
    """
    moved = {slug for slug, stamp in stamps.items() if stamp > since}
    moved |= {slug for slug in wanted if slug not in stamps}
    return frozenset(moved) if moved else None


def restrict_to_tenants(desired: DesiredInput, tenants: Collection[str]) -> tuple[DesiredInput, int]:
    """The input with only the objects of `tenants`, and how many were left out. Objects reference only their own
    namespace, so the part validates exactly as it did within the whole."""
    kept = [r for r in desired.resources if desired.tenant_for(r.metadata.namespace).slug in tenants]
    return dataclasses.replace(desired, resources=kept), len(desired.resources) - len(kept)
