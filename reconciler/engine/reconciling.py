"""The one reconcile loop: a pass (`steps.passing.Pass`) flows through observe → plan → credentials → apply →
probe → report, one module per step under `engine/steps/`.

Both drivers use it. The CLI calls `reconcile` over a folder (`WholeSource`: everything, pruning what disappeared);
the operator runs the same steps one at a time for the objects of one batch (`ObjectScope`), so that its registry
threads run only the registry steps and probes wait on its event loop. What differs between them is the scope and
the status sink it brings, never a branch here. Rows are written in one registry transaction and results in
another, and only when something changed: a no-op run issues no INSERT/UPDATE/DELETE at all.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
from typing import TYPE_CHECKING

from reconciler.engine.collector import collection_paused, collection_resumed
from reconciler.engine.inputs import DesiredInput
from reconciler.engine.planning import Plan
from reconciler.engine.steps.observe import observe
from reconciler.engine.steps.passing import EngineSettings, ObjectResult, Pass, ReconcileReport, Scope
from reconciler.engine.steps.plan import plan
from reconciler.engine.steps.scopes import CONCURRENT_ATTEMPTS, WHOLE_SOURCE, ObjectScope, WholeSource
from reconciler.lazy_exports import lazy_exports
from reconciler.registry import Registry
from reconciler.registry.errors import ConcurrentChange

if TYPE_CHECKING:
    from reconciler.engine.probing import ProbeJob, ProbeOptions
    from reconciler.engine.removing import remove_object
    from reconciler.engine.server_testing import ServerTest, test_server
    from reconciler.engine.steps.apply import apply_pass
    from reconciler.engine.steps.credentials import check_credentials, prepare_pass
    from reconciler.engine.steps.probe import probe_pass
    from reconciler.engine.steps.report import report_pass
    from reconciler.probe import ProbeResult

# The steps after plan (credentials, apply, probe, report) bring the mcp SDK, the HTTP client and the credential
# stores with them. A dry run (`plan`) ends after plan, so they are imported when first used: by `run_pass`, or
# by the operator through these names.
_LATER_STEPS = {
    "removing": ["remove_object"],
    "server_testing": ["ServerTest", "test_server"],
    "steps.apply": ["apply_pass"],
    "steps.credentials": ["check_credentials", "prepare_pass"],
    "steps.probe": ["probe_pass"],
    "steps.report": ["report_pass"],
}
__getattr__ = lazy_exports(__name__, _LATER_STEPS, relative_to="reconciler.engine")


def bind_later_steps() -> None:
    """Import the steps after plan and bind their names in this module, where `run_pass` reads them; a name already
    bound (first use done, or a test's stand-in) is kept. A process pays this once: the registry bench calls it
    before its clock, so its cold-apply figure is the apply and not the first import."""
    module = sys.modules[__name__]
    for names in _LATER_STEPS.values():
        for name in names:
            getattr(module, name)


EnginePass = Pass
"""The name the operator knows a pass by."""

__all__ = [
    "CONCURRENT_ATTEMPTS",
    "WHOLE_SOURCE",
    "EnginePass",
    "EngineSettings",
    "ObjectResult",
    "ObjectScope",
    "Pass",
    "ReconcileReport",
    "ServerTest",
    "WholeSource",
    "apply_pass",
    "bind_later_steps",
    "check_credentials",
    "plan_pass",
    "prepare_pass",
    "probe_pass",
    "reconcile",
    "remove_object",
    "report_pass",
    "run_pass",
    "test_server",
]


def reconcile(
    desired: DesiredInput,
    registry: Registry,
    *,
    settings: EngineSettings,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    scope: Scope = WHOLE_SOURCE,
    probe: ProbeOptions | None = None,
) -> ReconcileReport:
    """Make the registry match `desired`; with `dry_run` only plan. Raises PermanentError on bad input.

    The scope says what the pass covers (`WholeSource`, the default: everything, pruning rows of objects gone
    from `desired`; `ObjectScope`: some objects, all of `desired` validated) and how a pass that finds the rows
    changed by another process since it read them is met (run again, a bounded number of times, or raised).
    A pass is short and keeps nearly everything it allocates until it ends, so the cyclic garbage collector is
    paused for it (`collector`); the operator, which runs for days, calls the steps itself and keeps collecting.
    """
    with collection_paused():
        for attempt in range(1, CONCURRENT_ATTEMPTS + 1):
            try:
                started = plan_pass(
                    desired, registry, settings=settings, dry_run=dry_run, now=now, scope=scope, probe=probe
                )
                return run_pass(started, registry)
            except ConcurrentChange as error:
                scope.concurrent_change(error, attempt=attempt)
    raise AssertionError("unreachable: the scope raises on the last attempt")


def plan_pass(
    desired: DesiredInput,
    registry: Registry,
    *,
    settings: EngineSettings,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    scope: Scope = WHOLE_SOURCE,
    probe: ProbeOptions | None = None,
) -> Pass:
    """A new pass observed and planned: registry reads only (the operator runs it on a registry thread)."""
    now = now or dt.datetime.now(dt.UTC)
    current = Pass(
        desired=desired,
        settings=settings,
        now=now,
        scope=scope,
        sink=scope.status_sink(now=now),
        probe=probe,
        report=ReconcileReport(plan=Plan(actions=()), warnings=list(desired.warnings)),
        dry_run=dry_run,
    )
    observe(current, registry)
    if not current.done:
        plan(current)
    return current


def run_pass(current: Pass, registry: Registry) -> ReconcileReport:
    """The rest of the steps in order, on this thread; the report of a pass that is done already as it is."""
    if current.done:
        return current.report
    import anyio

    from reconciler.engine.probing import progress_reporter

    bind_later_steps()
    check_credentials(current, registry)
    apply_pass(current, registry)
    prepare_pass(current, registry)
    results: list[tuple[ProbeJob, ProbeResult]] = []
    if current.jobs and current.probe is not None:
        progress = progress_reporter(current.probe, len(current.jobs))

        def collect(job: ProbeJob, result: ProbeResult) -> None:
            results.append((job, result))
            progress(job.target, result)

        with collection_resumed():  # probes leave garbage per request while waiting on the network
            anyio.run(functools.partial(probe_pass, current, on_result=collect))
    report_pass(current, registry, results)
    return current.report
