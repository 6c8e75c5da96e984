"""Registry benchmark: cold apply and no-op re-apply of 10,000 objects across 50 tenants.

Prints, for SQLite and PostgreSQL: cold apply time, no-op re-apply time, statements issued, the ratio of cold apply
to a raw bulk insert of the same rows measured in the same run (every row the apply wrote: registry rows plus their
audit and resource/status rows, one executemany per table), that ratio again in this process's CPU time (a loaded
machine disturbs it less; for SQLite it is nearly all the work, for PostgreSQL the server's share is not in it), the
work a cold apply does before its first write (a dry run on an empty registry of its own: what is left of the 1.5x
for the writes and the statuses), and peak RSS. Both clocks start with every module imported (the apply steps a
process imports on its first apply are imported before), and both run under the garbage-collector pause `reconcile`
holds for a pass; the baseline is timed a second time with the collector running, as this bench measured it before
the pause, for comparison. Targets: cold apply ≤ 1.5x raw bulk insert (issue 14); no-op re-apply issues zero
INSERT/UPDATE/DELETE and takes ≤ 10% of cold apply; peak RSS ≤ 300 MB. Then two resyncs after 1% of the rows were
edited behind the reconciler's back: all in one tenant (target ≤ 10% of cold apply: only that tenant is read) and
spread over every tenant (every tenant is read). Each backend runs in a child process so its peak RSS is its own.

    python bench/registry_bench.py [--objects 10000] [--tenants 50] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.api import (
    MCPAccessGrant,
    MCPConnection,
    MCPServer,
    MCPTemplateBinding,
    ObjectMeta,
)
from reconciler.api.binding import BoundServer, MCPTemplateBindingSpec
from reconciler.api.common import SecretKeyRef
from reconciler.api.connection import ConnectionAuth, MCPConnectionSpec
from reconciler.api.grant import GrantSubject, GrantTarget, MCPAccessGrantSpec
from reconciler.api.server import BearerAuth, MCPServerSpec
from reconciler.engine.collector import collection_paused
from reconciler.engine.desired import build_desired
from reconciler.engine.inputs import DesiredInput, StaticSecrets, Tenant
from reconciler.engine.reconciling import EngineSettings, bind_later_steps, reconcile
from reconciler.registry import conversion, open_registry, schema
from reconciler.registry.connecting import create_registry_engine
from reconciler.registry.records import (
    BindingRecord,
    ConnectionRecord,
    GrantRecord,
    Record,
    ServerRecord,
    TenantRecord,
)

POSTGRES_ADMIN = os.environ.get("MCP_RECONCILER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def build_fleet(objects: int, tenants: int) -> DesiredInput:
    """A realistic mix per tenant: 40% servers, 30% connections, 20% grants, 10% bindings."""
    per_tenant = objects // tenants
    counts = {"servers": per_tenant * 4 // 10, "connections": per_tenant * 3 // 10, "grants": per_tenant * 2 // 10}
    counts["bindings"] = per_tenant - sum(counts.values())
    desired = DesiredInput(secrets=StaticSecrets())
    for t in range(tenants):
        ns = f"tenant-{t:03d}"
        desired.tenants[ns] = Tenant(namespace=ns, slug=ns)
        desired.secrets.values[(ns, "tokens")] = {f"k{i}": f"token-{t}-{i}" for i in range(counts["servers"])}
        servers = [f"server-{i}" for i in range(counts["servers"])]
        for i, name in enumerate(servers):
            spec = MCPServerSpec(
                url=f"https://mcp-{i}.{ns}.example.com/mcp",
                auth=BearerAuth(type="bearer", secret_key_ref=SecretKeyRef(name="tokens", key=f"k{i}")),
            )
            desired.resources.append(MCPServer(metadata=ObjectMeta(name=name, namespace=ns), spec=spec))
        for i in range(counts["connections"]):
            spec_c = MCPConnectionSpec(
                server_ref=servers[i % len(servers)],
                scope="user",
                subject=f"user-{i}",
                auth=ConnectionAuth(secret_key_ref=SecretKeyRef(name="tokens", key=f"k{i % len(servers)}")),
            )
            desired.resources.append(MCPConnection(metadata=ObjectMeta(name=f"conn-{i}", namespace=ns), spec=spec_c))
        for i in range(counts["grants"]):
            spec_g = MCPAccessGrantSpec(
                target=GrantTarget(server_ref=servers[i % len(servers)]),
                subjects=[GrantSubject(kind="Team", name=f"team-{i % 7}"), GrantSubject(kind="Member", name=f"m-{i}")],
            )
            desired.resources.append(MCPAccessGrant(metadata=ObjectMeta(name=f"grant-{i}", namespace=ns), spec=spec_g))
        for i in range(counts["bindings"]):
            bound = [BoundServer(server_ref=servers[(i + j) % len(servers)]) for j in range(3)]
            spec_b = MCPTemplateBindingSpec(template=f"template-{i}", servers=bound)
            desired.resources.append(
                MCPTemplateBinding(metadata=ObjectMeta(name=f"binding-{i}", namespace=ns), spec=spec_b)
            )
    return desired


def insert_raw(connection: sa.Connection, tenants: list[TenantRecord], records: list[Record]) -> None:
    """The same rows, written the fastest plain way: one executemany per table, ids from RETURNING."""
    tenant_ids = dict(
        zip(
            [t.slug for t in tenants],
            connection.execute(
                sa.insert(schema.tenants).returning(schema.tenants.c.id, sort_by_parameter_order=True),
                [{"slug": t.slug, "namespace": t.namespace} for t in tenants],
            ).scalars(),
            strict=True,
        )
    )

    def insert_returning(table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
        return list(
            connection.execute(sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars()
        )

    servers = [r for r in records if isinstance(r, ServerRecord)]
    server_ids = dict(
        zip(
            [(r.tenant, r.name) for r in servers],
            insert_returning(
                schema.servers, [{**conversion.server_values(r), "tenant_id": tenant_ids[r.tenant]} for r in servers]
            ),
            strict=True,
        )
    )
    connections = [r for r in records if isinstance(r, ConnectionRecord)]
    connection_ids = dict(
        zip(
            [(r.tenant, r.name) for r in connections],
            insert_returning(
                schema.connections,
                [
                    {
                        **conversion.connection_values(r),
                        "tenant_id": tenant_ids[r.tenant],
                        "server_id": server_ids[(r.tenant, r.server)],
                    }
                    for r in connections
                ],
            ),
            strict=True,
        )
    )
    grants = [r for r in records if isinstance(r, GrantRecord)]
    grant_ids = insert_returning(
        schema.access_grants,
        [
            {
                **conversion.grant_values(r),
                "tenant_id": tenant_ids[r.tenant],
                "target_server_id": server_ids[(r.tenant, r.target_server)] if r.target_server else None,
            }
            for r in grants
        ],
    )
    connection.execute(
        sa.insert(schema.access_grant_subjects),
        [
            conversion.subject_values(subject, grant_id=grant_id, position=position)
            for r, grant_id in zip(grants, grant_ids, strict=True)
            for position, subject in enumerate(r.subjects)
        ],
    )
    bindings = [r for r in records if isinstance(r, BindingRecord)]
    binding_ids = insert_returning(
        schema.template_bindings,
        [{**conversion.binding_values(r), "tenant_id": tenant_ids[r.tenant]} for r in bindings],
    )
    connection.execute(
        sa.insert(schema.template_binding_servers),
        [
            conversion.bound_server_values(
                bound,
                binding_id=binding_id,
                position=position,
                server_id=server_ids[(r.tenant, bound.server)],
                connection_id=connection_ids[(r.tenant, bound.connection)] if bound.connection else None,
            )
            for r, binding_id in zip(bindings, binding_ids, strict=True)
            for position, bound in enumerate(r.servers)
        ],
    )


def _fresh_postgres() -> tuple[str, Any]:
    admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"mcpr_bench_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)
    return url, (admin, name)


def _drop_postgres(handle: Any) -> None:
    admin, name = handle
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _fresh(backend: str, workdir: Path, label: str) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{workdir / (label + '.db')}", None
    return _fresh_postgres()


def _written_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every audit and resource row a cold apply wrote, to insert again raw for the baseline."""
    engine = create_registry_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: [
                    {key: value for key, value in row._mapping.items() if key != "id"}
                    for row in connection.execute(sa.select(table))
                ]
                for table in (schema.audit_log, schema.resources)
            }
    finally:
        engine.dispose()


