"""Resolution benchmark: p50/p99 latency of `reconciler.runtime.resolve` and statements per resolve.

A registry with 10,000 servers across 100 tenants, 1,000 templates and 50,000 grants (plus connections at
every scope, per-member tokens, tool snapshots and probe state) is populated directly through
`RegistryTransaction.insert` (records built in memory, no YAML), then random invocations are resolved. Prints,
for SQLite and PostgreSQL: latency percentiles and statements per resolve, which must not depend on how many
servers a resolution considers (a 12-server template and a whole 100-server tenant issue the same statements).
Prints numbers, asserts nothing.

A p99 in milliseconds does not carry across machines, so each invocation is also answered by a same-run floor:
the minimal SELECTs a hand-written resolution of it needs (tenant, offered servers with their snapshot and
probe block, their connections, the grants naming the caller, the caller's tokens), run as plain SQL on the
database driver with JSON decoded and nothing decided. Each invocation runs both, in alternating order, so
both see the same load. Targets: template p99 <= 2x the floor's, whole-tenant p99 <= 3x.

Latency on a small shared machine is mostly scheduling noise when other work runs, so resolves are timed in
several rounds, each printed with the load average it ran under, and the check uses the best round. On
PostgreSQL the rows read by sequential scans per resolve are printed too (from `pg_stat_user_tables`): server
work that does not depend on load, and that must not grow with the registry. Each round also prints the mean
CPU time per resolve and per floor in this process: on SQLite (in-process) that is all the work and barely moves
with load, so its ratio is the steadiest figure on a busy machine; on PostgreSQL it is the client side only.

    python bench/resolve_bench.py [--tenants 100] [--servers 10000] [--resolves 2000] [--rounds 3]
                                  [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import sqlalchemy as sa
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.records import ORGANIZATION_MEMBER
from reconciler.registry import Registry, open_registry, schema
from reconciler.registry.connecting import create_registry_engine
from reconciler.registry.records import (
    BindingRecord,
    BoundServerRecord,
    ConnectionRecord,
    GrantRecord,
    GrantSubjectRecord,
    HeaderRecord,
    Record,
    ServerRecord,
    TenantRecord,
)
from reconciler.runtime import resolve

POSTGRES_ADMIN = os.environ.get("MCP_RECONCILER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEMPLATES_PER_TENANT = 10
SERVERS_PER_TEMPLATE = 12
GRANTS_TOTAL = 50_000
MEMBERS_PER_TENANT = 40
TEAMS_PER_TENANT = 8
AGENTS_PER_TENANT = 5
TOOLS_PER_SERVER = 10
APPROVED = "sha256:" + "a" * 64
TEMPLATE_FLOOR_RATIO = 2.0
WHOLE_FLOOR_RATIO = 3.0
SCAN_RESOLVES = 400
WARM_UP = 200


# Every column that can change a resolution's answer (`reconciler.runtime.deciding` and `choosing` read them):
# leaving one out would make the floor a lower bound no real resolution could reach.
SERVER_FACTS = """s.id, s.name, s.display_name, s.url, s.transport, s.enabled, s.featured, s.headers, s.auth_type,
    s.auth, s.tool_policy, s.approved_hash, s.tools_allow, s.tools_deny,
    (SELECT p.blocked_reason FROM server_probe_state p WHERE p.server_id = s.id) AS blocked_reason,
    (SELECT p.tool_risk FROM server_probe_state p WHERE p.server_id = s.id) AS tool_risk,
    t.hash AS snapshot_hash, t.tools AS snapshot_tools"""
LATEST_SNAPSHOT = """LEFT JOIN tool_snapshots t ON t.id = (SELECT id FROM tool_snapshots WHERE server_id = s.id
    ORDER BY taken_at DESC, id DESC LIMIT 1)"""
JSON_COLUMNS = frozenset(
    {
        "headers",
        "auth",
        "tools_allow",
        "tools_deny",
        "tool_risk",
        "snapshot_tools",
        "binding_agents",
        "bound_allow",
        "bound_deny",
        "member_headers",
        "value_keys",
    }
)


class FloorResolver:
    """The same-run floor: what a hand-written resolution of one invocation must read, as plain SQL on the
    database driver (no SQLAlchemy, no records, no decision). Five statements, like the product's.

    It reads every column that can change the answer (not only the obvious ones), and decodes JSON with orjson
    as the registry does (`connecting.load_json`): on SQLite the text columns listed in `JSON_COLUMNS`, on
    PostgreSQL through psycopg's `json` loader set to orjson."""

    def __init__(self, url: str) -> None:
        parsed = sa.make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        if self.sqlite:
            self.connection: Any = sqlite3.connect(parsed.database or "", check_same_thread=False)
            self.connection.row_factory = sqlite3.Row
        else:
            plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
            self.connection = psycopg.connect(plain, autocommit=True, row_factory=dict_row)
            set_json_loads(orjson.loads, self.connection)
        self.statements = 0

    def close(self) -> None:
        self.connection.close()

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        self.statements += 1
        if self.sqlite:
            rows = [dict(row) for row in self.connection.execute(sql, params)]
            for row in rows:
                for column in JSON_COLUMNS.intersection(row):
                    if row[column] is not None:
                        row[column] = orjson.loads(row[column])
            return rows
        return list(self.connection.execute(_pyformat(sql), params))

    def _in(self, name: str, values: Sequence[Any], params: dict[str, Any]) -> str:
        """`IN (...)` over a list: placeholders on SQLite, one array parameter on PostgreSQL."""
        if self.sqlite:
            params.update({f"{name}_{index}": value for index, value in enumerate(values)})
            return "IN (" + (", ".join(f":{name}_{index}" for index in range(len(values))) or "NULL") + ")"
        params[name] = list(values)
        return f"= ANY(:{name})"

    def resolve(self, tenant: str, *, template: str | None, user: str | None, teams: Sequence[str], **_: Any) -> int:
        """Read everything one invocation needs; returns the rows read."""
        found = self._rows(
            "SELECT id FROM tenants WHERE slug = :tenant OR namespace = :tenant"
            " ORDER BY CASE WHEN slug = :tenant THEN 0 ELSE 1 END, id LIMIT 1",
            {"tenant": tenant},
        )
        if not found:
            return 0
        tenant_id = found[0]["id"]
        if template is not None:
            servers = self._rows(
                f"""SELECT {SERVER_FACTS}, b.name AS binding, b.agents AS binding_agents,
                    bs.tools_allow AS bound_allow, bs.tools_deny AS bound_deny, bs.tools_read_only AS bound_read_only,
                    pc.name AS pinned_connection, ps.name AS pinned_connection_server
                FROM template_binding_servers bs JOIN template_bindings b ON b.id = bs.binding_id
                JOIN servers s ON s.id = bs.server_id LEFT JOIN connections pc ON pc.id = bs.connection_id
                LEFT JOIN servers ps ON ps.id = pc.server_id
                {LATEST_SNAPSHOT}
                WHERE b.tenant_id = :tenant_id AND b.template = :template ORDER BY b.name, bs.position, bs.id""",
                {"tenant_id": tenant_id, "template": template},
            )
        else:
            servers = self._rows(
                f"SELECT {SERVER_FACTS} FROM servers s {LATEST_SNAPSHOT}"
                " WHERE s.tenant_id = :tenant_id ORDER BY s.name",
                {"tenant_id": tenant_id},
            )
        server_ids = sorted({row["id"] for row in servers})
        params: dict[str, Any] = {"tenant_id": tenant_id}
        offered = self._in("servers", server_ids, params)
        connections = self._rows(
            "SELECT id, name, server_id, scope, subject, credential_mode, secret_ref, fingerprint,"
            " authorization_scheme, headers, active, member_headers"
            f" FROM connections WHERE tenant_id = :tenant_id AND server_id {offered}"
            " ORDER BY id",
            params,
        )
        params = {"tenant_id": tenant_id, "user": user}
        on_servers = self._in("servers", server_ids, params)
        on_connections = self._in("connections", [row["id"] for row in connections], params)
        names_caller = "s.kind = 'Organization' OR (s.kind = 'Member' AND s.name = :user)"
        if teams:
            names_caller += f" OR (s.kind = 'Team' AND s.name {self._in('teams', list(teams), params)})"
        grants = self._rows(
            f"""SELECT g.name, g.target_server_id, g.target_connection_id, s.kind, s.name AS subject
            FROM access_grants g JOIN access_grant_subjects s ON s.grant_id = g.id
            WHERE g.tenant_id = :tenant_id AND g.target_server_id {on_servers} AND ({names_caller})
            UNION ALL
            SELECT g.name, g.target_server_id, g.target_connection_id, s.kind, s.name AS subject
            FROM access_grants g JOIN access_grant_subjects s ON s.grant_id = g.id
            WHERE g.tenant_id = :tenant_id AND g.target_connection_id {on_connections} AND ({names_caller})""",
            params,
        )
        # The caller's tokens and the organization's: an organization-level connection serves members without one.
        params = {"tenant_id": tenant_id, "user": user or ORGANIZATION_MEMBER, "organization": ORGANIZATION_MEMBER}
        offered = self._in("servers", server_ids, params)
        tokens = self._rows(
            "SELECT id, server_id, connection_id, user_id, secret_ref, value_keys, refresh_token_ref, expires_at"
            " FROM user_tokens WHERE tenant_id = :tenant_id AND user_id IN (:user, :organization)"
            f" AND server_id {offered}",
            params,
        )
        return len(servers) + len(connections) + len(grants) + len(tokens)


