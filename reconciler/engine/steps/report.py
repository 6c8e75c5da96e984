"""The report step: probe results recorded and statuses built, in one registry transaction per call.

The loop in `reconciling.py` calls `report_pass` once with every result; the operator calls it once for the
objects that need no probe and then once per group of results as they arrive, so one server that never answers
delays only its own status. Status is a pure function of the rows, the probe state, the credentials step and the
members' tokens the observe step tallied (`build_statuses`); the sink says what the status was before and where
the new one goes, and the scope what a whole pass leaves for the next one's fast path.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from reconciler.engine.crediting import accepted_values, credential_facts, pin_accepted, rotation_verdict
from reconciler.engine.desired import DesiredObject
from reconciler.engine.planning import Action
from reconciler.engine.probing import ProbeJob, RecordedProbe, next_probe_at, record_probe
from reconciler.engine.statuses.bindings import read_only_conditions
from reconciler.engine.statuses.building import StatusInputs, dump_section
from reconciler.engine.statuses.oauth import counts_members
from reconciler.engine.statuses.probes import ProbeSections, probe_sections
from reconciler.engine.statuses.reporting import reported_status
from reconciler.engine.steps.passing import ObjectResult, Pass
from reconciler.probe import ProbeResult
from reconciler.registry import Registry
from reconciler.registry.records import (
    BindingRecord,
    ConnectionRecord,
    ProbeStateRecord,
    RowKey,
    ServerRecord,
    SourceRef,
)


def report_pass(
    current: Pass,
    registry: Registry,
    results: Sequence[tuple[ProbeJob, ProbeResult]],
    *,
    sources: Collection[SourceRef] | None = None,
) -> list[ObjectResult]:
    """Record probe `results` and build the statuses of `sources` (default: every object) in one transaction.

    Each object is reported once, and again only when a probe result for it arrives later. Returns the results
    of this call (also merged into `current.report`).
    """
    desired, report, credential_step = current.desired, current.report, current.credential_step
    whole = sources is None
    chosen = frozenset(obj.source for obj in current.objects) if sources is None else frozenset(sources)
    recorded = [_record(current, job, result) for job, result in results]
    probed = [(job.obj, result) for job, result in results]
    report.probed.extend(probed)
    with registry.transaction() as tx:
        stamp_reporting = tx.lock_change_stamp()
        for item in recorded:
            if item.snapshot is not None:
                tx.put_tool_snapshot(item.snapshot)
            tx.put_probe_state(item.state)
        accepted = [
            value
            for obj, result in probed
            if result.ok and result.tools is not None
            for value in accepted_values(obj.record, desired.secrets)  # type: ignore[arg-type]
        ]
        accepted += [
            value
            for check in credential_step.rotations.values()
            if check.outcome == "verified"
            and check.action.desired is not None
            and (whole or check.action.source in chosen)
            for value in accepted_values(check.action.desired, desired.secrets)  # type: ignore[arg-type]
        ]
        pin_accepted(registry, accepted, transaction=tx)
        audits = [item.audit for item in recorded if item.audit is not None]
        if audits:
            tx.audit(audits)
        # A status built already (with the rows) changes now only with what probing learnt.
        probed_now = frozenset(obj.key for obj, _ in probed)
        # A read-only binding's Ready message reads its servers' snapshots: it is reported again with them.
        dependents = _read_only_dependents(current, probed_now)
        probed_sources = {obj.source for obj, _ in probed} | dependents
        chosen = frozenset(
            source for source in chosen | dependents if source not in current.reported or source in probed_sources
        )
        results_now = build_statuses(current, chosen=chosen, probed_now=probed_now)
        current.sink.write_with_results(tx)
        if whole:
            current.scope.remember(tx, current, stamp=stamp_reporting)
    by_source = {result.obj.source: result for result in results_now}
    report.results = [by_source.pop(result.obj.source, result) for result in report.results]
    report.results.extend(by_source.values())
    report.applied = True
    return results_now


def _record(current: Pass, job: ProbeJob, result: ProbeResult) -> RecordedProbe:
    """What one probe result adds to the registry; the pass's probe states and snapshots follow it."""
    server_key = job.obj.key[1:]
    snapshots = current.snapshots
    item = record_probe(
        job.obj,
        result,
        previous=snapshots.get(server_key, []),
        actor=current.settings.manager,
        credentials=credential_facts(current.prepared.get(server_key)),
        standing_risk=_standing_risk(current.probe_states.get(server_key)),
    )
    current.probe_states[server_key] = item.state
    if item.snapshot is not None and (
        not snapshots.get(server_key) or snapshots[server_key][0].hash != item.snapshot.hash
    ):
        snapshots[server_key] = [item.snapshot, *snapshots.get(server_key, [])][:2]
    elif item.snapshot is not None:
        snapshots[server_key] = [item.snapshot, *snapshots[server_key][1:]]
    return item


