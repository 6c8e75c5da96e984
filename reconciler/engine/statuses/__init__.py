"""The one home of status: typed `…Status` documents from `reconciler.api`, one condition setter per situation,
one time format.

`building` turns what a pass found into an object's status, `probes` adds a server's probe sections,
`credentials` its rotation facts, `oauth` an authorization-code server's member-token rollup, `exports` a binding's
exported ConfigMap, and `lifecycle` covers the situations outside a pass (first sight, paused, a failed pass). The
report step, Test Connection and the operator call these; both drivers write the same documents (`dump_status`).
The names below load lazily, so the CLI's `get` can build `oauth` sections without the probe's mcp SDK that
`probes` brings.
"""

from typing import TYPE_CHECKING

from reconciler.engine.statuses import conditions  # light: the enums and the setters
from reconciler.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from reconciler.engine.statuses.building import (
        StatusInputs,
        base_conditions,
        build_status,
        build_status_model,
        dump_status,
    )
    from reconciler.engine.statuses.probes import ProbeSections, probe_sections

__all__ = [
    "ProbeSections",
    "StatusInputs",
    "base_conditions",
    "build_status",
    "build_status_model",
    "conditions",
    "dump_status",
    "probe_sections",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "building": ["StatusInputs", "base_conditions", "build_status", "build_status_model", "dump_status"],
        "probes": ["ProbeSections", "probe_sections"],
    },
)
