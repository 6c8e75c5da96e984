"""A status's conditions are checked and written by their model once per distinct condition, and every status
still gets exactly what validating the whole status model would write, in its own copies."""

from __future__ import annotations

import pydantic
import pytest

from reconciler.api.conditions import ConditionType
from reconciler.engine.desired import DesiredObject, MissingSecret
from reconciler.engine.planning import Verb
from reconciler.engine.statuses import StatusInputs, build_status, dump_status
from reconciler.engine.statuses import conditions as cond
from reconciler.engine.statuses.building import build_status_model
from tests.unit.engine.test_statuses import TENANT, connection, inputs, server

OLDER_WRITER = {
    "observedGeneration": 1,
    "lastSyncTime": "2025-12-31T23:00:00.250+01:00",
    "conditions": [
        # Written by another tool: a fractional second and an offset, which the model reads and writes in UTC.
        {**cond.ready(), "observedGeneration": 1, "lastTransitionTime": "2025-12-31T23:00:00.250+01:00"},
        {**cond.synced(), "observedGeneration": 1, "lastTransitionTime": "2025-12-31T22:00:00Z"},
    ],
}


@pytest.mark.parametrize(
    "status_inputs",
    [
        inputs(server(), Verb.CREATE),
        inputs(server(enabled=False), Verb.NOOP),
        inputs(server(), Verb.CONFLICT),
        inputs(server(), Verb.NOOP, previous=OLDER_WRITER),
        inputs(server(), Verb.UPDATE, previous=OLDER_WRITER, registry_id=None, generation=None),
        inputs(connection(), Verb.CREATE),
        inputs(
            DesiredObject(server().resource, TENANT, server().record, (MissingSecret("spec.auth", "acme/k#t"),)),
            Verb.CREATE,
        ),
    ],
)
def test_a_status_is_what_its_whole_model_writes(status_inputs: StatusInputs) -> None:
    written = build_status(status_inputs)

    assert written == dump_status(build_status_model(status_inputs))
    assert list(written) == list(dump_status(build_status_model(status_inputs)))  # the same order of keys too


def test_a_carried_condition_time_is_written_in_the_one_format() -> None:
    written = build_status(inputs(server(), Verb.NOOP, previous=OLDER_WRITER))

    times = {item["type"]: item["lastTransitionTime"] for item in written["conditions"]}
    assert times["Ready"] == "2025-12-31T22:00:00Z"
    assert times["Synced"] == "2025-12-31T22:00:00Z"


def test_statuses_sharing_a_condition_do_not_share_its_document() -> None:
    first = build_status(inputs(server(), Verb.CREATE))
    second = build_status(inputs(server(), Verb.CREATE))
    assert first["conditions"] == second["conditions"]

    first["conditions"][0]["message"] = "changed by a caller"

    assert second["conditions"][0]["message"] != "changed by a caller"
    assert build_status(inputs(server(), Verb.CREATE))["conditions"] == second["conditions"]


def test_a_condition_the_model_refuses_is_refused_every_time() -> None:
    bad = cond.condition(ConditionType.READY, "True", "not a reason!")
    extra_conditions = [bad]
    for _ in range(2):  # the second time too: refusals are not remembered as documents
        with pytest.raises(pydantic.ValidationError, match="reason"):
            build_status(inputs(server(), Verb.CREATE, extra_conditions=extra_conditions))
