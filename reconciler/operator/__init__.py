"""The Kopf operator: the cluster driver of the engine, and the only package that imports kopf.

`mcp-reconciler run` calls `run_operator`; tests and benchmarks embed `Operator`. Modules, by activity:
`handlers` (every kopf decorator, thin shells), `reconciling` (one pass per object around the engine), composed of
`batching` (the engine's runs, batched across namespaces), `recording` (status, Events, metrics), `exports` (a
binding's ConfigMap) and `objects` (what those share); `gathering` (cluster objects → engine input), `statuses`
and `events` (what a pass reports), `cluster` (the operator's own API calls), `annotations` (the knobs users set
on objects), `config` (settings and the kopf settings built from them), `resyncing` and `peering` (periodic
passes, and which instance runs them), `metrics` and `serving` (`/metrics`, `/healthz`), `running` (start/stop);
and, for `serve` rather than the operator, `secret_reading` (the Secrets `serve --secrets kubernetes` reads).
"""

from reconciler.operator.config import OperatorConfig
from reconciler.operator.running import Operator, run_operator

__all__ = ["Operator", "OperatorConfig", "run_operator"]
