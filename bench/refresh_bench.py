"""Bulk member-token renewal: refresh requests per token and wall time against a same-run baseline.

    python bench/refresh_bench.py [--tokens 10000] [--backends sqlite,postgresql] [--racers 4]

A child process hosts the project's fixture authorization server (`tests.fixtures.authorization_server`, rotating
refresh tokens, one public client) on 127.0.0.1. This process stores `--tokens` members' token sets for one server
with `store_member_tokens`, every one past 80% of its lifetime, in a fresh registry per backend (an SQLite file; a
scratch PostgreSQL database, dropped at the end), then measures:

- **bulk**: one `engine.renewing.renew_member_tokens` over the whole set (what `apply` and the operator sweep run);
- **race**: `--racers` threads each running `renew_member_tokens` over the same (again due) set at once;
- **baseline** for each: the same number of bare refresh-token grants (`engine.minting.refresh_access_token`
  through the same `ProbeAuthServer` / `ProbeHttp` client), with the same concurrency (one sender for the bulk run,
  `--racers` senders splitting the set for the race), on tokens issued for the purpose, run right before.

It prints refresh requests per token, counted by the server (target: exactly 1 for every token, also in the race:
single-flight) and the time ratio renewal / baseline (target <= 1.5x). A missed target prints MISSED and the
exit status stays 0; the status is 1 only on a correctness failure: a token refreshed twice, or a token lost
(not renewed, or its row not carrying the new expiry).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.credentials import KEY_ENV, MintedSecretStore, MintedToken, RenewalOutcome
from reconciler.credentials.authserver import AuthServerAccess
from reconciler.credentials.tokens import TokenClient
from reconciler.engine.minting import refresh_access_token
from reconciler.engine.renewing import renew_member_tokens
from reconciler.probe import ProbeAuthServer, ProbeHttp, ProbeSettings
from reconciler.registry import Registry, open_registry
from reconciler.registry.records import ServerRecord, TenantRecord
from reconciler.runtime import store_member_tokens

POSTGRES_ADMIN = os.environ.get("MCP_RECONCILER_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STARTUP_TIMEOUT = 60.0
ANSWER_TIMEOUT = 300.0
TENANT = "acme"
SERVER = "notes"
CLIENT_ID = "member-app"
LIFETIME = dt.timedelta(hours=1)
DUE_AT = 0.85
"""Where in its lifetime each stored token is when renewed: past the 80% mark, not yet expired."""
RATIO_TARGET = 1.5
SETTINGS = ProbeSettings(allow_private_networks=True, total_timeout=30)


# -- the child: the authorization server ---------------------------------------------------------------------


def serve() -> None:
    """Child mode: host the fixture authorization server, print its issuer; then answer `issue` / `counts`."""
    from reconciler.demo.serving import ServerLoop
    from tests.fixtures.authorization_server import AuthorizationServer

    server = AuthorizationServer()
    with ServerLoop(startup_timeout=STARTUP_TIMEOUT) as loop:
        loop.serve_asgi(server.app)
        server.add_client(CLIENT_ID, None, method="none", grant_types=("authorization_code", "refresh_token"))
        print(json.dumps({"issuer": server.issuer}), flush=True)
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "issue":  # issue <count> <subject prefix> <resource>
                count, prefix, resource = argument.split(" ", 2)
                pairs = [
                    server.issue_member_tokens(CLIENT_ID, resource=resource, subject=f"{prefix}{index}")
                    for index in range(int(count))
                ]
                print(json.dumps(pairs), flush=True)
            elif command == "counts":  # counts <subject prefix>: refresh grants per subject, and requests so far
                issued = Counter(
                    issued.subject
                    for issued in list(server.tokens.values())
                    if issued.subject and issued.subject.startswith(argument)
                )
                answer = {"requests": server.token_requests, "metadata": server.metadata_requests}
                print(json.dumps({**answer, "per_subject": dict(issued)}), flush=True)


class Child:
    """The authorization-server process, spoken to line by line, with a bound on every wait."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: [self._lines.put(line) for line in stdout], daemon=True).start()
        self.issuer: str = json.loads(self._next(STARTUP_TIMEOUT))["issuer"]

    def _next(self, timeout: float) -> str:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise SystemExit("the authorization server process did not answer in time") from None

    def ask(self, line: str) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return json.loads(self._next(ANSWER_TIMEOUT))

    def issue(self, count: int, prefix: str, resource: str) -> list[tuple[str, str]]:
        return [(access, refresh) for access, refresh in self.ask(f"issue {count} {prefix} {resource}")]

    def refreshes(self, prefix: str, subjects: Sequence[str]) -> tuple[int, int, Counter[int]]:
        """(token-endpoint requests so far, metadata requests so far, {refresh grants: subjects}) for `subjects`
        (issued with `prefix`)."""
        answer = self.ask(f"counts {prefix}")
        per_subject: dict[str, int] = answer["per_subject"]
        counted = Counter(per_subject.get(subject, 0) - 1 for subject in subjects)
        return answer["requests"], answer["metadata"], counted

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


