"""A pass of the reconcile loop as a value, and the two objects through which a driver says what differs.

`Pass` is created by `reconciling.plan_pass` and filled in by each step module in turn (`observe`, `plan`,
`credentials`, `apply`, `probe`, `report`); each step reads what the steps before it wrote. The engine never asks
which driver called it: what differs between the folder and the cluster is injected as a `Scope` (which objects a
pass covers, what may be pruned, the fast path, how a concurrent writer is met) and a `StatusSink` (where the
previous statuses come from and where the new ones go). `steps/scopes.py` and `steps/sinks.py` hold both drivers'
implementations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from reconciler.api.server import OAuthHealth
from reconciler.engine.desired import DesiredObject
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.planning import Action, Plan, Verb
from reconciler.errors import MissingReference
from reconciler.probe import ProbeSettings
from reconciler.registry import Registry, RegistryTransaction
from reconciler.registry.errors import ConcurrentChange
from reconciler.registry.managers import DEFAULT_MANAGER
from reconciler.registry.records import (
    ObservedState,
    ProbeStateRecord,
    RowKey,
    RowSelection,
    SourceRef,
    ToolSnapshotRecord,
)

if TYPE_CHECKING:
    # Types of the fields the credentials and probe steps fill in: a dry run (`plan`) never imports those steps,
    # nor the mcp SDK and the HTTP client behind them.
    from reconciler.credentials import CredentialFailure, PreparedCredentials
    from reconciler.engine.probing import ProbeJob, ProbeOptions
    from reconciler.probe import ProbeResult


@dataclass(frozen=True)
class RotationCheck:
    action: Action
    outcome: str
    """`verified`, `rejected` or `inconclusive` (server unreachable: no evidence either way)."""
    message: str


@dataclass
class CredentialStep:
    """What the credentials step found, for status and audit."""

    rotations: dict[RowKey, RotationCheck] = field(default_factory=dict)
    client_rotations: dict[tuple[str, str], str] = field(default_factory=dict)
    """Dynamically registered clients replaced this run: (tenant, server) → what happened."""


@dataclass(frozen=True)
class EngineSettings:
    manager: str = DEFAULT_MANAGER
    prune: bool = True
    network: ProbeSettings = field(default_factory=ProbeSettings)
    """Limits and the private-network switch for requests made without probing: RFC 7592 deregistration of a
    deleted server's OAuth client (`apply --no-probe`, the operator's finalizer)."""


@dataclass
class ObjectResult:
    obj: DesiredObject
    action: Action
    generation: int
    status: dict[str, Any]
    status_changed: bool


@dataclass
class ReconcileReport:
    plan: Plan
    results: list[ObjectResult] = field(default_factory=list)
    applied: bool = False
    warnings: list[str] = field(default_factory=list)
    probed: list[tuple[DesiredObject, ProbeResult]] = field(default_factory=list)

    @property
    def removals(self) -> list[Action]:
        return [action for action in self.plan.actions if action.verb in (Verb.DELETE, Verb.ORPHAN)]


class StatusSink(Protocol):
    """Where a pass's statuses come from and go to: the registry's `resources` copies (CLI) or the API server's
    status subresource, which the driver patches from the pass's results (operator). One sink serves one pass."""

    def read(self, registry: Registry, *, tenants: frozenset[str] | None) -> None:
        """Observe: read the statuses stored before this pass, if the sink keeps any."""

    def standing(self, obj: DesiredObject, action: Action, *, spec_hash: str, probed: bool) -> ObjectResult | None:
        """The result of an object whose stored status still holds as it is, or None to build it afresh."""

    def previous_of(self, obj: DesiredObject, *, spec_hash: str) -> tuple[int, Mapping[str, Any] | None]:
        """The generation this pass reports for `obj`, and its status before this pass."""

    def keep(self, obj: DesiredObject, *, spec_hash: str, status: dict[str, Any], generation: int) -> None:
        """Take note of a status built afresh, to be written with the next transaction."""

    def write_with_rows(self, transaction: RegistryTransaction, current: Pass) -> None:
        """Inside the apply transaction, after the rows: report statuses now if they commit with the rows."""

    def write_with_results(self, transaction: RegistryTransaction) -> None:
        """Inside a report transaction: write what `keep` noted since the last write."""


