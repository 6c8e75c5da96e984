"""The probe step: which servers are due (pure, at the end of apply) and probing them (network, async).

`probe_pass` runs on the caller's event loop and touches no registry: the loop in `reconciling.py` runs it under
`anyio.run`, the operator on its own loop under its process-wide bound, so a server that never answers holds no
registry thread. Each result is handed on as it arrives. What is due, and how a result reads, is decided in
`engine/probing.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

from reconciler.engine.crediting import with_credentials
from reconciler.engine.probing import ProbeJob, build_target, connection_records, credential_outcome, needs_probe
from reconciler.engine.steps.passing import Pass
from reconciler.probe import ProbeHttp, ProbeResult, probe_many


def due_jobs(current: Pass) -> list[ProbeJob]:
    """Pure: a probe request for every server of the pass that is due (none without probe options)."""
    probe = current.probe
    if probe is None:
        return []
    connections = connection_records(current.objects)
    return [
        ProbeJob(obj, build_target(obj, connections=connections, secrets=current.desired.secrets))
        for obj in current.objects
        if needs_probe(
            obj,
            current.actions[obj.source],
            current.probe_states.get(obj.key[1:]),
            now=current.now,
            force=probe.force or obj.source in probe.forced,
        )
    ]


async def probe_pass(
    current: Pass,
    *,
    on_result: Callable[[ProbeJob, ProbeResult], None],
    http: ProbeHttp | None = None,
    limiter: anyio.Semaphore | None = None,
) -> None:
    """Probe every job, each as soon as `limiter` lets it (default: the probe settings' concurrency), handing each
    result to `on_result` as it arrives. Network only: no registry access, so it runs on the caller's event loop."""
    if current.probe is None or not current.jobs:
        return
    settings = current.probe.settings
    if http is None:
        async with ProbeHttp() as own:
            return await probe_pass(current, on_result=on_result, http=own, limiter=limiter)
    bound = limiter if limiter is not None else anyio.Semaphore(settings.max_concurrency)

    async def one(job: ProbeJob) -> None:
        prepared = current.prepared.get(job.obj.key[1:])
        async with bound:
            (result,) = await probe_many([with_credentials(job.target, prepared)], settings=settings, http=http)
        on_result(job, credential_outcome(job.obj, result, prepared))

    async with anyio.create_task_group() as tasks:
        for job in current.jobs:
            tasks.start_soon(one, job)