# -- the parent: the registry side -------------------------------------------------------------------------------


def populate(registry: Registry, key: bytes, child: Child, *, tokens: int, prefix: str, resource: str) -> list[str]:
    """Store `tokens` members' token sets past 80% of their lifetime; returns the members' ids."""
    minted = MintedSecretStore(registry, key)
    issued_at = dt.datetime.now(dt.UTC) - LIFETIME * DUE_AT
    users = [f"{prefix}{index}" for index in range(tokens)]
    for user, (access, refresh) in zip(users, child.issue(tokens, prefix, resource), strict=True):
        token = MintedToken(
            access_token=access,
            issued_at=issued_at,
            expires_at=issued_at + LIFETIME,
            fingerprint="",
            scope="mcp:tools",
            refresh_token=refresh,
        )
        store_member_tokens(
            registry, minted, token, tenant=TENANT, server=SERVER, user=user, client_id=CLIENT_ID, issuer=child.issuer
        )
    return users


def baseline(child: Child, registry: Registry, *, tokens: int, senders: int, prefix: str, resource: str) -> float:
    """Seconds for `tokens` bare refresh grants, `senders` threads each sending its share one after another."""
    refresh_tokens = [refresh for _, refresh in child.issue(tokens, prefix, resource)]
    client = TokenClient(token_url=f"{child.issuer}/token", client_id=CLIENT_ID, client_secret=None, method="none")
    fingerprint_key = registry.fingerprint_key()

    async def send(share: Sequence[str]) -> None:
        async with ProbeHttp() as http:
            access = AuthServerAccess(client=ProbeAuthServer(http, SETTINGS), allow_private=True)
            for refresh_token in share:
                await refresh_access_token(
                    client=client,
                    refresh_token=refresh_token,
                    scopes=("mcp:tools",),
                    resource=resource,
                    access=access,
                    fingerprint_key=fingerprint_key,
                )

    return timed_threads([lambda share=refresh_tokens[i::senders]: anyio.run(send, share) for i in range(senders)])


def timed_threads(work: Sequence[Callable[[], object]]) -> float:
    """Run each callable in its own thread, all released at once; seconds until the last one ends."""
    errors: list[BaseException] = []
    gate = threading.Barrier(len(work) + 1)

    def run(job: Callable[[], object]) -> None:
        gate.wait()
        try:
            job()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def renewal(registry: Registry, *, racers: int, now: dt.datetime) -> tuple[float, Counter[RenewalOutcome]]:
    """Seconds for `racers` concurrent `renew_member_tokens` over the whole set, and their outcomes added up."""
    outcomes: Counter[RenewalOutcome] = Counter()
    lock = threading.Lock()

    def renew() -> None:
        done = renew_member_tokens(registry, tenants=[TENANT], settings=SETTINGS, now=now)
        assert done.problem is None, done.problem
        with lock:
            outcomes.update(done.outcomes)

    return timed_threads([renew] * racers), outcomes


def describe(per_token: Counter[int], *, runs: int) -> str:
    """`{1: 10000}`: how many tokens this run refreshed how many times (`per_token` counts every run so far)."""
    return str({refreshes - (runs - 1): count for refreshes, count in sorted(per_token.items())})


def lost_tokens(registry: Registry, users: Sequence[str], *, after: dt.datetime) -> int:
    """Members whose row does not carry a token issued by the renewal (or has no refresh token left)."""
    rows = {row.user_id: row for row in registry.fetch_user_tokens(tenant=TENANT, server=SERVER)}
    return sum(
        1
        for user in users
        if (row := rows.get(user)) is None
        or row.issued_at is None
        or row.issued_at < after
        or row.refresh_token_ref is None
    )


