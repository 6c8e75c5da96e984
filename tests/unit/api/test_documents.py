"""A status document written straight from its fields is the model's own round trip, or is refused. Pure."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from reconciler.api import (
    MCPAccessGrantStatus,
    MCPConnectionStatus,
    MCPServerStatus,
    MCPTemplateBindingStatus,
)
from reconciler.api.binding import ExportStatus
from reconciler.api.common import Condition
from reconciler.api.conditions import ConditionType, Reason
from reconciler.api.documents import plain_document
from reconciler.api.server import (
    CredentialStatus,
    DiscoveryStatus,
    LastTest,
    OAuthHealth,
    ServerInfo,
    ToolChanges,
    ToolSnapshotStatus,
)

STAMP = "2026-01-01T12:00:00Z"


def ready(**changes: Any) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": "True",
        "reason": "Available",
        "message": "",
        "observedGeneration": 1,
        "lastTransitionTime": STAMP,
        **changes,
    }


def round_trip(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    return model.model_validate(values).model_dump(mode="json", by_alias=True, exclude_unset=True)


@pytest.mark.parametrize(
    "model",
    [
        MCPServerStatus,
        MCPConnectionStatus,
        MCPAccessGrantStatus,
        MCPTemplateBindingStatus,
        Condition,
        CredentialStatus,
        OAuthHealth,
        DiscoveryStatus,
        ToolSnapshotStatus,
        ServerInfo,
        ToolChanges,
        LastTest,
        ExportStatus,
    ],
)
def test_every_status_model_can_be_written_plainly(model: type[BaseModel]) -> None:
    # A field of a type the writer does not know makes every status of the kind take the slow round trip.
    assert plain_document(model, {}) is not None or any(info.is_required() for info in model.model_fields.values())


WRITTEN = [
    pytest.param(
        MCPServerStatus,
        {
            "observed_generation": 2,
            "conditions": [ready(), ready(type="Synced", reason="ReconcileSuccess", message="matches")],
            "registry_id": "7",
            "last_sync_time": STAMP,
            "transport": "sse",
            "auth_type": "bearer",
            "enabled": True,
            "credentials": {"secretRef": "ns/s#k", "fingerprint": None},
            "oauth": {"connected": 2, "expiringWithin24h": 1},
        },
        id="a server as a pass builds it",
    ),
    pytest.param(
        MCPServerStatus,
        {"enabled": False, "registry_id": "1", "observed_generation": None, "conditions": []},
        id="fields given out of order come back in the model's",
    ),
    pytest.param(
        MCPConnectionStatus,
        {"conditions": [{**ready(observedGeneration=None), "type": "Ready"}], "fingerprint": "fp"},
        id="condition keys in another order",
    ),
    pytest.param(
        MCPServerStatus,
        {"conditions": [], "credentials": {"fingerprint": "fp", "unknownKey": 1}, "lastHandledReconcileAt": "x"},
        id="keys a section ignores, and a field by its wire name",
    ),
    pytest.param(
        MCPServerStatus,
        {
            "last_test": LastTest(ok=False, error_class="auth", message="401", at=STAMP),
            "tools": ToolSnapshotStatus(count=1, names=["a"], server_info=ServerInfo(name="s")),
            "discovery": {"requiresAuth": True, "authorizationServers": ["https://as.example"]},
        },
        id="typed sections and a section document with a list",
    ),
    pytest.param(MCPServerStatus, {"last_sync_time": "0999-01-02T03:04:05Z"}, id="a year below 1000"),
    pytest.param(
        MCPServerStatus, {"tools": {"count": 1, "serverInfo": ServerInfo(name="s")}}, id="a model in a document"
    ),
]


@pytest.mark.parametrize(("model", "values"), WRITTEN)
def test_a_plain_document_is_the_round_trip(model: type[BaseModel], values: dict[str, Any]) -> None:
    document = plain_document(model, values)
    assert document is not None
    assert json.dumps(document) == json.dumps(round_trip(model, values))  # keys, their order and values
    assert document == round_trip(model, values)


REFUSED = [
    pytest.param(MCPServerStatus, {"last_sync_time": "2026-01-01T12:00:00+00:00"}, id="time in another spelling"),
    pytest.param(MCPServerStatus, {"last_sync_time": "2026-01-01T12:00:00.5Z"}, id="time with a fraction"),
    pytest.param(MCPServerStatus, {"observed_generation": True}, id="a boolean for an integer"),
    pytest.param(MCPServerStatus, {"auth_type": Reason.AVAILABLE}, id="a string subclass"),
    pytest.param(MCPServerStatus, {"conditions": [ready(type=ConditionType.READY)]}, id="an enum for a string"),
    pytest.param(MCPServerStatus, {"conditions": (ready(),)}, id="a tuple for a list"),
    pytest.param(MCPServerStatus, {"enabled": 1}, id="an integer for a boolean"),
    pytest.param(MCPServerStatus, {"registry_id": "1", "registryId": "2"}, id="a field by name and by alias"),
    pytest.param(MCPServerStatus, {"credentials": {"revision": "3"}}, id="a string a section would convert"),
]


@pytest.mark.parametrize(("model", "values"), REFUSED)
def test_what_the_model_would_convert_is_left_to_it(model: type[BaseModel], values: dict[str, Any]) -> None:
    assert plain_document(model, values) is None
    round_trip(model, values)  # valid all the same: the model converts it


INVALID = [
    pytest.param({"conditions": [ready(extra="x")]}, id="a key a condition forbids"),
    pytest.param({"conditions": [{"type": "Ready", "status": "True", "reason": "Available"}]}, id="a missing time"),
    pytest.param({"conditions": [ready(reason="not a reason")]}, id="a reason off its pattern"),
    pytest.param({"conditions": [ready(reason="")]}, id="an empty reason"),
    pytest.param({"conditions": [ready(status="Maybe")]}, id="a status outside the literal"),
    pytest.param({"conditions": [ready(lastTransitionTime="2026-02-30T00:00:00Z")]}, id="a day that is not"),
    pytest.param({"conditions": [ready(message="x" * 32769)]}, id="a message too long"),
    pytest.param({"transport": "carrier-pigeon"}, id="a transport outside the literal"),
    pytest.param({"registry_id": 7}, id="an integer for a string"),
]


@pytest.mark.parametrize("values", INVALID)
def test_what_the_model_refuses_is_refused(values: dict[str, Any]) -> None:
    assert plain_document(MCPServerStatus, values) is None
    with pytest.raises(ValidationError):
        round_trip(MCPServerStatus, values)


def test_remembered_documents_are_fresh_copies_and_told_apart_by_type() -> None:
    first = plain_document(MCPServerStatus, {"conditions": [ready()]})
    again = plain_document(MCPServerStatus, {"conditions": [ready()]})
    assert first == again
    assert first is not None and again is not None
    assert first["conditions"][0] is not again["conditions"][0]
    assert plain_document(MCPServerStatus, {"conditions": [ready(observedGeneration=True)]}) is None
    assert plain_document(MCPServerStatus, {"conditions": [ready(observedGeneration=1.0)]}) is None