def run_backend(backend: str, objects: int, tenants: int) -> dict[str, Any]:
    desired = build_fleet(objects, tenants)
    settings = EngineSettings()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url, handle = _fresh(backend, workdir, "engine")
        registry = open_registry(url)
        # The steps after plan are imported when a process first applies (so `plan` starts fast): a one-time cost
        # of about 0.7 s CPU, not part of applying rows. The raw baseline below also runs with every module it
        # uses imported (this process imported SQLAlchemy and its dialect before either clock).
        bind_later_steps()
        try:
            registry.reset_statement_counts()
            started, started_cpu = time.perf_counter(), time.process_time()
            first = reconcile(desired, registry, settings=settings)
            cold_seconds = time.perf_counter() - started
            cold_cpu = time.process_time() - started_cpu
            cold_statements = dict(registry.statement_counts)
            registry.reset_statement_counts()
            started = time.perf_counter()
            second = reconcile(desired, registry, settings=settings)
            noop_seconds = time.perf_counter() - started
            noop_statements = dict(registry.statement_counts)
            assert first.plan.counts()["create"] == len(desired.resources)
            assert not second.plan.has_changes
            # Someone wrote to a managed table (here: only the change stamp moves), so the resync must read
            # every row to look for drift: the worst case of a resync with nothing to repair.
            bump = create_registry_engine(url)
            with bump.begin() as connection:
                connection.execute(sa.text("UPDATE registry_changes SET stamp = stamp + 1"))
            bump.dispose()
            registry.reset_statement_counts()
            started = time.perf_counter()
            third = reconcile(desired, registry, settings=settings)
            full_noop_seconds = time.perf_counter() - started
            full_noop_statements = dict(registry.statement_counts)
            assert not third.plan.has_changes
            # The engine's own high-water mark, before the baseline below copies rows around.
            peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            planned = _timed_plan_only(backend, workdir, desired, settings)  # after the peak: its leftovers would count
            # 1% of the rows edited behind our back (measured after the peak RSS above, so that figure keeps its
            # meaning), first all in one tenant (an admin UI edits one tenant), then spread over every tenant: a
            # resync reads and repairs only the tenants whose change stamps moved.
            changed = max(1, len(desired.resources) // 100)
            local_s, local_statements = _timed_repair(registry, desired, url, changed, spread=False)
            spread_s, _ = _timed_repair(registry, desired, url, changed, spread=True)
            records = [
                obj.record
                for obj in build_desired(desired, fingerprint_key=registry.fingerprint_key(), manager=settings.manager)
            ]
        finally:
            registry.close()
        extra_rows = _written_rows(url)
        if handle:
            _drop_postgres(handle)

        # Baseline: the very same rows the cold apply wrote (registry rows, audit rows, resource rows with
        # their status), inserted raw with one executemany per table into an empty database.
        tenant_records = sorted(
            {TenantRecord(slug=t.slug, namespace=t.namespace) for t in desired.tenants.values()}, key=lambda t: t.slug
        )
        raw = _timed_raw_insert(backend, workdir, tenant_records, records, extra_rows, paused=True)
        raw_collecting = _timed_raw_insert(backend, workdir, tenant_records, records, extra_rows, paused=False)
    return {
        "backend": backend,
        "objects": len(desired.resources),
        "tenants": tenants,
        "raw_insert_s": raw["seconds"],
        "raw_registry_rows_s": raw["registry_rows_seconds"],
        "raw_collecting_s": raw_collecting["seconds"],
        "raw_collecting_cpu_s": raw_collecting["cpu_seconds"],
        "rows_written": len(records) + sum(len(rows) for rows in extra_rows.values()),
        "cold_apply_s": cold_seconds,
        "plan_only_s": planned["seconds"],
        "plan_only_cpu_s": planned["cpu_seconds"],
        "raw_insert_cpu_s": raw["cpu_seconds"],
        "cold_apply_cpu_s": cold_cpu,
        "noop_apply_s": noop_seconds,
        "cold_statements": cold_statements,
        "noop_statements": noop_statements,
        "full_noop_s": full_noop_seconds,
        "full_noop_statements": full_noop_statements,
        "changed_rows": changed,
        "local_resync_s": local_s,
        "local_resync_statements": local_statements,
        "spread_resync_s": spread_s,
        "peak_rss_mb": peak_kib / 1024,
    }


def _timed_plan_only(backend: str, workdir: Path, desired: DesiredInput, settings: EngineSettings) -> dict[str, float]:
    """A dry run on an empty registry: the work a cold apply does before its first write (validating the input,
    building every row from its spec, planning), on a registry of its own."""
    url, handle = _fresh(backend, workdir, "plan-only")
    registry = open_registry(url)
    try:
        started, started_cpu = time.perf_counter(), time.process_time()
        report = reconcile(desired, registry, settings=settings, dry_run=True)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - started_cpu
        assert report.plan.counts()["create"] == len(desired.resources)
    finally:
        registry.close()
        if handle:
            _drop_postgres(handle)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds}