class Scope(Protocol):
    """What one pass covers and how it treats the rest: the CLI's whole folder (everything, pruning what is gone
    from it) or the operator's objects of one batch (those only, pruning nothing)."""

    def status_sink(self, *, now: dt.datetime) -> StatusSink:
        """A fresh sink for one pass starting at `now`."""

    def narrow(self, current: Pass, registry: Registry) -> None:
        """Before anything is built: finish the pass at once when nothing moved, or read fewer tenants."""

    def select(
        self, objects: Sequence[DesiredObject], *, tenants: frozenset[str] | None
    ) -> tuple[list[DesiredObject], frozenset[str] | None]:
        """The objects this pass reconciles, and the tenants whose rows it reads (None: all)."""

    def rows(self, everything: Sequence[DesiredObject]) -> RowSelection | None:
        """Which rows of those tenants the pass reads for its input `everything` (None: all of them)."""

    def prunes(self, settings: EngineSettings) -> bool:
        """Whether rows of objects missing from the pass's input are deleted or orphaned."""

    def missing_reference(self, error: MissingReference) -> NoReturn:
        """A referenced row is missing from the registry at apply time: raise what the driver expects."""

    def concurrent_change(self, error: ConcurrentChange, *, attempt: int) -> None:
        """Another writer changed the rows after they were observed: return to run the pass again, or raise."""

    def remember(self, transaction: RegistryTransaction, current: Pass, *, stamp: int | None) -> None:
        """At the end of a whole pass, in its last transaction: what the next pass's `narrow` reads."""


@dataclass
class Pass:
    """One pass of the loop; each step fills in what the next one reads (see `steps/__init__.py`)."""

    desired: DesiredInput
    settings: EngineSettings
    now: dt.datetime
    scope: Scope
    sink: StatusSink
    probe: ProbeOptions | None
    report: ReconcileReport
    dry_run: bool = False
    done: bool = False
    """Nothing left to do: the fast path proved nothing moved, or it was a dry run. `report` is the outcome."""
    objects: list[DesiredObject] = field(default_factory=list)
    """The objects this pass reconciles and reports."""
    written: list[DesiredObject] = field(default_factory=list)
    """What the plan covers: `objects` and the companions whose rows must be written beside them."""
    read_tenants: frozenset[str] | None = None
    """Tenants whose rows are read (and so planned and pruned); None: all."""
    skipped: int = 0
    """Objects of unread tenants: known up to date (their tenants' change stamps did not move)."""
    digest: str | None = None
    stamp_before: int | None = None
    had_marker: bool = False
    observed: ObservedState | None = None
    credential_step: CredentialStep = field(default_factory=CredentialStep)
    actions: dict[SourceRef, Action] = field(default_factory=dict)
    row_ids: Mapping[RowKey, int] = field(default_factory=dict)
    stamp_locked: int | None = None
    stamp_applied: int | None = None
    probe_states: dict[tuple[str, str], ProbeStateRecord] = field(default_factory=dict)
    snapshots: dict[tuple[str, str], list[ToolSnapshotRecord]] = field(default_factory=dict)
    jobs: list[ProbeJob] = field(default_factory=list)
    prepared: dict[tuple[str, str], PreparedCredentials | CredentialFailure] = field(default_factory=dict)
    reported: set[SourceRef] = field(default_factory=set)
    """Objects whose status this pass has built already: a later report rebuilds one only if it was probed."""
    oauth: dict[tuple[str, str], OAuthHealth] = field(default_factory=dict)
    """`status.oauth` of each authorization-code server of the pass, by (tenant, server): its members' tokens
    tallied by the observe step in one query."""
    connected_members: dict[tuple[str, str, str | None], int] | None = None
    """Members who stored their own token, by (tenant, server, connection), counted by the observe step in one
    query when the pass has a per-member connection (None otherwise): `status.connectedMembers`."""

    @property
    def plan(self) -> Plan:
        return self.report.plan

    @property
    def unprobed(self) -> frozenset[SourceRef]:
        """The objects whose status does not wait for a probe: reportable right after apply."""
        probed = {job.obj.source for job in self.jobs}
        return frozenset(obj.source for obj in self.objects if obj.source not in probed)

    def finish(self, report: ReconcileReport) -> None:
        """End the pass here with `report` as its outcome."""
        self.report = report
        self.done = True
