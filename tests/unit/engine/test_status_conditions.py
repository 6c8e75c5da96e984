"""A status's conditions are checked and written by their model once per distinct condition, and every status
still gets exactly what validating the whole status model would write, in its own copies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pydantic
import pytest

from reconciler.api import MCPConnection, MCPServer
from reconciler.api.conditions import ConditionType
from reconciler.engine.desired import DesiredObject, MissingSecret
from reconciler.engine.inputs import Tenant
from reconciler.engine.planning import Action, Verb
from reconciler.engine.statuses import StatusInputs, build_status, dump_status
from reconciler.engine.statuses import conditions as cond
from reconciler.engine.statuses.building import build_status_model
from reconciler.registry.records import ConnectionRecord, ServerRecord

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
TENANT = Tenant(namespace="acme", slug="acme")


def server(name: str = "s", **spec: Any) -> DesiredObject:
    resource = MCPServer.model_validate(
        {"metadata": {"name": name, "namespace": "acme"}, "spec": {"url": "https://s.example.com/mcp", **spec}}
    )
    record = ServerRecord(tenant="acme", name=name, url="https://s.example.com/mcp", auth_type=resource.spec.auth.type)
    return DesiredObject(resource, TENANT, record)


def connection() -> DesiredObject:
    resource = MCPConnection.model_validate(
        {"metadata": {"name": "c", "namespace": "acme"}, "spec": {"serverRef": "s", "scope": "platform"}}
    )
    return DesiredObject(resource, TENANT, ConnectionRecord(tenant="acme", name="c", server="s"))


def inputs(obj: DesiredObject, verb: Verb = Verb.CREATE, **overrides: Any) -> StatusInputs:
    fields: dict[str, Any] = {
        "obj": obj,
        "action": Action(verb, obj.key, obj.source, desired=obj.record),
        "generation": 2,
        "registry_id": 7,
        "previous": None,
        "now": T0,
    }
    return StatusInputs(**(fields | overrides))


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
        inputs(server()),
        inputs(server(enabled=False), Verb.NOOP),
        inputs(server(), Verb.CONFLICT),
        inputs(server(), Verb.NOOP, previous=OLDER_WRITER),
        inputs(server(), Verb.UPDATE, previous=OLDER_WRITER, registry_id=None, generation=None),
        inputs(connection()),
        inputs(
            DesiredObject(server().resource, TENANT, server().record, (MissingSecret("spec.auth", "acme/k#t"),)),
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
    first = build_status(inputs(server("a")))
    second = build_status(inputs(server("b")))
    assert first["conditions"] == second["conditions"]

    first["conditions"][0]["message"] = "changed by a caller"

    assert second["conditions"][0]["message"] != "changed by a caller"
    assert build_status(inputs(server("c")))["conditions"] == second["conditions"]


def test_a_condition_the_model_refuses_is_refused_every_time() -> None:
    bad = cond.condition(ConditionType.READY, "True", "not a reason!")
    extra_conditions = [bad]
    for _ in range(2):  # the second time too: refusals are not remembered as documents
        with pytest.raises(pydantic.ValidationError, match="reason"):
            build_status(inputs(server(), extra_conditions=extra_conditions))