def _pyformat(sql: str) -> str:
    """`:name` placeholders as psycopg's `%(name)s`."""
    return re.sub(r"(?<![:\w]):([a-z_]+)", r"%(\1)s", sql)


def build_records(tenants: int, servers_total: int, rng: random.Random) -> tuple[list[TenantRecord], list[Record]]:
    """Per tenant: servers (some featured, some pinned, some with their own key), connections at every scope
    (shared and per member, a few inactive), grants to members, teams and the organization on servers and
    connections, and template bindings (some pinning a connection)."""
    per_tenant = servers_total // tenants
    grants_per_tenant = GRANTS_TOTAL // tenants
    tenant_records: list[TenantRecord] = []
    records: list[Record] = []
    for t in range(tenants):
        slug, namespace = f"tenant-{t:03d}", f"ns-{t:03d}"
        tenant_records.append(TenantRecord(slug=slug, namespace=namespace))
        servers = [f"server-{i:03d}" for i in range(per_tenant)]
        connections_of: dict[str, list[str]] = {}
        for i, name in enumerate(servers):
            auth_type, auth = "none", {}
            if i % 3 == 0:
                auth_type, auth = "bearer", {"secretRef": f"{namespace}/keys#{name}", "scheme": "Bearer"}
            records.append(
                ServerRecord(
                    tenant=slug,
                    name=name,
                    url=f"https://{name}.{slug}.example.com/mcp",
                    featured=i % 10 == 0,
                    headers=(HeaderRecord("x-tenant", value=slug),),
                    auth_type=auth_type,
                    auth=auth,
                    tool_policy="Pin" if i % 7 == 0 else "Track",
                    approved_hash=APPROVED if i % 7 == 0 else None,
                    tools_deny=("delete_*",),
                )
            )
            own: list[str] = []
            if i % 3 != 0:
                own.append(f"{name}-platform")
                records.append(
                    ConnectionRecord(
                        tenant=slug,
                        name=own[-1],
                        server=name,
                        scope="platform",
                        secret_ref=f"{namespace}/conn#{name}",
                        authorization_scheme="Token",
                        headers=(HeaderRecord("x-client", value="bench"),),
                    )
                )
            if i % 4 == 0:
                own.append(f"{name}-members")
                records.append(
                    ConnectionRecord(
                        tenant=slug, name=own[-1], server=name, scope="platform", credential_mode="perMember"
                    )
                )
            own.append(f"{name}-user")
            records.append(
                ConnectionRecord(
                    tenant=slug,
                    name=own[-1],
                    server=name,
                    scope="user",
                    subject=f"member-{i % MEMBERS_PER_TENANT}",
                    secret_ref=f"{namespace}/users#{name}",
                    active=i % 9 != 0,
                )
            )
            if i % 2 == 0:
                own.append(f"{name}-agent")
                records.append(
                    ConnectionRecord(
                        tenant=slug,
                        name=own[-1],
                        server=name,
                        scope="agent",
                        subject=f"agent-{i % AGENTS_PER_TENANT}",
                        secret_ref=f"{namespace}/agents#{name}",
                    )
                )
            connections_of[name] = own
        for g in range(grants_per_tenant):
            target = servers[g % per_tenant]
            on_connection = g % 5 == 4
            roll = rng.random()
            if roll < 0.1:
                subjects: tuple[GrantSubjectRecord, ...] = (GrantSubjectRecord("Organization"),)
            elif roll < 0.5:
                subjects = (GrantSubjectRecord("Team", f"team-{rng.randrange(TEAMS_PER_TENANT)}"),)
            else:
                subjects = (GrantSubjectRecord("Member", f"member-{rng.randrange(MEMBERS_PER_TENANT)}"),)
            records.append(
                GrantRecord(
                    tenant=slug,
                    name=f"grant-{g:04d}",
                    target_server=None if on_connection else target,
                    target_connection=connections_of[target][0] if on_connection else None,
                    subjects=subjects,
                )
            )
        for b in range(TEMPLATES_PER_TENANT):
            chosen = rng.sample(servers, SERVERS_PER_TEMPLATE)
            bound = tuple(
                BoundServerRecord(
                    server=name,
                    connection=connections_of[name][0] if k == 0 else None,
                    tools_allow=("list_*", "get_*") if k % 2 else (),
                )
                for k, name in enumerate(chosen)
            )
            records.append(BindingRecord(tenant=slug, name=f"binding-{b}", template=f"template-{b}", servers=bound))
    return tenant_records, records