def build_statuses(current: Pass, *, chosen: frozenset[SourceRef], probed_now: frozenset[RowKey]) -> list[ObjectResult]:
    """Pure but for the sink's notes: the status of each chosen object, in the pass's order."""
    sink = current.sink
    results: list[ObjectResult] = []
    reported, actions = current.reported, current.actions
    for obj in current.objects:
        source = obj.source
        if source not in chosen:
            continue
        reported.add(source)
        action = actions[source]
        # The desired row's hash stands for the spec: it changes exactly when what the spec renders to does.
        spec_hash = obj.record.ownership.spec_hash or obj.record.content_hash()
        # A stored status stands only while its members' tokens tally the same (they move without the rows).
        moved = (
            obj.key in probed_now
            or _oauth_moved(current, obj, spec_hash=spec_hash)
            or _members_moved(current, obj, spec_hash=spec_hash)
            or _read_only_servers_moved(current, obj, probed_now)
        )
        standing = sink.standing(obj, action, spec_hash=spec_hash, probed=moved)
        if standing is not None:
            results.append(standing)
            continue
        generation, previous = sink.previous_of(obj, spec_hash=spec_hash)
        status = _status(current, obj, action, generation=generation, previous=previous)
        results.append(ObjectResult(obj, action, generation, status, previous is None or dict(previous) != status))
        sink.keep(obj, spec_hash=spec_hash, status=status, generation=generation)
    return results


def _oauth_moved(current: Pass, obj: DesiredObject, *, spec_hash: str) -> bool:
    health = current.oauth.get(obj.key[1:])
    if health is None:
        return False
    _, previous = current.sink.previous_of(obj, spec_hash=spec_hash)
    return (previous or {}).get("oauth") != dump_section(health)


def _standing_risk(state: ProbeStateRecord | None) -> tuple[str, ...]:
    return state.tool_risk if state is not None else ()


def _read_only_servers(binding: BindingRecord) -> list[str]:
    return [bound.server for bound in binding.servers if bound.tools_read_only]


def _connected_members(current: Pass, obj: DesiredObject) -> int | None:
    """`status.connectedMembers` of a per-member connection as the observe step counted it; None for the rest."""
    if current.connected_members is None or not counts_members(obj.record):
        return None
    record = obj.record
    assert isinstance(record, ConnectionRecord)
    return current.connected_members.get((record.tenant, record.server, record.name), 0)


def _members_moved(current: Pass, obj: DesiredObject, *, spec_hash: str) -> bool:
    """Members connect without any row changing: a stored status stands only while it counts them right."""
    count = _connected_members(current, obj)
    if count is None:
        return False
    _, previous = current.sink.previous_of(obj, spec_hash=spec_hash)
    return (previous or {}).get("connectedMembers") != count


def _read_only_dependents(current: Pass, probed_now: frozenset[RowKey]) -> set[SourceRef]:
    """The pass's read-only bindings bound to a server probed just now."""
    if not probed_now:
        return set()
    return {
        obj.source
        for obj in current.objects
        if isinstance(obj.record, BindingRecord) and _read_only_servers_moved(current, obj, probed_now)
    }


def _read_only_servers_moved(current: Pass, obj: DesiredObject, probed_now: frozenset[RowKey]) -> bool:
    """A read-only binding's Ready message follows its servers' snapshots: rebuild it when one was probed (a
    server whose row changed is probed in the same pass)."""
    if not isinstance(obj.record, BindingRecord):
        return False
    tenant = obj.record.tenant
    return any(("servers", tenant, name) in probed_now for name in _read_only_servers(obj.record))


def _binding_sections(current: Pass, obj: DesiredObject, binding: BindingRecord) -> ProbeSections:
    """What `tools.readOnly` admits from each bound server, from the servers' rows as this pass leaves them (the
    desired row of a server this pass writes, else the row observed)."""
    names = _read_only_servers(binding)
    if not names:
        return ProbeSections()
    observed = current.observed.rows if current.observed is not None else {}
    servers: dict[str, ServerRecord] = {}
    for name in names:
        action = current.actions.get(SourceRef("MCPServer", obj.source.namespace, name))
        record = action.desired if action is not None and action.desired is not None else None
        record = record or observed.get(("servers", binding.tenant, name))
        if isinstance(record, ServerRecord):
            servers[name] = record
    snapshots = {name: current.snapshots.get((binding.tenant, name), []) for name in names}
    risk = {name: _standing_risk(current.probe_states.get((binding.tenant, name))) for name in names}
    return ProbeSections(conditions=read_only_conditions(binding, servers=servers, snapshots=snapshots, tool_risk=risk))


def _status(
    current: Pass, obj: DesiredObject, action: Action, *, generation: int, previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    server_key = obj.key[1:]
    state = current.probe_states.get(server_key)
    snapshots = current.snapshots.get(server_key, [])
    if isinstance(obj.record, BindingRecord):
        sections = _binding_sections(current, obj, obj.record)
    else:
        sections = probe_sections(obj, state, snapshots, next_probe_at=next_probe_at(obj, state))
    return reported_status(
        StatusInputs(
            obj=obj,
            action=action,
            generation=generation,
            registry_id=current.row_ids.get(obj.key),
            previous=previous,
            now=current.now,
        ),
        probe=sections,
        rotation=rotation_verdict(obj, current.credential_step),
        oauth=current.oauth.get(server_key),
        connected_members=_connected_members(current, obj),
    )