def _timed_raw_insert(
    backend: str,
    workdir: Path,
    tenants: list[TenantRecord],
    records: list[Record],
    extra_rows: dict[str, list[dict[str, Any]]],
    *,
    paused: bool,
) -> dict[str, float]:
    """`insert_raw` and the audit and resource rows into a fresh, migrated database, timed.

    `paused`: under the same garbage-collector pause the cold apply runs under (`reconcile` owns it), so that both
    figures are taken alike. Running, the collector scans the whole heap this process holds by then (the engine's
    reports and records, the rows read back) many times over, which makes the baseline slower, not the insert.
    """
    raw_url, raw_handle = _fresh(backend, workdir, "raw-paused" if paused else "raw-collecting")
    open_registry(raw_url).close()  # migrated, empty
    engine = create_registry_engine(raw_url)
    pause = collection_paused() if paused else contextlib.nullcontext()
    started, started_cpu = time.perf_counter(), time.process_time()
    with pause, engine.begin() as connection:
        insert_raw(connection, tenants, records)
        registry_rows_seconds = time.perf_counter() - started
        connection.execute(sa.insert(schema.audit_log), extra_rows["audit_log"])
        connection.execute(sa.insert(schema.resources), extra_rows["resources"])
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - started_cpu
    engine.dispose()
    if raw_handle:
        _drop_postgres(raw_handle)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "registry_rows_seconds": registry_rows_seconds}