def populate(registry: Registry, url: str, tenants: int, servers_total: int, rng: random.Random) -> Counter[str]:
    tenant_records, records = build_records(tenants, servers_total, rng)
    with registry.transaction() as tx:
        tx.ensure_tenants(tenant_records)
        tx.insert(records)
    engine = create_registry_engine(url)
    try:
        add_runtime_rows(engine, rng)
        with engine.connect() as connection:  # fresh planner statistics, as autovacuum / a DBA would give
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    finally:
        engine.dispose()
    return Counter(type(record).__name__ for record in records)


def add_runtime_rows(engine: sa.Engine, rng: random.Random) -> None:
    """Tool snapshots, probe state and members' tokens, bulk-loaded raw: the probe and the runtime write these one
    at a time, which would make populating slow without changing what a resolve reads."""
    taken_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    tools = [
        {
            "name": name,
            "title": None,
            "description": f"{name} tool",
            "input_schema": {"type": "object"},
            "fingerprint": name,
        }
        for name in [f"list_{i}" for i in range(4)]
        + [f"get_{i}" for i in range(3)]
        + ["delete_all", "create", "update"]
    ][:TOOLS_PER_SERVER]
    with engine.begin() as connection:
        servers = connection.execute(sa.select(schema.servers.c.id, schema.servers.c.tenant_id, schema.servers.c.name,
                                               schema.servers.c.tool_policy)).all()  # fmt: skip
        connection.execute(
            sa.insert(schema.tool_snapshots),
            [
                {
                    "server_id": row.id,
                    "hash": APPROVED if row.tool_policy == "Pin" and rng.random() < 0.7 else f"sha256:{row.id:064x}",
                    "tools": tools,
                    "protocol_version": "2025-11-25",
                    "server_info": {"name": row.name},
                    "capabilities": ["tools"],
                    "taken_at": taken_at,
                }
                for row in servers
            ],
        )
        connection.execute(
            sa.insert(schema.server_probe_state),
            [
                {
                    "server_id": row.id,
                    "discovery": None,
                    "last_test": {"ok": True},
                    "blocked_reason": "quarantined" if row.id % 97 == 0 else None,
                    "probed_at": taken_at,
                }
                for row in servers
            ],
        )
        members = connection.execute(
            sa.select(schema.connections.c.id, schema.connections.c.server_id, schema.connections.c.tenant_id).where(
                schema.connections.c.credential_mode == "perMember"
            )
        ).all()
        connection.execute(
            sa.insert(schema.user_tokens),
            [
                {
                    "tenant_id": row.tenant_id,
                    "server_id": row.server_id,
                    "connection_id": row.id,
                    "user_id": f"member-{m}",
                    "secret_ref": f"ns/tokens#{row.id}-{m}",
                }
                for row in members
                for m in range(0, MEMBERS_PER_TENANT, 3)
            ],
        )


