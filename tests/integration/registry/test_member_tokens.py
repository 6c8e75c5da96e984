"""Members' token sets and the single-flight refresh lease, against SQLite and PostgreSQL (the contract style).

The registry keeps references and non-secret facts only; the lease is one compare-and-set UPDATE, so of many
concurrent claimants exactly one refreshes, and a holder that lost its lease cannot store over a newer token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from reconciler.records import SealedSecret
from reconciler.registry import ConcurrentChange, Registry
from reconciler.registry.records import MemberTokenTally, UserTokenRecord
from tests.integration.registry.samples import full_tenant
from tests.integration.registry.test_contract import write

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=30)
CLAIMANTS = 20
JOIN_SECONDS = 60


def token_set(**fields: object) -> UserTokenRecord:
    values: dict[str, object] = {
        "tenant": "acme",
        "server": "crm",
        "user_id": "alice",
        "secret_ref": "local:acme/member-1#oauth-access-token",
        "refresh_token_ref": "local:acme/member-1#oauth-refresh-token",
        "issued_at": T0,
        "expires_at": T0 + dt.timedelta(hours=1),
        "client_id": "reconciler-client",
        "issuer": "https://as.example.com",
        "scopes": ("mcp:tools", "offline_access"),
    }
    values.update(fields)
    return UserTokenRecord(**values)  # type: ignore[arg-type]


@pytest.fixture
def stored(registry: Registry) -> int:
    write(registry, full_tenant("acme"))
    with registry.transaction() as tx:
        return tx.put_member_token(token_set())


def test_a_token_set_round_trips_and_reaches_resolution(registry: Registry, stored: int) -> None:
    found = registry.fetch_member_token(stored)

    assert found == dataclasses.replace(token_set(), row_id=stored)
    inputs = registry.fetch_resolution_inputs("acme", template=None, user="alice")
    assert inputs is not None
    assert [dataclasses.replace(t, row_id=None) for t in inputs.tokens] == [token_set()]


@pytest.mark.parametrize("connection", [None, "crm-alice"])
def test_storing_again_replaces_the_members_row_in_place(registry: Registry, connection: str | None) -> None:
    write(registry, full_tenant("acme"))
    with registry.transaction() as tx:
        first = tx.put_member_token(token_set(connection=connection))
        other = tx.put_member_token(token_set(connection=connection, user_id="bob"))
    renewed = token_set(connection=connection, expires_at=T0 + dt.timedelta(hours=2), refresh_token_ref=None)
    with registry.transaction() as tx:
        again = tx.put_member_token(renewed)

    assert again == first != other
    assert registry.fetch_member_token(first) == dataclasses.replace(renewed, row_id=first)
    assert len(registry.fetch_user_tokens(tenant="acme", server="crm")) == 2


def test_of_many_concurrent_claimants_exactly_one_holds_the_lease(registry: Registry, stored: int) -> None:
    seen = token_set().expires_at
    barrier = threading.Barrier(CLAIMANTS, timeout=JOIN_SECONDS)

    def claim(index: int) -> bool:
        barrier.wait()
        return registry.claim_token_refresh(
            stored, holder=f"resolver-{index}", seen_expires_at=seen, lease=LEASE, now=T0
        )

    with ThreadPoolExecutor(CLAIMANTS) as pool:
        won = list(pool.map(claim, range(CLAIMANTS), timeout=JOIN_SECONDS))

    assert won.count(True) == 1
    lease = registry.fetch_member_token(stored)
    assert lease is not None and lease.refresh_lease_until == T0 + LEASE


def test_a_claimant_with_a_stale_view_or_during_a_live_lease_gets_nothing(registry: Registry, stored: int) -> None:
    seen = token_set().expires_at
    stale = T0 - dt.timedelta(hours=5)

    assert not registry.claim_token_refresh(stored, holder="a", seen_expires_at=stale, lease=LEASE, now=T0)
    assert registry.claim_token_refresh(stored, holder="a", seen_expires_at=seen, lease=LEASE, now=T0)
    assert not registry.claim_token_refresh(stored, holder="b", seen_expires_at=seen, lease=LEASE, now=T0 + LEASE / 2)
    # a holder that died: its lease runs out and another claimant takes over
    assert registry.claim_token_refresh(stored, holder="b", seen_expires_at=seen, lease=LEASE, now=T0 + LEASE)


def test_the_holder_stores_the_renewed_token_and_releases_the_lease(registry: Registry, stored: int) -> None:
    seen = token_set().expires_at
    assert registry.claim_token_refresh(stored, holder="a", seen_expires_at=seen, lease=LEASE, now=T0)
    renewed_at = T0 + dt.timedelta(minutes=50)

    with registry.transaction() as tx:
        tx.store_refreshed_token(
            stored,
            holder="a",
            secret_ref="local:acme/member-1#oauth-access-token",
            issued_at=renewed_at,
            expires_at=renewed_at + dt.timedelta(hours=1),
            refresh_token_ref="local:acme/member-1#oauth-refresh-token",
            scopes=("mcp:tools",),
        )

    found = registry.fetch_member_token(stored)
    assert found is not None
    assert (found.issued_at, found.expires_at, found.scopes) == (
        renewed_at,
        renewed_at + dt.timedelta(hours=1),
        ("mcp:tools",),
    )
    assert found.refresh_lease_until is None
    # the next refresh is claimable by whoever read the renewed expiry, and by nobody with the old one
    assert not registry.claim_token_refresh(stored, holder="b", seen_expires_at=seen, lease=LEASE, now=renewed_at)
    assert registry.claim_token_refresh(
        stored, holder="b", seen_expires_at=found.expires_at, lease=LEASE, now=renewed_at
    )


def test_a_holder_that_lost_its_lease_stores_nothing_not_even_sealed_values(registry: Registry, stored: int) -> None:
    seen = token_set().expires_at
    assert registry.claim_token_refresh(stored, holder="slow", seen_expires_at=seen, lease=LEASE, now=T0)
    assert registry.claim_token_refresh(stored, holder="fast", seen_expires_at=seen, lease=LEASE, now=T0 + LEASE)
    sealed = SealedSecret(tenant="acme", name="member-1", purpose="oauth-access-token", ciphertext="c", key_id="k")

    with pytest.raises(ConcurrentChange), registry.transaction() as tx:
        tx.put_local_secrets([sealed])
        tx.store_refreshed_token(
            stored, holder="slow", secret_ref="x", issued_at=T0, expires_at=None, refresh_token_ref=None
        )

    assert registry.fetch_local_secret("acme", "member-1", "oauth-access-token") is None
    assert registry.fetch_member_token(stored) == dataclasses.replace(
        token_set(), row_id=stored, refresh_lease_until=T0 + 2 * LEASE
    )


@pytest.mark.parametrize("forget", [False, True])
def test_a_failed_refresh_releases_the_lease_and_invalid_grant_forgets_the_refresh_token(
    registry: Registry, stored: int, forget: bool
) -> None:
    seen = token_set().expires_at
    assert registry.claim_token_refresh(stored, holder="a", seen_expires_at=seen, lease=LEASE, now=T0)

    with registry.transaction() as tx:
        assert not tx.release_token_refresh(stored, holder="b", forget_refresh_token=forget)
        assert tx.release_token_refresh(stored, holder="a", forget_refresh_token=forget)

    found = registry.fetch_member_token(stored)
    assert found is not None and found.refresh_lease_until is None
    assert found.refresh_token_ref == (None if forget else token_set().refresh_token_ref)


@pytest.fixture
def members(registry: Registry) -> list[int]:
    """Four members' token rows of one server, all expiring at `token_set()`'s expiry."""
    write(registry, full_tenant("acme"))
    with registry.transaction() as tx:
        return [tx.put_member_token(token_set(user_id=f"member-{index}")) for index in range(4)]


def test_a_batch_claim_takes_only_the_free_rows_that_still_expire_when_seen(
    registry: Registry, members: list[int]
) -> None:
    seen = token_set().expires_at
    assert seen is not None
    free, stale, held, ran_out = members
    assert registry.claim_token_refresh(held, holder="a-runtime", seen_expires_at=seen, lease=LEASE * 4, now=T0)
    assert registry.claim_token_refresh(ran_out, holder="dead", seen_expires_at=seen, lease=LEASE / 2, now=T0)
    claims = {free: seen, stale: seen - dt.timedelta(hours=5), held: seen, ran_out: seen}

    claimed = registry.claim_token_refreshes(claims, holder="batch", lease=LEASE, now=T0 + LEASE)

    assert claimed == {free, ran_out}
    leases = {row_id: registry.fetch_member_token(row_id) for row_id in members}
    assert {row_id: found.refresh_lease_until for row_id, found in leases.items() if found is not None} == {
        free: T0 + 2 * LEASE,
        stale: None,
        held: T0 + 4 * LEASE,
        ran_out: T0 + 2 * LEASE,
    }
    assert registry.claim_token_refreshes({}, holder="batch", lease=LEASE, now=T0) == set()


def test_of_many_concurrent_batch_claimants_each_row_goes_to_exactly_one(
    registry: Registry, members: list[int]
) -> None:
    seen = token_set().expires_at
    assert seen is not None
    barrier = threading.Barrier(CLAIMANTS, timeout=JOIN_SECONDS)

    def claim(index: int) -> set[int]:
        # Overlapping batches, in different orders: every row is wanted by most claimants.
        batch = members[index % 4 :] + members[: index % 4]
        barrier.wait()
        return registry.claim_token_refreshes(
            dict.fromkeys(batch[: 2 + index % 3], seen), holder=f"run-{index}", lease=LEASE, now=T0
        )

    with ThreadPoolExecutor(CLAIMANTS) as pool:
        won = list(pool.map(claim, range(CLAIMANTS), timeout=JOIN_SECONDS))

    assert sorted(row_id for claimed in won for row_id in claimed) == sorted(members), "each row claimed once"


def test_a_batch_stores_only_the_rows_whose_lease_is_still_its_own(registry: Registry, members: list[int]) -> None:
    seen = token_set().expires_at
    assert seen is not None
    kept, lost, failed, _ = members
    assert registry.claim_token_refreshes(dict.fromkeys([kept, lost, failed], seen), holder="slow", lease=LEASE, now=T0)
    # the batch outlived its lease on `lost`, and a runtime took that token over
    assert registry.claim_token_refresh(lost, holder="fast", seen_expires_at=seen, lease=LEASE, now=T0 + LEASE)
    renewed_at = T0 + dt.timedelta(minutes=50)

    def renewed(row_id: int) -> UserTokenRecord:
        stored = registry.fetch_member_token(row_id)
        assert stored is not None
        return dataclasses.replace(
            stored,
            secret_ref="local:acme/renewed#oauth-access-token",
            issued_at=renewed_at,
            scopes=("mcp:tools",),
            expires_at=renewed_at + dt.timedelta(hours=1),
        )

    wanted = {row_id: renewed(row_id) for row_id in (kept, lost)}
    with registry.transaction() as tx:
        stored = tx.store_refreshed_tokens(list(wanted.values()), holder="slow")
        assert tx.release_token_refreshes([lost, failed], holder="slow") == 1

    assert stored == {kept}
    after = {row_id: registry.fetch_member_token(row_id) for row_id in (kept, lost, failed)}
    assert after[kept] == dataclasses.replace(wanted[kept], refresh_lease_until=None)
    assert after[lost] == dataclasses.replace(
        token_set(user_id="member-1"), row_id=lost, refresh_lease_until=T0 + 2 * LEASE
    ), "the runtime's lease and the token it is renewing are left alone"
    assert after[failed] == dataclasses.replace(token_set(user_id="member-2"), row_id=failed)


def _sealed(name: str, purpose: str) -> SealedSecret:
    return SealedSecret(tenant="acme", name=name, purpose=purpose, ciphertext="sealed", key_id="k")


@pytest.mark.parametrize(
    ("table", "name", "gone"), [("servers", "crm", {"m1", "m2"}), ("connections", "crm-alice", {"m2"})]
)
def test_deleting_a_server_or_connection_deletes_its_members_tokens_and_sealed_values(
    registry: Registry, table: str, name: str, gone: set[str]
) -> None:
    write(registry, full_tenant("acme"))
    with registry.transaction() as tx:
        tx.put_local_secrets(
            [
                _sealed(owner, purpose)
                for owner in ("m1", "m2", "m3", "crm")
                for purpose in ("oauth-access-token", "oauth-refresh-token")
            ]
        )
        for owner, user, connection, server in (
            ("m1", "alice", None, "crm"),
            ("m2", "bob", "crm-alice", "crm"),
            ("m3", "carol", None, "wiki"),
        ):
            tx.put_member_token(
                token_set(
                    user_id=user,
                    connection=connection,
                    server=server,
                    secret_ref=f"local:acme/{owner}#oauth-access-token",
                    refresh_token_ref=f"local:acme/{owner}#oauth-refresh-token",
                )
            )
        tx.put_member_token(token_set(user_id="dave", secret_ref="ns-acme/dave#token", refresh_token_ref=None))

    with registry.transaction() as tx:
        tx.delete([(table, "acme", name)])  # type: ignore[list-item]

    left = {(s.name, s.purpose) for s in registry.fetch_local_secrets("acme")}
    kept = {"m1", "m2", "m3"} - gone
    assert left == {(owner, p) for owner in (*kept, "crm") for p in ("oauth-access-token", "oauth-refresh-token")}
    users = {t.user_id for server in ("crm", "wiki") for t in registry.fetch_user_tokens(tenant="acme", server=server)}
    expected = {"alice", "bob", "carol", "dave"} - ({"alice", "bob", "dave"} if table == "servers" else {"bob"})
    assert users == expected


def test_member_tokens_are_tallied_per_server_in_one_grouped_query(registry: Registry) -> None:
    write(registry, full_tenant("acme"))
    now = T0 + dt.timedelta(days=1)
    with registry.transaction() as tx:
        # alice: renewable and far from expiry; bob: expires in an hour, renewable; carol: expires in an hour with
        # nothing to renew it; dave: expired with nothing to renew it; erin: no expiry known, no refresh token.
        tx.put_member_token(token_set(expires_at=now + dt.timedelta(days=3)))
        tx.put_member_token(token_set(user_id="bob", expires_at=now + dt.timedelta(hours=1)))
        tx.put_member_token(token_set(user_id="carol", expires_at=now + dt.timedelta(hours=1), refresh_token_ref=None))
        tx.put_member_token(token_set(user_id="dave", expires_at=now - dt.timedelta(minutes=1), refresh_token_ref=None))
        tx.put_member_token(token_set(user_id="erin", expires_at=None, refresh_token_ref=None))
        tx.put_member_token(token_set(server="wiki", user_id="alice", expires_at=now - dt.timedelta(hours=2)))

    tallies = registry.tally_member_tokens(
        [("acme", "crm"), ("acme", "wiki"), ("acme", "nobody")], now=now, horizon=now + dt.timedelta(hours=24)
    )

    assert tallies == {
        ("acme", "crm"): MemberTokenTally(connected=5, expiring=2, needs_reauthorization=1, without_refresh_token=3),
        # Expired but renewable: the reconciler or the next resolution refreshes it, nobody has to act.
        ("acme", "wiki"): MemberTokenTally(connected=1),
    }
    assert registry.tally_member_tokens([("acme", "wiki")], now=now, horizon=now) == {
        ("acme", "wiki"): MemberTokenTally(connected=1)
    }
    assert registry.tally_member_tokens([], now=now, horizon=now) == {}
