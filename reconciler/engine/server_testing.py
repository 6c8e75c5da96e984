"""Test Connection: probe one server now and record the result as its last test, outside any pass.

The CLI's `test` command calls `test_server` (through `reconciling`). It uses the same credentials step as a pass
(OAuth servers are tested with a minted token, not anonymously) and builds the server's status the same way the
report step does, but writes no registry row: only the probe state, the tool snapshot and the stored status.

A server with no registry row of ours yet (not applied, or no registry at all) gets discovery only, as Wacht's
"discover before save" does: an unauthenticated auth discovery (plus the anonymous tool listing when the spec
configures no credential at all, which is then the very probe `apply` would make), nothing written, no Secret
read, no client registered and no token minted, so trying a server out before saving it leaves no trace.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

from reconciler.api import MCPServer
from reconciler.engine.crediting import CredentialStep, credential_facts, prepare_and_probe
from reconciler.engine.desired import DesiredObject, build_desired
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.planning import Action, Verb
from reconciler.engine.probing import (
    ProbeJob,
    ProbeOptions,
    build_target,
    connection_records,
    credential_outcome,
    next_probe_at,
    record_probe,
)
from reconciler.engine.statuses.building import StatusInputs
from reconciler.engine.statuses.probes import probe_sections
from reconciler.engine.statuses.reporting import reported_status
from reconciler.engine.steps.observe import desired_objects
from reconciler.engine.steps.passing import EngineSettings
from reconciler.engine.validation import validate
from reconciler.errors import PermanentError
from reconciler.probe import ProbeResult, ProbeTarget, probe_many_sync
from reconciler.registry import Registry
from reconciler.registry.records import ServerRecord, SourceRef

THROWAWAY_KEY_BYTES = 32


@dataclass
class ServerTest:
    """Outcome of Test Connection for one server."""

    obj: DesiredObject
    result: ProbeResult
    recorded: bool
    """False when the server has no registry row of ours yet (apply first): nothing was written."""
    discovered_only: bool = False
    """True when the server has no registry row of ours yet: `result` is an unauthenticated auth discovery (and
    the anonymous listing of a server configured without credentials)."""


def test_server(
    desired: DesiredInput,
    registry: Registry | None,
    *,
    source: SourceRef,
    settings: EngineSettings,
    probe: ProbeOptions,
    now: dt.datetime | None = None,
) -> ServerTest:
    """Probe one server now and record the result as its last test; registry rows are not changed.

    Without a registry (None: none exists yet) or a row of ours for the server, only discover, writing nothing.
    """
    now = now or dt.datetime.now(dt.UTC)
    # A throwaway key first: finding the row must not create the registry's fingerprint key.
    validate(desired)
    unsaved = _find_server(
        build_desired(desired, fingerprint_key=os.urandom(THROWAWAY_KEY_BYTES), manager=settings.manager), source
    )
    row = registry.fetch_state(tenants=[unsaved.tenant.slug]).rows.get(unsaved.key) if registry else None
    owned = row is not None and row.ownership.manager == settings.manager and row.ownership.source == source
    if registry is None or not owned or row is None:
        (discovered,) = probe_many_sync([discovery_target(unsaved)], settings=probe.settings)
        # A Secret key the spec names and the folder lacks fails the test before save too.
        result = credential_outcome(unsaved, discovered, None)
        return ServerTest(unsaved, result, recorded=False, discovered_only=True)
    objects = desired_objects(desired, registry, manager=settings.manager)
    obj = _find_server(objects, source)
    target = build_target(obj, connections=connection_records(objects), secrets=desired.secrets)
    server_key = obj.key[1:]
    states = registry.fetch_probe_states(tenants=[obj.tenant.slug])
    # The same step `apply` uses, so OAuth servers are tested with a minted token, not anonymously.
    (result,), prepared = prepare_and_probe(
        [ProbeJob(obj, target)],
        options=dataclasses.replace(probe, force=True),
        registry=registry,
        secrets=desired.secrets,
        states=states,
        step=CredentialStep(),
    )
    snapshots = registry.fetch_tool_snapshots(*server_key)
    item = record_probe(
        obj,
        result,
        previous=snapshots,
        actor=settings.manager,
        credentials=credential_facts(prepared.get(server_key)),
        standing_risk=state.tool_risk if (state := states.get(server_key)) is not None else (),
    )
    if item.snapshot is not None:
        snapshots = [item.snapshot, *(s for s in snapshots if s.hash != item.snapshot.hash)][:2]
    stored = registry.fetch_resources(kind="MCPServer", namespace=source.namespace, name=source.name)
    with registry.transaction() as tx:
        if item.snapshot is not None:
            tx.put_tool_snapshot(item.snapshot)
        tx.put_probe_state(item.state)
        if item.audit is not None:
            tx.audit([item.audit])
        if stored:

            def reported(previous: dict[str, Any]) -> dict[str, Any]:
                inputs = StatusInputs(
                    obj=obj,
                    action=Action(Verb.NOOP, obj.key, source, desired=obj.record, observed=row),
                    generation=stored[0].generation,
                    registry_id=row.row_id,
                    previous=previous,
                    now=now,
                )
                probe = probe_sections(obj, item.state, snapshots, next_probe_at=next_probe_at(obj, item.state))
                return reported_status(inputs, probe=probe, rotation=None)

            tx.change_status(source.kind, source.namespace, source.name, reported)
    return ServerTest(obj, result, recorded=True)


def _find_server(objects: list[DesiredObject], source: SourceRef) -> DesiredObject:
    obj = next((candidate for candidate in objects if candidate.source == source), None)
    if obj is None or not isinstance(obj.resource, MCPServer):
        raise PermanentError(f"MCPServer {source.namespace}/{source.name} is not in the manifests")
    return obj


def discovery_target(obj: DesiredObject) -> ProbeTarget:
    """Pure: the probe request before save: no headers (discovery never sends credentials); tools are listed only
    when the spec configures no credential, since anything else would list them as someone they are not."""
    record = obj.record
    assert isinstance(record, ServerRecord)
    anonymous = record.auth_type == "none" and not record.headers and record.discovery_connection is None
    return ProbeTarget(
        tenant=record.tenant,
        server=record.name,
        url=record.url,
        transport=record.transport,  # type: ignore[arg-type]
        headers={},
        allow_private=record.allow_private,
        discover_auth=True,
        list_tools=anonymous,
    )