def invocation(rng: random.Random, tenants: int, *, template: bool = True) -> dict[str, Any]:
    t = rng.randrange(tenants)
    return {
        "tenant": f"ns-{t:03d}" if rng.random() < 0.5 else f"tenant-{t:03d}",
        "template": f"template-{rng.randrange(TEMPLATES_PER_TENANT)}" if template else None,
        "agent": f"agent-{rng.randrange(AGENTS_PER_TENANT)}" if rng.random() < 0.5 else None,
        "user": f"member-{rng.randrange(MEMBERS_PER_TENANT)}",
        "teams": [f"team-{rng.randrange(TEAMS_PER_TENANT)}" for _ in range(rng.randrange(3))],
    }


@dataclass
class Timings:
    """Wall-clock and CPU milliseconds per call. CPU time is this process's: on SQLite that is all the work (the
    database runs in-process) and it hardly moves with the machine's load; on PostgreSQL it leaves out the
    server's share."""

    wall: list[float]
    cpu: list[float]


def measure(
    registry: Registry, calls: list[dict[str, Any]], floor: FloorResolver | None = None
) -> tuple[Timings, Timings, list[int], Counter[str]]:
    """Timings of `resolve` and, when given, of the floor on the same invocations; statements per resolve."""
    ours = Timings([], [])
    floors = Timings([], [])
    statements: list[int] = []
    states: Counter[str] = Counter()
    for index, call in enumerate(calls):
        arguments = dict(call)
        tenant = arguments.pop("tenant")
        if floor is not None and index % 2:
            timed_floor(floor, tenant, arguments, floors)
        registry.reset_statement_counts()
        started, cpu_started = time.perf_counter(), time.process_time()
        resolution = resolve(registry, tenant, **arguments)
        ours.cpu.append((time.process_time() - cpu_started) * 1000)
        ours.wall.append((time.perf_counter() - started) * 1000)
        statements.append(sum(registry.statement_counts.values()))
        states.update(str(server.state) for server in resolution.servers)
        if floor is not None and not index % 2:
            timed_floor(floor, tenant, arguments, floors)
    return ours, floors, statements, states