def _edit_by_hand(url: str, count: int, *, spread: bool) -> None:
    """Change `count` servers' display names outside the reconciler: the first of one tenant, or every n-th."""
    engine = create_registry_engine(url)
    with engine.begin() as connection:
        if spread:
            total = connection.execute(sa.text("SELECT count(*) FROM servers")).scalar_one()
            step = max(1, total // count)
            chosen = f"SELECT id FROM servers WHERE id % {step} = 0 ORDER BY id LIMIT {count}"
        else:
            first = "SELECT id FROM tenants ORDER BY slug LIMIT 1"
            chosen = f"SELECT id FROM servers WHERE tenant_id = ({first}) ORDER BY id LIMIT {count}"
        edited = connection.execute(sa.text(f"UPDATE servers SET display_name = 'edited' WHERE id IN ({chosen})"))
        assert edited.rowcount > 0
    engine.dispose()


def _timed_repair(
    registry: Any, desired: DesiredInput, url: str, count: int, *, spread: bool
) -> tuple[float, dict[str, int]]:
    _edit_by_hand(url, count, spread=spread)
    registry.reset_statement_counts()
    started = time.perf_counter()
    report = reconcile(desired, registry, settings=EngineSettings())
    seconds = time.perf_counter() - started
    assert report.plan.counts()["repair"] > 0, report.plan.counts()
    return seconds, dict(registry.statement_counts)


def report(result: dict[str, Any]) -> None:
    ratio = result["cold_apply_s"] / result["raw_insert_s"]
    noop_share = result["noop_apply_s"] / result["cold_apply_s"]
    writes = sum(result["noop_statements"].get(verb, 0) for verb in ("INSERT", "UPDATE", "DELETE"))
    print(f"[{result['backend']}] {result['objects']} objects across {result['tenants']} tenants")
    print(
        f"  raw bulk insert (baseline) {result['raw_insert_s']:8.3f} s   the same {result['rows_written']} rows "
        f"(registry rows alone: {result['raw_registry_rows_s']:.3f} s)"
    )
    print(f"  cold apply                 {result['cold_apply_s']:8.3f} s   ratio {ratio:5.2f}x   (target <= 1.5x)")
    collecting_ratio = result["cold_apply_cpu_s"] / result["raw_collecting_cpu_s"]
    cpu_ratio = result["cold_apply_cpu_s"] / result["raw_insert_cpu_s"]
    print(
        f"  the same in this process's CPU time: cold apply {result['cold_apply_cpu_s']:.3f} s, raw insert "
        f"{result['raw_insert_cpu_s']:.3f} s, ratio {cpu_ratio:5.2f}x (steadier on a loaded machine; PostgreSQL's "
        "own work is not in it)"
    )
    plan_share = result["plan_only_cpu_s"] / result["raw_insert_cpu_s"]
    left = 1.5 * result["raw_insert_cpu_s"] - result["plan_only_cpu_s"]
    print(
        f"  of which before any write: a dry run on an empty registry (input validated, every row built, planned) "
        f"{result['plan_only_s']:.3f} s, {result['plan_only_cpu_s']:.3f} s CPU = {plan_share:4.2f}x the raw insert's "
        f"CPU; within 1.5x, that leaves {left:.3f} s CPU for the writes (raw: {result['raw_insert_cpu_s']:.3f} s) and "
        f"{result['objects']} statuses"
    )
    print(
        f"  the baseline with the garbage collector running, as before the apply paused it: "
        f"{result['raw_collecting_s']:.3f} s, {result['raw_collecting_cpu_s']:.3f} s CPU; cold apply / that, CPU "
        f"{collecting_ratio:5.2f}x (flattering: the collector scans this process's whole heap)"
    )
    print(f"  no-op re-apply             {result['noop_apply_s']:8.3f} s   {noop_share:6.1%} of cold (target <= 10%)")
    print(f"  statements, cold apply     {result['cold_statements']}")
    print(f"  statements, no-op apply    {result['noop_statements']}   writes: {writes} (target 0)")
    full_writes = sum(result["full_noop_statements"].get(verb, 0) for verb in ("INSERT", "UPDATE", "DELETE"))
    print(
        f"  drift-checking resync       {result['full_noop_s']:8.3f} s   "
        f"{result['full_noop_s'] / result['cold_apply_s']:6.1%} of cold (rows changed elsewhere, nothing to repair; "
        f"writes: {full_writes})"
    )
    changed = result["changed_rows"]
    print(
        f"  resync, 1% changed, 1 tenant {result['local_resync_s']:6.3f} s   "
        f"{result['local_resync_s'] / result['cold_apply_s']:6.1%} of cold (target <= 10%; {changed} rows edited by "
        f"hand in one tenant and repaired; statements {result['local_resync_statements']})"
    )
    print(
        f"  resync, 1% changed, spread  {result['spread_resync_s']:6.3f} s   "
        f"{result['spread_resync_s'] / result['cold_apply_s']:6.1%} of cold ({changed} rows across every tenant: "
        "every tenant is read)"
    )
    print(f"  peak RSS                   {result['peak_rss_mb']:8.1f} MB  (target <= 300 MB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"])
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON (child mode)")
    args = parser.parse_args()
    if args.backend:
        result = run_backend(args.backend, args.objects, args.tenants)
        print(json.dumps(result) if args.json else "", end="\n" if args.json else "")
        if not args.json:
            report(result)
        return 0
    for backend in ("sqlite", "postgresql"):
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--backend",
                backend,
                "--objects",
                str(args.objects),
                "--tenants",
                str(args.tenants),
                "--json",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(f"[{backend}] failed:\n{child.stderr}", file=sys.stderr)
            return 1
        report(json.loads(child.stdout.strip().splitlines()[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
