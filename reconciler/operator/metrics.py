"""Prometheus metrics of one operator process, in a registry of its own (no global state).

The reconcile loop records into `OperatorMetrics`; `serving.py` exposes `render()` at `/metrics`. Names follow
Prometheus conventions under the `mcp_reconciler_` prefix; labels are kinds, reasons and object names, never
values from specs or Secrets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
MEMBER_TOKEN_STATES = {
    "connected": ("connected", "tokens stored"),
    "expiring_24h": ("expiringWithin24h", "expiring within 24 hours"),
    "needs_reauthorization": ("needsReauthorization", "expired with no refresh token"),
    "without_refresh_token": ("withoutRefreshToken", "stored without a refresh token"),
}
"""The gauges `mcp_reconciler_member_tokens_<state>`: the `status.oauth` count each reports, and what it counts."""


class OperatorMetrics:
    """Counters and gauges the reconcile loop feeds; one instance per operator process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.reconciles = Counter(
            "mcp_reconciler_reconciles",
            "Reconcile passes by kind and outcome (noop, changed, paused, error).",
            ["kind", "outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "mcp_reconciler_reconcile_errors",
            "Failed passes by kind and reason (the Synced condition's reason).",
            ["kind", "reason"],
            registry=self.registry,
        )
        self.drift_repairs = Counter(
            "mcp_reconciler_drift_repairs",
            "Registry rows changed behind the operator's back and repaired.",
            ["kind"],
            registry=self.registry,
        )
        self.rotations = Counter(
            "mcp_reconciler_credential_rotations",
            "Credentials rotated in place (result=rotated) or whose rotation failed (result=failed).",
            ["kind", "result"],
            registry=self.registry,
        )
        self.status_writes = Counter(
            "mcp_reconciler_status_writes",
            "Status subresource patches sent.",
            ["kind"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "mcp_reconciler_reconcile_duration_seconds",
            "Duration of one pass, including the registry transaction.",
            ["kind"],
            registry=self.registry,
        )
        self.probe_latency = Histogram(
            "mcp_reconciler_probe_latency_seconds",
            "Latency of the last probe (Test Connection) of a server, as recorded in its status.",
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.tools = Gauge(
            "mcp_reconciler_server_tools",
            "Tools in a server's last snapshot.",
            ["namespace", "name"],
            registry=self.registry,
        )

        # One gauge per count, not one with a state label: the counts overlap, so a sum over them means nothing.
        self.member_tokens = {
            state: Gauge(
                f"mcp_reconciler_member_tokens_{state}",
                f"Members' own tokens of an oauthAuthorizationCode server: {meaning} (status.oauth.{key}).",
                ["namespace", "server"],
                registry=self.registry,
            )
            for state, (key, meaning) in MEMBER_TOKEN_STATES.items()
        }
        self._with_oauth: set[tuple[str, str]] = set()
        """Servers whose member-token series exist: removing absent ones raised (and cost) on every status write."""

    def observe_oauth(self, *, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """The member-token gauges of one server from its status (every time it is recorded, so a restarted
        operator exports them without waiting for a change); none for a server without `oauth`."""
        rollup = status.get("oauth")
        if not isinstance(rollup, Mapping):
            self._forget_oauth(namespace, name)
            return
        self._with_oauth.add((namespace, name))
        for state, (key, _) in MEMBER_TOKEN_STATES.items():
            value = rollup.get(key, 0)
            self.member_tokens[state].labels(namespace, name).set(value if isinstance(value, int) else 0)

    def observe_status(
        self, *, namespace: str, name: str, before: Mapping[str, Any] | None, after: Mapping[str, Any]
    ) -> None:
        """Tool counts and probe latency, taken from a server's status when a pass changed it."""
        tools = after.get("tools")
        if isinstance(tools, Mapping) and isinstance(tools.get("count"), int):
            self.tools.labels(namespace, name).set(tools["count"])
        test = after.get("lastTest")
        previous = (before or {}).get("lastTest")
        if isinstance(test, Mapping) and test != previous and isinstance(test.get("latencyMs"), int | float):
            self.probe_latency.observe(test["latencyMs"] / 1000)

    def forget(self, *, namespace: str, name: str) -> None:
        """Drop per-object series of a deleted server."""
        with contextlib.suppress(KeyError):
            self.tools.remove(namespace, name)
        self._forget_oauth(namespace, name)

    def _forget_oauth(self, namespace: str, name: str) -> None:
        if (namespace, name) not in self._with_oauth:
            return
        self._with_oauth.discard((namespace, name))
        for gauge in self.member_tokens.values():
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)

    def render(self) -> bytes:
        return generate_latest(self.registry)