def run_backend(backend: str, child: Child, *, tokens: int, racers: int) -> tuple[list[str], bool]:
    """The measurements on one backend: printed lines, and whether everything was correct."""
    lines: list[str] = []
    correct = True
    with tempfile.TemporaryDirectory() as tmp:
        admin = None
        database = ""
        if backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'refresh.db'}"
        else:
            admin = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
            database = f"mcpr_refresh_{secrets.token_hex(4)}"
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
            url = sa.make_url(POSTGRES_ADMIN).set(database=database).render_as_string(hide_password=False)
        registry = open_registry(url)
        try:
            key = base64.urlsafe_b64decode(os.environ[KEY_ENV])
            resource = f"{child.issuer}/mcp"
            with registry.transaction() as tx:
                tx.ensure_tenants([TenantRecord(slug=TENANT, namespace=f"{TENANT}-ns")])
                tx.insert(
                    [
                        ServerRecord(
                            tenant=TENANT,
                            name=SERVER,
                            url=resource,
                            auth_type="oauthAuthorizationCode",
                            auth={"pkce": "public", "clientId": CLIENT_ID},
                            allow_private=True,
                        )
                    ]
                )
            run_id = secrets.token_hex(3)
            started = time.perf_counter()
            users = populate(registry, key, child, tokens=tokens, prefix=f"{backend}-{run_id}-m", resource=resource)
            print(f"[{backend}] {tokens} member tokens stored in {time.perf_counter() - started:.1f} s", flush=True)

            runs = ((1, "bulk renewal (1 renewer)", 1), (2, f"race ({racers} renewers)", racers))
            for run, label, senders in runs:
                base = baseline(
                    child,
                    registry,
                    tokens=tokens,
                    senders=senders,
                    prefix=f"{backend}-{run_id}-b{senders}-",
                    resource=resource,
                )
                requests_before, metadata_before, _ = child.refreshes("-", [])
                # Each run renews the set in the state the previous one left: move the clock to 85% of the lifetime
                # of the tokens it holds now.
                now = dt.datetime.now(dt.UTC) + LIFETIME * DUE_AT
                marker = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
                elapsed, outcomes = renewal(registry, racers=senders, now=now)
                requests_after, metadata_after, per_token = child.refreshes(f"{backend}-{run_id}-m", users)
                sent = requests_after - requests_before
                expected = Counter({run: tokens})
                twice = sum(count for refreshes, count in per_token.items() if refreshes > run)
                lost = lost_tokens(registry, users, after=marker)
                ok = twice == 0 and lost == 0 and per_token == expected and sent == tokens
                correct = correct and ok
                ratio = elapsed / base if base else float("inf")
                lines += [
                    f"[{backend}] {label}",
                    f"  renewal                    {elapsed:8.2f} s   {tokens / elapsed:8.0f} tokens/s   outcomes "
                    + ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items())),
                    f"  baseline (bare grants, {senders}x) {base:8.2f} s   {tokens / base:8.0f} tokens/s",
                    f"  ratio renewal / baseline   {ratio:8.2f}x  (target <= {RATIO_TARGET}x)"
                    + ("" if ratio <= RATIO_TARGET else "  MISSED"),
                    f"  token requests per token   {sent / tokens:8.3f}   (target 1; distribution of this run's "
                    f"refreshes per token: {describe(per_token, runs=run)})" + ("" if ok else "  FAILED"),
                    f"  metadata requests          {metadata_after - metadata_before:8d}   (the issuer's RFC 8414 "
                    "document: once per renewer and run)",
                    f"  refreshed twice / lost     {twice} / {lost}" + ("" if twice == lost == 0 else "  FAILED"),
                ]
                print("\n".join(lines[-7:]), flush=True)
        finally:
            registry.close()
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
                admin.dispose()
    return lines, correct


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--racers", type=int, default=4, help="concurrent renewers in the race")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    unknown = set(backends) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}")
    os.environ.setdefault(KEY_ENV, base64.urlsafe_b64encode(os.urandom(32)).decode())
    child = Child()
    report: list[str] = []
    correct = True
    try:
        for backend in backends:
            lines, ok = run_backend(backend, child, tokens=args.tokens, racers=args.racers)
            report += lines
            correct = correct and ok
    finally:
        child.close()
    print()
    print(f"{args.tokens} member tokens past {DUE_AT:.0%} of their lifetime; {os.cpu_count()} cores")
    print("\n".join(report))
    if not correct:
        print("\nFAILED: a token was refreshed more than once, or lost")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
