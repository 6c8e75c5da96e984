"""`discovery_companions`: the rows a scoped pass writes beside its targets so that a server and its discovery
connection never wait for each other. Pure: (targets, everything, observed rows) → companions."""

from __future__ import annotations

import pytest

from reconciler.engine.desired import DesiredObject
from reconciler.engine.steps.observe import discovery_companions
from reconciler.registry.records import ObservedState
from tests.unit.engine.steps_objects import connection, server

LINEAR = server("linear", discovery="linear-shared")
SHARED = connection("linear-shared", server_name="linear")
PLAIN = server("plain")
OTHER_CONNECTION = connection("other", server_name="plain")
EVERYTHING = [LINEAR, SHARED, PLAIN, OTHER_CONNECTION]


def registered(*objects: DesiredObject) -> ObservedState:
    return ObservedState(rows={obj.key: obj.record for obj in objects})


@pytest.mark.parametrize(
    ("targets", "observed", "companions"),
    [
        ([LINEAR], registered(), [SHARED]),  # neither row yet: the connection comes along
        ([SHARED], registered(), [LINEAR]),  # and the other way round
        ([LINEAR], registered(SHARED), []),  # the connection's row exists: its own pass writes it
        ([SHARED], registered(LINEAR), []),
        ([LINEAR, SHARED], registered(), []),  # both targeted already
        (EVERYTHING, registered(), []),  # a whole-source pass has no companions
        ([PLAIN], registered(), []),  # no discovery connection
        ([OTHER_CONNECTION], registered(), []),  # its server does not name it for discovery
    ],
)
def test_companions(targets: list[DesiredObject], observed: ObservedState, companions: list[DesiredObject]) -> None:
    assert discovery_companions(targets, EVERYTHING, observed) == companions
