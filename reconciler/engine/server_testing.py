"""Test Connection: probe one server now and record the result as its last test, outside any pass.

The CLI's `test` command calls `test_server` (through `reconciling`). It uses the same credentials step as a pass
(OAuth servers are tested with a minted token, not anonymously) and builds the server's status the same way the
report step does, but writes no registry row: only the probe state, the tool snapshot and the stored status.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from reconciler.api import MCPServer
from reconciler.engine.crediting import CredentialStep, credential_facts, prepare_and_probe
from reconciler.engine.desired import DesiredObject
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.planning import Action, Verb
from reconciler.engine.probing import (
    ProbeJob,
    ProbeOptions,
    build_target,
    connection_records,
    probe_status,
    record_probe,
)
from reconciler.engine.status import StatusInputs, build_status
from reconciler.engine.steps.observe import desired_objects
from reconciler.engine.steps.passing import EngineSettings
from reconciler.engine.steps.report import row_credential_facts
from reconciler.errors import PermanentError
from reconciler.probe import ProbeResult
from reconciler.registry import Registry
from reconciler.registry.records import SourceRef


@dataclass
class ServerTest:
    """Outcome of Test Connection for one server."""

    obj: DesiredObject
    result: ProbeResult
    recorded: bool
    """False when the server has no registry row of ours yet (apply first): nothing was written."""


def test_server(
    desired: DesiredInput,
    registry: Registry,
    *,
    source: SourceRef,
    settings: EngineSettings,
    probe: ProbeOptions,
    now: dt.datetime | None = None,
) -> ServerTest:
    """Probe one server now and record the result as its last test; registry rows are not changed."""
    now = now or dt.datetime.now(dt.UTC)
    objects = desired_objects(desired, registry, manager=settings.manager)
    obj = next((candidate for candidate in objects if candidate.source == source), None)
    if obj is None or not isinstance(obj.resource, MCPServer):
        raise PermanentError(f"MCPServer {source.namespace}/{source.name} is not in the manifests")
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
    row = registry.fetch_state(tenants=[obj.tenant.slug]).rows.get(obj.key)
    owned = row is not None and row.ownership.manager == settings.manager and row.ownership.source == source
    if not owned or row is None:
        return ServerTest(obj, result, recorded=False)
    snapshots = registry.fetch_tool_snapshots(*server_key)
    item = record_probe(
        obj,
        result,
        previous=snapshots,
        actor=settings.manager,
        credentials=credential_facts(prepared.get(server_key)),
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
            extra = dict(row_credential_facts(obj, row) or {})
            probe_extra, probe_conditions = probe_status(obj, item.state, snapshots)
            extra.update(probe_extra)
            status = build_status(
                StatusInputs(
                    obj=obj,
                    action=Action(Verb.NOOP, obj.key, source, desired=obj.record, observed=row),
                    generation=stored[0].generation,
                    registry_id=row.row_id,
                    previous=stored[0].status,
                    now=now,
                    extra=extra,
                    extra_conditions=probe_conditions,
                )
            )
            tx.put_status(source.kind, source.namespace, source.name, status)
    return ServerTest(obj, result, recorded=True)
