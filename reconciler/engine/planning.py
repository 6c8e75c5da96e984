"""The pure planner: desired rows + observed rows → ordered actions with field-level diffs. No I/O.

Called by the reconcile loop (CLI and operator alike) and by `plan`; everything it needs is passed in, so
it is tested table-driven: (desired, observed) → expected actions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.api.server import immutable_message
from reconciler.registry.records import (
    TABLES,
    BindingRecord,
    ObservedState,
    Record,
    RowKey,
    RowSelection,
    ServerRecord,
    SourceRef,
    key_of,
)

# Record column of each immutable spec path; a test keeps it covering `IMMUTABLE_SERVER_FIELDS`.
IMMUTABLE_COLUMNS: dict[str, str] = {"transport": "transport", "auth.type": "auth_type"}


class Verb(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPAIR = "repair"
    ADOPT = "adopt"
    DELETE = "delete"
    ORPHAN = "orphan"
    CONFLICT = "conflict"
    NOOP = "noop"


WRITING_VERBS = frozenset({Verb.CREATE, Verb.UPDATE, Verb.REPAIR, Verb.ADOPT, Verb.DELETE, Verb.ORPHAN})


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Action:
    verb: Verb
    key: RowKey
    source: SourceRef | None
    desired: Record | None = None
    observed: Record | None = None
    changes: tuple[FieldChange, ...] = ()
    message: str = ""

    @property
    def writes(self) -> bool:
        return self.verb in WRITING_VERBS

    @property
    def table(self) -> str:
        return self.key[0]


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]
    warnings: tuple[str, ...] = ()
    unchanged: int = 0
    """Objects known to be up to date without planning them one by one (the resync fast path)."""

    @property
    def has_changes(self) -> bool:
        return any(action.writes for action in self.actions)

    @property
    def conflicts(self) -> tuple[Action, ...]:
        return tuple(action for action in self.actions if action.verb is Verb.CONFLICT)

    def counts(self) -> Counter[str]:
        counts = Counter(str(action.verb) for action in self.actions)
        if self.unchanged:
            counts["noop"] += self.unchanged
        return counts

    @property
    def clean(self) -> bool:
        """After applying it, would a rerun plan nothing to report: no conflicts, no unrepaired drift, no warnings?"""
        return not self.warnings and not any(
            action.verb is Verb.CONFLICT or (action.verb is Verb.NOOP and (action.changes or action.message))
            for action in self.actions
        )

    def for_source(self, source: SourceRef) -> Action | None:
        for action in self.actions:
            if action.source == source:
                return action
        return None


@dataclass(frozen=True)
class PlanOptions:
    """Per-run choices: who we are, what may be pruned, which rows to adopt or only observe."""

    manager: str
    prune: bool = True
    adopt: Collection[RowKey] = field(default_factory=frozenset)
    observe_only: Collection[RowKey] = field(default_factory=frozenset)
    prune_tenants: Collection[str] | None = None
    """Limit pruning to these tenants (None: every tenant of this manager)."""


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """Field-level differences as dotted paths (`headers[0].value`), sorted for stable output."""
    # Imported here: deepdiff costs every `plan` and resync start-up, and only rows that differ are diffed.
    from deepdiff import DeepDiff

    # Rows differ in a field or two of some twenty: only those are handed to DeepDiff, whose cost is per value
    # visited. A field left out is the same on both sides, types included, so it would have reported nothing. Equal
    # fields are added back only as needed to keep the share of keys both sides have above DeepDiff's threshold,
    # under which it reports the whole mapping as one change: it then decides as it would over the whole rows.
    fields = list({**before, **after})
    equal = [key for key in fields if _same(before.get(key, _ABSENT), after.get(key, _ABSENT))]
    differing = [key for key in fields if key not in equal]
    shared = sum(1 for key in differing if key in before and key in after)
    ballast = 0
    while ballast < len(equal) and not _diffs_deeper(shared + ballast, len(differing) + ballast):
        ballast += 1
    compared = differing + equal[:ballast]
    diff = DeepDiff(
        {key: before[key] for key in compared if key in before},
        {key: after[key] for key in compared if key in after},
        ignore_order=False,
        view="tree",
        verbose_level=2,
        threshold_to_diff_deeper=DIFF_DEEPER_THRESHOLD,
    )
    changes: dict[str, FieldChange] = {}
    for report in diff.values():
        for level in report:
            path = _format_path(level.path(output_format="list"))
            before_value = None if _missing(level.t1) else level.t1
            after_value = None if _missing(level.t2) else level.t2
            changes[path] = FieldChange(path, before_value, after_value)
    return tuple(changes[path] for path in sorted(changes))


_ABSENT = object()
DIFF_DEEPER_THRESHOLD = 0.33
"""DeepDiff's `threshold_to_diff_deeper` (its default, stated): mappings sharing a smaller share of their keys are
reported as one change of the whole, not key by key."""


def _diffs_deeper(shared_keys: int, all_keys: int) -> bool:
    """DeepDiff's own test, for mappings with `all_keys` keys in all of which `shared_keys` are in both."""
    return all_keys <= 1 or shared_keys / all_keys >= DIFF_DEEPER_THRESHOLD