def timed_floor(floor: FloorResolver, tenant: str, arguments: dict[str, Any], timings: Timings) -> None:
    started, cpu_started = time.perf_counter(), time.process_time()
    floor.resolve(tenant, **arguments)
    timings.cpu.append((time.process_time() - cpu_started) * 1000)
    timings.wall.append((time.perf_counter() - started) * 1000)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Round:
    """One timed batch of resolves, with the 1-minute load average before and after it."""

    ours: Timings
    floors: Timings
    load_before: float
    load_after: float

    @property
    def latencies(self) -> list[float]:
        return self.ours.wall

    @property
    def floor(self) -> list[float]:
        return self.floors.wall

    @property
    def cpu_ratio(self) -> float:
        """Mean CPU time per resolve against the floor's, in the same round: steadier than p99 under load."""
        return statistics.fmean(self.ours.cpu) / statistics.fmean(self.floors.cpu)

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)

    @property
    def floor_p99(self) -> float:
        return percentile(self.floor, 0.99)

    @property
    def ratio(self) -> float:
        """p99 against the floor's p99 in the same round."""
        return self.p99 / self.floor_p99

    def describe(self) -> str:
        cpu, floor_cpu = statistics.fmean(self.ours.cpu), statistics.fmean(self.floors.cpu)
        return (
            f"p50 {self.p50:6.2f} ms   p99 {self.p99:6.2f} ms   floor p50 {percentile(self.floor, 0.5):6.2f} ms"
            f"   p99 {self.floor_p99:6.2f} ms   p99 ratio {self.ratio:4.2f}x"
            f"   cpu {cpu:5.2f} ms, floor {floor_cpu:5.2f} ms, ratio {self.cpu_ratio:4.2f}x"
            f"   (n={len(self.latencies)}, load {self.load_before:.2f}->{self.load_after:.2f})"
        )


