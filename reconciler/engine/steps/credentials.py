"""The credentials step, on both sides of apply; the loop in `reconciling.py` and the operator call it.

Before apply (`check_credentials`): a changed Secret is proven against the live server before any row points at
its new fingerprint (unverified rotations are held back in the plan), and the OAuth clients of servers about to
be deleted are released. After apply (`prepare_pass`): OAuth tokens are minted or refreshed and clients
registered for the servers about to be probed. The credentials package decides; `engine/crediting.py` performs
(one OAuth server's exchanges in `engine/authorizing.py`); this module hands them the pass.
"""

from __future__ import annotations

from reconciler.engine import crediting
from reconciler.engine.steps.passing import Pass
from reconciler.registry import Registry


def check_credentials(current: Pass, registry: Registry) -> None:
    """Rotations verified (network) and deleted servers' OAuth clients released, with or without probing."""
    if current.probe is not None:
        current.report.plan, current.credential_step = crediting.before_apply(
            current.plan,
            objects=current.objects,
            registry=registry,
            secrets=current.desired.secrets,
            settings=current.probe.settings,
        )
    # Not tied to probing: deleting a server must not leave its OAuth client registered or its sealed values.
    network = current.probe.settings if current.probe is not None else current.settings.network
    current.report.warnings += crediting.release_deleted(
        current.plan.actions, registry=registry, secrets=current.desired.secrets, settings=network
    )


def prepare_pass(current: Pass, registry: Registry) -> None:
    """OAuth credentials for the servers about to be probed (authorization servers and short transactions)."""
    if current.probe is None or not current.jobs:
        return
    current.prepared = crediting.prepare_credentials(
        current.jobs,
        options=current.probe,
        registry=registry,
        secrets=current.desired.secrets,
        states=current.probe_states,
        step=current.credential_step,
    )