def _same(left: Any, right: Any) -> bool:
    """Equal and of the same types all the way down (`1 == 1.0 == True` for Python, not for DeepDiff)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(value, right[key]) for key, value in left.items())
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def _missing(value: Any) -> bool:
    return type(value).__name__ == "NotPresent"


def _format_path(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _order(action: Action) -> tuple[int, int, str, str]:
    table_index = TABLES.index(action.key[0])
    removing = action.verb in (Verb.DELETE, Verb.ORPHAN)
    # Removals run after everything else, children before parents; the rest parents before children.
    return (1 if removing else 0, -table_index if removing else table_index, action.key[1], action.key[2])


def plan_changes(
    desired: Iterable[tuple[Record, SourceRef]],
    observed: ObservedState,
    *,
    options: PlanOptions,
) -> Plan:
    """Compare desired rows with observed rows. Only rows this manager owns are ever changed or pruned."""
    actions: list[Action] = []
    warnings: list[str] = []
    desired = list(desired)
    wanted: set[RowKey] = {key_of(record) for record, _ in desired}
    managed = _managed_servers(desired, observed, wanted=wanted, options=options)
    published = _published_keys(desired, observed, wanted=wanted, options=options)
    for record, source in desired:
        key = key_of(record)
        action = _plan_one(record, source, observed.get(key), key=key, options=options)
        if isinstance(record, ServerRecord) and action.verb is not Verb.CONFLICT:
            refusal = _server_refusal(record, observed.get(key), managed=managed, published=published)
            if refusal:
                action = Action(Verb.CONFLICT, key, source, desired=record, observed=action.observed, message=refusal)
        actions.append(action)
        if isinstance(record, ServerRecord) and record.owner_kind is not None:
            warnings.extend(_duplicates_of_managed(record, observed))
    if options.prune:
        for key, row in observed.rows.items():
            owned = row.ownership.manager == options.manager
            in_scope = options.prune_tenants is None or key[1] in options.prune_tenants
            if key in wanted or not owned or not in_scope:
                continue
            verb = Verb.ORPHAN if row.ownership.deletion_policy == "Orphan" else Verb.DELETE
            message = "object is gone; deletionPolicy Orphan keeps the row unmanaged" if verb is Verb.ORPHAN else ""
            actions.append(Action(verb, key, row.ownership.source, observed=row, message=message))
    actions.sort(key=_order)
    return Plan(actions=tuple(actions), warnings=tuple(warnings))


def _plan_one(record: Record, source: SourceRef, row: Record | None, *, key: RowKey, options: PlanOptions) -> Action:
    observe_only = key in options.observe_only
    if row is None:
        if observe_only:
            return Action(Verb.NOOP, key, source, desired=record, message="ObserveOnly: no registry row to observe")
        return Action(Verb.CREATE, key, source, desired=record)
    ownership = row.ownership
    if ownership.manager is None:
        if key in options.adopt and not observe_only:
            changes = field_changes(row.content(), record.content())
            return Action(Verb.ADOPT, key, source, desired=record, observed=row, changes=changes)
        return Action(
            Verb.CONFLICT,
            key,
            source,
            desired=record,
            observed=row,
            message=f"a {key[0]} row named {key[2]!r} already exists in tenant {key[1]!r} and is not managed by "
            f'{options.manager}; set the annotation mcp.reconciler.dev/adopt: "true" to take it over',
        )
    if ownership.manager != options.manager:
        return Action(
            Verb.CONFLICT,
            key,
            source,
            desired=record,
            observed=row,
            message=f"the {key[0]} row {key[1]}/{key[2]} is managed by {ownership.manager!r}",
        )
    if ownership.source is not None and ownership.source != source:
        other = ownership.source
        return Action(
            Verb.CONFLICT,
            key,
            source,
            desired=record,
            observed=row,
            message=f"the {key[0]} row {key[1]}/{key[2]} is managed by {other.kind} {other.namespace}/{other.name}",
        )
    desired_hash = record.ownership.spec_hash
    policy_changed = ownership.deletion_policy != record.ownership.deletion_policy
    # Field equality first: records compare their content only, and it spares hashing 10,000 rows per resync.
    if not policy_changed and row == record and ownership.spec_hash == desired_hash:
        return Action(Verb.NOOP, key, source, desired=record, observed=row)
    row_hash = row.content_hash()
    if row_hash == desired_hash and not policy_changed:
        return Action(Verb.NOOP, key, source, desired=record, observed=row)
    changes = field_changes(row.content(), record.content())
    if policy_changed:
        changes += (FieldChange("deletionPolicy", ownership.deletion_policy, record.ownership.deletion_policy),)
    verb = Verb.REPAIR if ownership.spec_hash == desired_hash and row_hash != desired_hash else Verb.UPDATE
    if verb is Verb.UPDATE and not observe_only and isinstance(record, ServerRecord):
        refused = _immutable_changes(record, row)
        if refused:
            # The CRD's CEL rule refuses this at the API server (1.25+); the CLI and older clusters get it here.
            return Action(
                Verb.CONFLICT,
                key,
                source,
                desired=record,
                observed=row,
                changes=changes,
                message="; ".join(refused),
            )
    if observe_only:
        drifted = ", ".join(change.path for change in changes)
        return Action(
            Verb.NOOP,
            key,
            source,
            desired=record,
            observed=row,
            changes=changes,
            message=f"ObserveOnly: registry differs in {drifted}; not repaired",
        )
    return Action(verb, key, source, desired=record, observed=row, changes=changes)


def _immutable_changes(record: ServerRecord, row: Record) -> list[str]:
    """The refusals for an update that would switch an immutable field in place (a repair may restore one)."""
    return [
        f"{immutable_message(path)} ({getattr(row, column)!r} → {getattr(record, column)!r})"
        for path, column in IMMUTABLE_COLUMNS.items()
        if getattr(row, column) != getattr(record, column)
    ]


def _managed_servers(
    desired: Iterable[tuple[Record, SourceRef]], observed: ObservedState, *, wanted: set[RowKey], options: PlanOptions
) -> dict[tuple[str, str], list[ServerRecord]]:
    """App-owned servers by (tenant, url): the declared ones, plus rows not declared here that stay (another
    manager's, or ours when this plan does not prune them)."""
    found: dict[tuple[str, str], list[ServerRecord]] = {}
    for record, _ in desired:
        if isinstance(record, ServerRecord) and record.owner_kind is not None:
            found.setdefault((record.tenant, record.url), []).append(record)
    for key, row in observed.rows.items():
        if key in wanted or not isinstance(row, ServerRecord) or row.owner_kind is None:
            continue
        if row.ownership.manager is not None and not _pruned(key, row, options):
            found.setdefault((row.tenant, row.url), []).append(row)
    return found


def _pruned(key: RowKey, row: Record, options: PlanOptions) -> bool:
    """Would this plan prune the row if nothing declares it (ours, pruning on, in a pruned tenant)?"""
    in_scope = options.prune_tenants is None or key[1] in options.prune_tenants
    return row.ownership.manager == options.manager and options.prune and in_scope


def _server_refusal(
    record: ServerRecord,
    row: Record | None,
    *,
    managed: Mapping[tuple[str, str], list[ServerRecord]],
    published: Mapping[tuple[str, str], list[tuple[str, Any]]],
) -> str:
    """Why a declared server cannot be written beside the tenant's other servers ("" when it can)."""
    duplicated = _declared_duplicate_of(record, managed)
    if duplicated is not None:
        return (
            f"url {record.url} is the URL of server {duplicated.name} (owned by {duplicated.owner_kind} "
            f"{duplicated.owner_name}); an app-owned server is repaired, never duplicated: change {duplicated.name} "
            f"instead or give this server another URL"
        )
    claimed = _key_id_claimed_by(record, row, published)
    if claimed is not None:
        kid, claimant = claimed
        return (
            f"clientAssertion keyId {kid!r} already names another key in tenant {record.tenant}'s JWKS (server "
            f"{claimant}); an authorization server picks the key by keyId, so give this key another keyId"
        )
    return ""


def _declared_duplicate_of(
    record: ServerRecord, managed: Mapping[tuple[str, str], list[ServerRecord]]
) -> ServerRecord | None:
    """The app-owned server a declared server duplicates (same tenant and URL, another name), if any."""
    return next((other for other in managed.get((record.tenant, record.url), ()) if other.name != record.name), None)


def _duplicates_of_managed(record: ServerRecord, observed: ObservedState) -> list[str]:
    """Hand-made rows pointing at the same URL as an app-owned server (managed rows are repaired, never duplicated)."""
    found = []
    for (table, tenant, name), row in observed.rows.items():
        if table != "servers" or tenant != record.tenant or name == record.name:
            continue
        if row.ownership.manager is None and isinstance(row, ServerRecord) and row.url == record.url:
            found.append(
                f"server row {tenant}/{name} duplicates the managed server {record.name} "
                f"(owned by {record.owner_kind} {record.owner_name}); repair the managed row instead and remove "
                f"the duplicate"
            )
    return found


KEY_PUBLISHING_AUTH = "oauthClientCredentials"
"""The auth type of the servers that may publish a client-assertion key in their tenant's JWKS."""


def rows_consulted(records: Iterable[Record]) -> RowSelection:
    """The observed rows a plan of `records` that prunes nothing consults (`plan_changes`), and the server rows their
    bindings name (the report step reads those): each record's own row, the tenant's server rows at each declared
    server's URL (the app-owned duplicate refusal and the hand-made duplicate warning), and, when a declared server
    publishes a client-assertion key, every row of its tenant that may publish one (the keyId-conflict check)."""
    keys: set[RowKey] = set()
    urls: set[tuple[str, str]] = set()
    publishes = False
    for record in records:
        keys.add(key_of(record))
        if isinstance(record, ServerRecord):
            urls.add((record.tenant, record.url))
            publishes = publishes or _published_key(record) is not None
        elif isinstance(record, BindingRecord):
            keys.update(("servers", record.tenant, bound.server) for bound in record.servers)
    return RowSelection(
        keys=frozenset(keys),
        server_urls=frozenset(urls),
        server_auth_types=frozenset({KEY_PUBLISHING_AUTH}) if publishes else frozenset(),
    )


def _published_key(record: Record | None) -> tuple[str, Any] | None:
    """The (`kid`, JWK) a server publishes in its tenant's CIMD JWKS, if it signs client assertions."""
    if not isinstance(record, ServerRecord):
        return None
    jwk = record.auth.get("clientAssertionPublicKey")
    if record.auth_type != KEY_PUBLISHING_AUTH or not isinstance(jwk, Mapping):
        return None
    kid = jwk.get("kid")
    return (kid, dict(jwk)) if isinstance(kid, str) else None


def _published_keys(
    desired: Iterable[tuple[Record, SourceRef]], observed: ObservedState, *, wanted: set[RowKey], options: PlanOptions
) -> dict[tuple[str, str], list[tuple[str, Any]]]:
    """Every key the tenants' JWKS would list after this plan, by (tenant, kid): (server, JWK) pairs from the
    declared servers and from the rows that stay (hand-made, another manager's, or ours not pruned here)."""
    found: dict[tuple[str, str], list[tuple[str, Any]]] = {}
    for record, _ in desired:
        published = _published_key(record)
        if published is not None:
            found.setdefault((record.tenant, published[0]), []).append((record.name, published[1]))
    for key, row in observed.rows.items():
        published = _published_key(row)
        if key in wanted or published is None:
            continue
        if not _pruned(key, row, options):
            found.setdefault((key[1], published[0]), []).append((key[2], published[1]))
    return found


def _key_id_claimed_by(
    record: ServerRecord, row: Record | None, published: Mapping[tuple[str, str], list[tuple[str, Any]]]
) -> tuple[str, str] | None:
    """The `kid` and the other server whose published key has the `kid` this server's key has, but is another key: an
    authorization server verifying an assertion picks the key by `kid`, so one would sign as the other (or fail).
    A server whose row already publishes this very key keeps it; the newcomer is the conflict."""
    claim = _published_key(record)
    if claim is None or _published_key(row) == claim:
        return None
    kid, jwk = claim
    claimant = next((name for name, other in published.get((record.tenant, kid), ()) if other != jwk), None)
    return None if claimant is None else (kid, claimant)