def timed_round(
    registry: Registry, floor: FloorResolver, calls: list[dict[str, Any]]
) -> tuple[Round, list[int], Counter[str]]:
    load_before = os.getloadavg()[0]
    ours, floors, statements, states = measure(registry, calls, floor)
    return Round(ours, floors, load_before, os.getloadavg()[0]), statements, states


def sequential_scans(url: str) -> dict[str, tuple[int, int]]:
    """Per table: (sequential scans, rows they read) so far, as PostgreSQL counts them.

    A backend reports its counts when idle (at most once a second) and, for certain, as it exits, before it
    leaves `pg_stat_activity`; so close the registry first, and this waits for its backends to be gone."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    try:
        with engine.connect() as connection:
            deadline = time.monotonic() + 10
            while connection.exec_driver_sql(others).scalar_one() and time.monotonic() < deadline:
                connection.rollback()  # a new transaction sees a new statistics snapshot
                time.sleep(0.05)
            connection.rollback()
            rows = connection.exec_driver_sql("SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables")
            return {str(name): (int(scans), int(read)) for name, scans, read in rows}
    finally:
        engine.dispose()


def run_backend(backend: str, *, tenants: int, servers: int, resolves: int, rounds: int) -> None:
    rng = random.Random(20260101)
    cores = os.cpu_count() or 1
    scans = ""
    with tempfile.TemporaryDirectory() as tmp:
        admin = None
        database = ""
        if backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'resolve.db'}"
        else:
            admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
            database = f"mcpr_resolve_{secrets.token_hex(4)}"
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
            url = sa.make_url(POSTGRES_ADMIN).set(database=database).render_as_string(hide_password=False)
        registry = open_registry(url)
        try:
            started = time.perf_counter()
            counts = populate(registry, url, tenants, servers, rng)
            populate_seconds = time.perf_counter() - started
            measure(registry, [invocation(rng, tenants) for _ in range(WARM_UP)])  # pools, prepared statements
            if backend == "postgresql":
                scans = count_scans(registry, url, rng, tenants=tenants)
                registry = open_registry(url)
            floor = FloorResolver(url)
            try:
                measure(registry, [invocation(rng, tenants) for _ in range(WARM_UP)], floor)
                template_rounds: list[Round] = []
                whole_rounds: list[Round] = []
                statements: list[int] = []
                whole_statements: list[int] = []
                states: Counter[str] = Counter()
                for _ in range(rounds):
                    calls = [invocation(rng, tenants) for _ in range(resolves)]
                    timed, counted, seen = timed_round(registry, floor, calls)
                    template_rounds.append(timed)
                    statements += counted
                    states += seen
                    whole_calls = [invocation(rng, tenants, template=False) for _ in range(max(100, resolves // 10))]
                    timed, counted, _ = timed_round(registry, floor, whole_calls)
                    whole_rounds.append(timed)
                    whole_statements += counted
                floor_statements = floor.statements
                floor_calls = WARM_UP + rounds * (resolves + max(100, resolves // 10))
            finally:
                floor.close()
        finally:
            registry.close()
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
                admin.dispose()
    print(f"[{backend}] {tenants} tenants, {counts['ServerRecord']} servers, {counts['ConnectionRecord']} connections,")
    print(
        f"  {counts['GrantRecord']} grants, {counts['BindingRecord']} templates x {SERVERS_PER_TEMPLATE} servers;"
        f" populated in {populate_seconds:.1f} s; {cores} cores, load average (1 min) per round:"
    )
    template_label = f"resolve (template, {SERVERS_PER_TEMPLATE} servers)"
    whole_label = f"resolve (no template, {servers // tenants} servers)"
    for number, (template_round, whole_round) in enumerate(zip(template_rounds, whole_rounds, strict=True), 1):
        print(f"  round {number} {template_label:34s} {template_round.describe()}")
        print(f"  round {number} {whole_label:34s} {whole_round.describe()}")
    best = min(template_rounds, key=lambda timed: timed.p99)
    best_whole = min(whole_rounds, key=lambda timed: timed.p99)
    print(f"  best    {template_label:34s} {best.describe()}")
    print(f"  best    {whole_label:34s} {best_whole.describe()}")
    constant = len(set(statements) | set(whole_statements)) == 1
    print(
        f"  statements per resolve: template {sorted(set(statements))}, whole tenant {sorted(set(whole_statements))}"
        f" (target: constant); the floor: {floor_statements / floor_calls:.1f}"
    )
    if backend == "postgresql":
        print(f"  sequential scans per resolve: {scans}")
    print(f"  server states seen: {dict(sorted(states.items()))}")
    ratio = statistics.median(timed.ratio for timed in template_rounds)
    whole_ratio = statistics.median(timed.ratio for timed in whole_rounds)
    print(
        f"  check: template p99 / floor p99 = {ratio:.2f}x median of {rounds} rounds"
        f" (target <= {TEMPLATE_FLOOR_RATIO:.0f}x: {'met' if ratio <= TEMPLATE_FLOOR_RATIO else 'MISSED'});"
        f" whole tenant {whole_ratio:.2f}x (target <= {WHOLE_FLOOR_RATIO:.0f}x:"
        f" {'met' if whole_ratio <= WHOLE_FLOOR_RATIO else 'MISSED'});"
        f" statements {'constant' if constant else 'NOT constant'}; {cores} cores"
    )
    cpu_ratio = statistics.median(timed.cpu_ratio for timed in template_rounds)
    whole_cpu_ratio = statistics.median(timed.cpu_ratio for timed in whole_rounds)
    print(
        f"  cpu: template {cpu_ratio:.2f}x the floor's mean CPU time per resolve, whole tenant {whole_cpu_ratio:.2f}x"
        f" (median of {rounds} rounds; {'all the work' if backend == 'sqlite' else 'client side only'})"
    )


def count_scans(registry: Registry, url: str, rng: random.Random, *, tenants: int) -> str:
    """Sequential scans per resolve on PostgreSQL, counted over resolves alone (no floor beside them): server
    work that does not depend on load and must not grow with the registry. Closes `registry`."""
    registry.close()
    before = sequential_scans(url)
    registry = open_registry(url)
    calls = [invocation(rng, tenants) for _ in range(SCAN_RESOLVES)]
    calls += [invocation(rng, tenants, template=False) for _ in range(SCAN_RESOLVES // 2)]
    try:
        measure(registry, calls)
    finally:
        registry.close()
    return scan_summary(before, sequential_scans(url), resolves=len(calls))


def scan_summary(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], *, resolves: int) -> str:
    """`tenants 1.00 (100 rows)`: scans and rows read per resolve, for each table scanned by resolving (a
    table scanned less than once per 100 resolves was read by opening the registry, not by resolving)."""
    scanned = []
    for table, (scans, rows) in sorted(after.items()):
        earlier_scans, earlier_rows = before.get(table, (0, 0))
        if (scans - earlier_scans) / resolves >= 0.01:
            scanned.append(
                f"{table} {(scans - earlier_scans) / resolves:.2f} ({(rows - earlier_rows) / resolves:.0f} rows)"
            )
    return ", ".join(scanned) + "; every other table by index" if scanned else "none (every table by index)"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--resolves", type=int, default=2_000, help="template resolves per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per backend; the check uses the best")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    for backend in [args.backend] if args.backend else ["sqlite", "postgresql"]:
        run_backend(backend, tenants=args.tenants, servers=args.servers, resolves=args.resolves, rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
