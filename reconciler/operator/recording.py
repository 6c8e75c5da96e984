"""What a pass leaves behind: the status patch, the Events it posts and the metrics it counts.

`reconciling.ObjectReconciler` calls `StatusRecorder` at every point of a pass that has something to say (first
sight, pause, the engine's result, a failure, a finalizer that waits for the registry). Status is written only when
it changed, Events only for real changes (`events.plan_events`), and the status last written is remembered per
object, because it is fresher than a body the watch has not caught up with yet.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.api.conditions import ConditionType, Reason
from reconciler.engine.planning import Action, Verb
from reconciler.engine.statuses import conditions as cond
from reconciler.errors import ReconcilerError, RetryableError
from reconciler.operator import statuses
from reconciler.operator.events import EventSink, is_credential_field, plan_events
from reconciler.operator.metrics import OperatorMetrics
from reconciler.operator.objects import ClusterPort, ObjectView


class StatusRecorder:
    """Writes status, posts Events and counts metrics for the passes of one operator process."""

    def __init__(
        self,
        *,
        cluster: ClusterPort,
        events: EventSink,
        metrics: OperatorMetrics,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._cluster = cluster
        self._events = events
        self._metrics = metrics
        self._clock = clock
        self._written: dict[str, dict[str, Any]] = {}
        """Status we last wrote per object: fresher than a body the watch has not caught up with yet."""

    def previous(self, view: ObjectView) -> Mapping[str, Any] | None:
        return self._written.get(view.key, view.status)

    def share(self, entry: dict[str, Any], key: str) -> None:
        """An index entry whose status is the one we last wrote holds our copy rather than an equal one of its own:
        one status per object in memory, not two (nothing changes either copy in place)."""
        written = self._written.get(key)
        if written is not None and entry.get("status") == written:
            entry["status"] = written

    def forget(self, view: ObjectView) -> None:
        self._written.pop(view.key, None)
        if view.source.kind == "MCPServer":
            self._metrics.forget(namespace=view.source.namespace, name=view.source.name)

    def count_outcome(self, view: ObjectView, outcome: str) -> None:
        """One pass ended `paused`, `changed` or `noop` (errors are counted by `record_failure`)."""
        self._metrics.reconciles.labels(view.source.kind, outcome).inc()

    def time_pass(self, view: ObjectView, seconds: float) -> None:
        self._metrics.reconcile_seconds.labels(view.source.kind).observe(seconds)

    async def record_failure(
        self, view: ObjectView, previous: Mapping[str, Any] | None, error: ReconcilerError
    ) -> None:
        reason = getattr(error, "reason", None) or str(Reason.RECONCILE_ERROR)
        status = statuses.failed(
            previous, reason=reason, message=str(error), generation=view.generation, now=self._clock()
        )
        await self.record(view, previous, status)
        self._metrics.reconciles.labels(view.source.kind, "error").inc()
        self._metrics.errors.labels(view.source.kind, reason).inc()

    async def record_removal_failure(self, view: ObjectView, error: RetryableError) -> None:
        """The finalizer cannot reach the registry: say so in status (the finalizer stays and retries)."""
        previous = self.previous(view)
        message = f"deletion waits for the registry: {error}"
        status = statuses.failed(
            previous,
            reason=str(Reason.RECONCILE_ERROR),
            message=message,
            generation=view.generation,
            now=self._clock(),
        )
        await self.record(view, previous, status)
        self._metrics.errors.labels(view.source.kind, str(Reason.RECONCILE_ERROR)).inc()

    async def record(
        self,
        view: ObjectView,
        previous: Mapping[str, Any] | None,
        status: dict[str, Any],
        *,
        action: Action | None = None,
    ) -> None:
        """Write `status` if it differs from what the object has; post Events and count what happened."""
        status = statuses.compact(status)
        for event in plan_events(action, before=previous, after=status):
            self._events.post(view.involved(), event)
        self._count(view, action=action, previous=previous, status=status)
        if previous is not None and dict(previous) == status:
            return
        written = await self._cluster.patch_status(view.source, statuses.merge_patch(previous, status))
        self._metrics.status_writes.labels(view.source.kind).inc()
        if written is not None:
            self._written[view.key] = status

    def _count(
        self,
        view: ObjectView,
        *,
        action: Action | None,
        previous: Mapping[str, Any] | None,
        status: Mapping[str, Any],
    ) -> None:
        kind = view.source.kind
        if action is not None and action.verb is Verb.REPAIR:
            self._metrics.drift_repairs.labels(kind).inc()
        if (
            action is not None
            and action.verb is Verb.UPDATE
            and any(is_credential_field(c.path) for c in action.changes)
        ):
            self._metrics.rotations.labels(kind, "rotated").inc()
        failed_now = cond.find(status.get("conditions"), ConditionType.CREDENTIALS_VALID) or {}
        failed_before = cond.find((previous or {}).get("conditions"), ConditionType.CREDENTIALS_VALID) or {}
        if failed_now.get("reason") == str(Reason.ROTATION_FAILED) and failed_before.get("reason") != str(
            Reason.ROTATION_FAILED
        ):
            self._metrics.rotations.labels(kind, "failed").inc()
        if kind == "MCPServer":
            self._metrics.observe_oauth(namespace=view.source.namespace, name=view.source.name, status=status)
        if kind == "MCPServer" and (previous is None or dict(previous) != status):
            self._metrics.observe_status(
                namespace=view.source.namespace, name=view.source.name, before=previous, after=status
            )
