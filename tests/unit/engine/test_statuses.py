"""The status home: one setter per situation, one time format, typed documents that dump to what is written."""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.api import MCPConnection, MCPConnectionStatus, MCPServer, MCPServerStatus
from reconciler.api.server import LastTest
from reconciler.api.times import format_time, parse_time
from reconciler.engine.desired import DesiredObject, MissingSecret
from reconciler.engine.inputs import Tenant
from reconciler.engine.planning import Action, Verb
from reconciler.engine.probing import record_probe
from reconciler.engine.statuses import StatusInputs, build_status, dump_status, probe_sections
from reconciler.engine.statuses import conditions as cond
from reconciler.engine.statuses.credentials import rotation_sections
from reconciler.engine.statuses.lifecycle import failed, paused, with_unwatched_secrets
from reconciler.engine.statuses.probes import ProbeSections
from reconciler.engine.statuses.reporting import Rotation, reported_status
from reconciler.probe import ProbeResult
from reconciler.records import ToolAnnotationHints
from reconciler.registry.records import ConnectionRecord, ProbeStateRecord, ServerRecord, ToolRecord, ToolSnapshotRecord

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)
TENANT = Tenant(namespace="acme", slug="acme")


def server(**spec: Any) -> DesiredObject:
    resource = MCPServer.model_validate(
        {"metadata": {"name": "s", "namespace": "acme"}, "spec": {"url": "https://s.example.com/mcp", **spec}}
    )
    record = ServerRecord(tenant="acme", name="s", url="https://s.example.com/mcp", auth_type=resource.spec.auth.type)
    return DesiredObject(resource, TENANT, record)


def connection() -> DesiredObject:
    resource = MCPConnection.model_validate(
        {"metadata": {"name": "c", "namespace": "acme"}, "spec": {"serverRef": "s", "scope": "platform"}}
    )
    return DesiredObject(resource, TENANT, ConnectionRecord(tenant="acme", name="c", server="s"))


def summary(condition: dict[str, Any]) -> tuple[str, str, str, str]:
    return condition["type"], condition["status"], condition["reason"], condition["message"]


@pytest.mark.parametrize(
    ("setter", "expected"),
    [
        (lambda: cond.synced(), ("Synced", "True", "ReconcileSuccess", "registry is up to date")),
        (lambda: cond.observe_only("ObserveOnly: x"), ("Synced", "True", "ObserveOnly", "ObserveOnly: x")),
        (lambda: cond.reconcile_paused("p"), ("Synced", "False", "ReconcilePaused", "p")),
        (lambda: cond.reconcile_failed("RegistryUnavailable", "m"), ("Synced", "False", "RegistryUnavailable", "m")),
        (lambda: cond.ready(), ("Ready", "True", "Available", "")),
        (lambda: cond.disabled(), ("Ready", "True", "Available", "disabled: registered but not offered to agents")),
        (lambda: cond.connected(3), ("Ready", "True", "Available", "Connected · 3 tools")),
        (lambda: cond.no_registry_row(), ("Ready", "False", "Unavailable", "no registry row exists for this object")),
        (lambda: cond.secret_missing("m"), ("Ready", "False", "SecretNotFound", "m")),
        (lambda: cond.probe_failed("timeout", "m"), ("Ready", "False", "Timeout", "m")),
        (lambda: cond.probe_failed("tls", "m"), ("Ready", "False", "TLSError", "m")),
        (lambda: cond.probe_failed("insufficient_scope", "m"), ("Ready", "False", "InsufficientScope", "m")),
        (lambda: cond.probe_failed("something-new", "m"), ("Ready", "False", "Unavailable", "m")),
        (lambda: cond.tools_not_approved("m"), ("Ready", "False", "ToolsNotApproved", "m")),
        (lambda: cond.credential_unusable("bad"), ("Ready", "False", "AuthError", "credentials: bad")),
        (
            lambda: cond.paused_before_first_reconcile(),
            ("Ready", "Unknown", "Creating", "paused before the first reconcile"),
        ),
        (lambda: cond.no_credentials_needed(), ("CredentialsValid", "True", "NoCredentials", "none needed")),
        (
            lambda: cond.awaiting_members(),
            ("CredentialsValid", "Unknown", "AwaitingUserAuthorization", "each member authorizes their own account"),
        ),
        (lambda: cond.credentials_refused("InvalidClient", "m"), ("CredentialsValid", "False", "InvalidClient", "m")),
        (lambda: cond.credentials_refused("", "m"), ("CredentialsValid", "False", "AuthError", "m")),
        (lambda: cond.rotation_failed("m"), ("CredentialsValid", "False", "RotationFailed", "m")),
        (lambda: cond.discovered("m"), ("Discovered", "True", "DiscoverySucceeded", "m")),
        (lambda: cond.discovery_failed("m"), ("Discovered", "False", "DiscoveryFailed", "m")),
        (lambda: cond.tools_drifted("added: a"), ("ToolsDrifted", "True", "ToolsChanged", "added: a")),
        (lambda: cond.tools_unchanged(), ("ToolsDrifted", "False", "ToolsUnchanged", "")),
        (lambda: cond.tool_risk_changed("risk: x"), ("ToolsDrifted", "True", "ToolRiskChanged", "risk: x")),
        (lambda: cond.tool_risk_not_ready("m"), ("Ready", "False", "ToolRiskChanged", "m")),
    ],
)
def test_each_situation_has_one_wording(
    setter: Callable[[], dict[str, Any]], expected: tuple[str, str, str, str]
) -> None:
    assert summary(setter()) == expected


@pytest.mark.parametrize(
    ("enabled", "reason", "message"),
    [(True, "NotProbed", "not probed yet"), (False, "DiscoveryDisabled", "spec.discovery.enabled is false")],
)
def test_not_probed_says_why(enabled: bool, reason: str, message: str) -> None:
    found = [summary(item) for item in cond.not_probed(discovery_enabled=enabled)]
    assert found == [("Discovered", "Unknown", reason, message), ("ToolsDrifted", "Unknown", reason, message)]


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=dt.UTC), "2026-01-02T03:04:05Z"),
        (dt.datetime(2026, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))), "2026-01-02T03:04:05Z"),
        (dt.datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05Z"),  # naive: the registry's UTC
    ],
)
def test_one_time_format(moment: dt.datetime, text: str) -> None:
    assert format_time(moment) == text
    assert parse_time(text) == moment.replace(microsecond=0, tzinfo=moment.tzinfo or dt.UTC)


def test_times_that_compare_equal_but_are_different_instants_format_apart() -> None:
    """`format_time` caches its text; 01:30 on the night New York's clocks go back is two instants that compare
    equal (same zone, only `fold` differs), and each keeps its own text."""
    first = dt.datetime(2026, 11, 1, 1, 30, tzinfo=zoneinfo.ZoneInfo("America/New_York"))
    second = first.replace(fold=1)
    assert first == second
    assert (format_time(first), format_time(second)) == ("2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z")
    assert format_time(first) == "2026-11-01T05:30:00Z"


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 2, 5, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(2026, 1, 2, 3, 4, 5),
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05+00:00",
    ],
)
def test_a_timestamp_field_writes_the_one_format(moment: dt.datetime | str) -> None:
    written = LastTest.model_validate({"ok": True, "at": moment}).model_dump(mode="json", by_alias=True)
    assert written["at"] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize("text", [None, 3, "", "yesterday"])
def test_parse_time_is_none_for_what_is_not_a_time(text: object) -> None:
    assert parse_time(text) is None


def conditions_of(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {item["type"]: (item["status"], item["reason"], item["lastTransitionTime"]) for item in status["conditions"]}


def inputs(obj: DesiredObject, verb: Verb, **overrides: Any) -> StatusInputs:
    fields: dict[str, Any] = {
        "obj": obj,
        "action": Action(verb, obj.key, obj.source, desired=obj.record),
        "generation": 2,
        "registry_id": 7,
        "previous": None,
        "now": T0,
    }
    return StatusInputs(**(fields | overrides))


@pytest.mark.parametrize(
    ("obj", "verb", "expected"),
    [
        (
            server(),
            Verb.CREATE,
            {
                "Ready": ("True", "Available", "2026-01-01T12:00:00Z"),
                "Synced": ("True", "ReconcileSuccess", "2026-01-01T12:00:00Z"),
                "CredentialsValid": ("True", "NoCredentials", "2026-01-01T12:00:00Z"),
            },
        ),
        (
            server(enabled=False),
            Verb.NOOP,
            {
                "Ready": ("True", "Available", "2026-01-01T12:00:00Z"),
                "Synced": ("True", "ReconcileSuccess", "2026-01-01T12:00:00Z"),
                "CredentialsValid": ("True", "NoCredentials", "2026-01-01T12:00:00Z"),
            },
        ),
        (
            server(),
            Verb.CONFLICT,
            {
                "Ready": ("False", "Conflict", "2026-01-01T12:00:00Z"),
                "Synced": ("False", "Conflict", "2026-01-01T12:00:00Z"),
                "CredentialsValid": ("True", "NoCredentials", "2026-01-01T12:00:00Z"),
            },
        ),
        (
            connection(),
            Verb.CREATE,
            {
                "Ready": ("True", "Available", "2026-01-01T12:00:00Z"),
                "Synced": ("True", "ReconcileSuccess", "2026-01-01T12:00:00Z"),
                "CredentialsValid": ("True", "CredentialsResolved", "2026-01-01T12:00:00Z"),
            },
        ),
    ],
)
def test_build_status_conditions(obj: DesiredObject, verb: Verb, expected: dict[str, tuple[str, str, str]]) -> None:
    status = build_status(inputs(obj, verb))
    assert conditions_of(status) == expected
    assert status["observedGeneration"] == 2 and status["registryId"] == "7"
    assert ("lastSyncTime" in status) == (verb is Verb.CREATE)


def test_server_status_carries_the_effective_spec_and_keeps_times_when_nothing_flips() -> None:
    obj = server(enabled=False)
    first = build_status(inputs(obj, Verb.CREATE))
    assert (first["transport"], first["authType"], first["enabled"]) == ("streamable-http", "none", False)
    again = build_status(inputs(obj, Verb.NOOP, previous={**first, "lastHandledReconcileAt": "t1"}, now=T1))
    assert again == {**first, "lastHandledReconcileAt": "t1"}


def test_a_missing_secret_is_why_an_object_is_not_ready() -> None:
    obj = DesiredObject(
        server().resource, TENANT, server().record, (MissingSecret("spec.auth.secretKeyRef", "acme/k#t"),)
    )
    found = conditions_of(build_status(inputs(obj, Verb.CREATE)))
    assert found["Ready"][:2] == ("False", "SecretNotFound")
    assert found["CredentialsValid"][:2] == ("False", "SecretNotFound")


def test_a_section_the_model_does_not_describe_is_refused() -> None:
    with pytest.raises(ValueError, match="no field 'bogus'"):
        build_status(inputs(server(), Verb.CREATE, extra={"bogus": 1}))


def test_connection_rotation_facts_are_part_of_its_status() -> None:
    facts = {"rotatedAt": "2026-01-01T12:00:00Z", "revision": 2}
    status = build_status(inputs(connection(), Verb.UPDATE, extra={"credentials": facts, "fingerprint": "fp"}))
    assert status["credentials"] == facts and status["fingerprint"] == "fp"


SNAPSHOT = ToolSnapshotRecord(
    tenant="acme",
    server="s",
    hash="sha256:abc",
    tools=(ToolRecord(name="b"), ToolRecord(name="a")),
    taken_at=T0,
    protocol_version="2025-06-18",
    server_info={"name": "demo", "version": None},
    capabilities=("tools",),
)


@pytest.mark.parametrize(
    ("last_test", "discovery", "expected"),
    [
        (
            {"ok": True, "errorClass": None, "message": "", "latencyMs": 5, "at": "2026-01-01T12:00:00Z"},
            {"requiresAuth": False, "recommendedAuthMode": "none"},
            {
                "Discovered": ("True", "DiscoverySucceeded"),
                "ToolsDrifted": ("False", "ToolsUnchanged"),
                "Ready": ("True", "Available"),
            },
        ),
        (
            {"ok": False, "errorClass": "timeout", "message": "slow", "latencyMs": 5, "at": "2026-01-01T12:00:00Z"},
            None,
            {
                "Discovered": ("False", "DiscoveryFailed"),
                "ToolsDrifted": ("False", "ToolsUnchanged"),
                "Ready": ("False", "Timeout"),
            },
        ),
        (
            {
                "ok": True,
                "message": "",
                "at": "2026-01-01T12:00:00Z",
                "toolChanges": {"added": ["b"], "removed": [], "changed": []},
                "credentialFailure": {"reason": "InvalidClient", "message": "refused"},
            },
            None,
            {
                "CredentialsValid": ("False", "InvalidClient"),
                "Discovered": ("False", "DiscoveryFailed"),
                "ToolsDrifted": ("True", "ToolsChanged"),
                "Ready": ("False", "AuthError"),
            },
        ),
        (  # a flipped hint under Track: high-severity drift, with the hash unchanged
            {
                "ok": True,
                "message": "",
                "at": "2026-01-01T12:00:00Z",
                "toolChanges": {"risk": ["readOnlyHint of a: false → true"]},
            },
            {"requiresAuth": False, "recommendedAuthMode": "none"},
            {
                "Discovered": ("True", "DiscoverySucceeded"),
                "ToolsDrifted": ("True", "ToolRiskChanged"),
                "Ready": ("False", "ToolRiskChanged"),
            },
        ),
        (  # a failing probe stays the reason Ready gives; ToolsDrifted still names the risk
            {
                "ok": False,
                "errorClass": "timeout",
                "message": "slow",
                "at": "2026-01-01T12:00:00Z",
                "toolChanges": {
                    "added": ["c"],
                    "risk": ["b renamed to c with an identical description and input schema"],
                },
            },
            None,
            {
                "Discovered": ("False", "DiscoveryFailed"),
                "ToolsDrifted": ("True", "ToolRiskChanged"),
                "Ready": ("False", "Timeout"),
            },
        ),
    ],
)
def test_probe_sections(
    last_test: dict[str, Any], discovery: dict[str, Any] | None, expected: dict[str, tuple[str, str]]
) -> None:
    risk = (last_test.get("toolChanges") or {}).get("risk") or []
    state = ProbeStateRecord(
        tenant="acme", server="s", discovery=discovery, last_test=last_test, probed_at=T0, tool_risk=tuple(risk)
    )
    sections = probe_sections(server(), state, [SNAPSHOT], next_probe_at=T1)
    found = {item["type"]: (item["status"], item["reason"]) for item in sections.conditions}
    assert found == expected
    extra = build_status(inputs(server(), Verb.NOOP, extra=sections.as_extra()))
    assert extra["tools"]["names"] == ["a", "b"] and extra["tools"]["nextProbeAt"] == "2026-01-01T12:05:00Z"
    assert extra["tools"]["serverInfo"] == {"name": "demo", "version": None}
    assert "toolChanges" not in extra["lastTest"] and "credentialFailure" not in extra["lastTest"]
    assert ("discovery" in extra) == (discovery is not None)
    if risk:
        assert extra["tools"]["changes"]["risk"] == risk
        drifted = next(item for item in sections.conditions if item["type"] == "ToolsDrifted")
        assert all(line in drifted["message"] for line in risk), "the condition names the tools"
        ready = next(item for item in sections.conditions if item["type"] == "Ready")
        assert ready["reason"] == "Timeout" or all(line in ready["message"] for line in risk)


DOCUMENTS: list[tuple[type[MCPServerStatus] | type[MCPConnectionStatus], dict[str, Any]]] = [
    (
        MCPServerStatus,
        {
            "observedGeneration": None,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Available",
                    "message": "",
                    "observedGeneration": None,
                    "lastTransitionTime": "2026-01-01T12:00:00Z",
                }
            ],
            "registryId": "3",
            "lastSyncTime": "2026-01-01T12:00:00Z",
            "transport": "sse",
            "authType": "bearer",
            "enabled": True,
            "credentials": {"secretRef": None, "fingerprint": "fp", "expiresAt": "2026-01-01T13:00:00Z"},
            "discovery": {"requiresAuth": True, "authorizationServers": [], "discoveredAt": "2026-01-01T12:00:00Z"},
            "lastTest": {"ok": False, "errorClass": "auth", "message": "401", "hint": "h", "latencyMs": 3, "at": None},
            "tools": {"count": 1, "names": ["a"], "changes": {"added": ["a"], "removed": [], "changed": []}},
            "lastHandledReconcileAt": "2026-01-01T00:00:00Z",
        },
    ),
    (MCPConnectionStatus, {"observedGeneration": 1, "conditions": [], "fingerprint": None}),
]


@pytest.mark.parametrize(("model", "document"), DOCUMENTS)
def test_a_written_document_survives_its_model_unchanged(
    model: type[MCPServerStatus] | type[MCPConnectionStatus], document: dict[str, Any]
) -> None:
    assert dump_status(model.model_validate(document)) == document


PREVIOUS = {
    "observedGeneration": 3,
    "registryId": "7",
    "conditions": [
        cond.merge_conditions(None, [cond.ready()], generation=3, now=T0)[0],
        cond.merge_conditions(None, [cond.synced()], generation=3, now=T0)[0],
        cond.merge_conditions(None, [cond.credentials_valid("resolved")], generation=3, now=T0)[0],
    ],
}


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            lambda: paused(PREVIOUS, message="paused", generation=3, now=T1),
            {"Ready": ("True", "Available"), "Synced": ("False", "ReconcilePaused")},
        ),
        (
            lambda: paused(None, message="paused", generation=1, now=T1),
            {"Ready": ("Unknown", "Creating"), "Synced": ("False", "ReconcilePaused")},
        ),
        (
            lambda: failed(PREVIOUS, reason="RegistryUnavailable", message="down", generation=3, now=T1),
            {"Ready": ("True", "Available"), "Synced": ("False", "RegistryUnavailable")},
        ),
        (
            lambda: failed(None, reason="InvalidSpec", message="bad", generation=1, now=T1),
            {"Ready": ("False", "InvalidSpec"), "Synced": ("False", "InvalidSpec")},
        ),
    ],
)
def test_lifecycle_statuses(build: Callable[[], dict[str, Any]], expected: dict[str, tuple[str, str]]) -> None:
    status = build()
    found = {item["type"]: (item["status"], item["reason"]) for item in status["conditions"]}
    assert {key: found[key] for key in expected} == expected
    assert status.get("registryId") == ("7" if status["observedGeneration"] == 3 else None)


def test_unwatched_secrets_are_named_in_credentials_valid() -> None:
    status = with_unwatched_secrets(PREVIOUS, ["a"], label="example.dev/watch")
    (credential,) = [item for item in status["conditions"] if item["type"] == "CredentialsValid"]
    assert credential["message"] == (
        "resolved; Secret a lacks the label example.dev/watch: changes are picked up at the next resync, not at once"
    )


@pytest.mark.parametrize(
    ("previous", "rotated", "held_back", "expected", "reasons"),
    [
        (None, False, None, {}, []),
        (None, True, None, {"credentials": {"fp": "x", "rotatedAt": "2026-01-01T12:00:00Z", "revision": 1}}, []),
        (
            {"credentials": {"revision": 2, "failedRotationAttempts": 1}},
            True,
            None,
            {"credentials": {"fp": "x", "rotatedAt": "2026-01-01T12:00:00Z", "revision": 3}},
            [],
        ),
        (
            {"credentials": {"revision": 2, "failedRotationAttempts": 1}},
            False,
            "refused",
            {"credentials": {"fp": "x", "revision": 2, "failedRotationAttempts": 2}},
            ["RotationFailed"],
        ),
        (
            {"credentials": {"revision": 2, "failedRotationAttempts": 1}},
            False,
            None,
            {"credentials": {"fp": "x", "revision": 2}},
            [],
        ),
    ],
)
def test_rotation_sections(
    previous: dict[str, Any] | None,
    rotated: bool,
    held_back: str | None,
    expected: dict[str, Any],
    reasons: list[str],
) -> None:
    facts = {"fp": "x"} if previous or rotated or held_back else None
    extra, found = rotation_sections(previous, facts, rotated=rotated, held_back=held_back, now=T0)
    assert extra == expected
    assert [item["reason"] for item in found] == reasons


def bearer_server() -> DesiredObject:
    obj = server(auth={"type": "bearer", "secretKeyRef": {"name": "k", "key": "t"}})
    record = ServerRecord(
        tenant="acme",
        name="s",
        url="https://s.example.com/mcp",
        auth_type="bearer",
        auth={"secretRef": "acme/k#t", "secretFingerprint": "fp"},
    )
    return DesiredObject(obj.resource, TENANT, record)


MINTED = ProbeSections(credentials={"secretRef": "local:acme/s#token", "expiresAt": "2026-01-01T13:00:00Z"})
ROTATED_BEFORE = {"credentials": {"revision": 2, "failedRotationAttempts": 1}}


@pytest.mark.parametrize(
    ("obj", "probe", "previous", "rotation", "credentials", "reasons"),
    [
        (server(), ProbeSections(), None, None, None, []),
        (server(), MINTED, ROTATED_BEFORE, None, dict(MINTED.credentials or {}), []),
        (bearer_server(), ProbeSections(), None, None, {"secretRef": "acme/k#t", "fingerprint": "fp"}, []),
        (
            bearer_server(),
            MINTED,
            None,
            None,
            {"secretRef": "local:acme/s#token", "fingerprint": "fp", "expiresAt": "2026-01-01T13:00:00Z"},
            [],
        ),
        (
            bearer_server(),
            ProbeSections(),
            ROTATED_BEFORE,
            Rotation(),
            {"secretRef": "acme/k#t", "fingerprint": "fp", "revision": 2},
            [],
        ),
        (
            bearer_server(),
            ProbeSections(),
            ROTATED_BEFORE,
            Rotation(rotated=True),
            {"secretRef": "acme/k#t", "fingerprint": "fp", "revision": 3, "rotatedAt": "2026-01-01T12:00:00Z"},
            [],
        ),
        (
            bearer_server(),
            ProbeSections(),
            ROTATED_BEFORE,
            Rotation(held_back="the server refused the new value"),
            {"secretRef": "acme/k#t", "fingerprint": "fp", "revision": 2, "failedRotationAttempts": 2},
            ["RotationFailed"],
        ),
    ],
)
def test_reported_status_joins_row_probe_and_rotation_facts(
    obj: DesiredObject,
    probe: ProbeSections,
    previous: dict[str, Any] | None,
    rotation: Rotation | None,
    credentials: dict[str, Any] | None,
    reasons: list[str],
) -> None:
    status = reported_status(inputs(obj, Verb.NOOP, previous=previous), probe=probe, rotation=rotation)
    assert status.get("credentials") == credentials
    assert [item["reason"] for item in status["conditions"] if item["reason"] == "RotationFailed"] == reasons


def test_reported_status_reads_the_row_in_use() -> None:
    obj = bearer_server()
    held = dataclasses.replace(obj.record, auth={"secretRef": "acme/k#t", "secretFingerprint": "old"})
    action = Action(Verb.NOOP, obj.key, obj.source, desired=obj.record, observed=held)
    status = reported_status(inputs(obj, Verb.NOOP, action=action), probe=ProbeSections())
    assert status["credentials"]["fingerprint"] == "old"


def test_an_insufficient_scope_probe_says_so_in_ready_and_keeps_the_challenged_scopes_in_last_test() -> None:
    last_test = {
        "ok": False,
        "errorClass": "insufficient_scope",
        "message": "server refused the token for insufficient scope (HTTP 403 Forbidden): it names scope(s) a b",
        "challengedScopes": ["a", "b"],
        "latencyMs": 5,
        "at": "2026-01-01T12:00:00Z",
    }
    discovery = {"requiresAuth": True, "recommendedAuthMode": "bearer"}
    state = ProbeStateRecord(tenant="acme", server="s", discovery=discovery, last_test=last_test, probed_at=T0)
    sections = probe_sections(server(), state, [SNAPSHOT], next_probe_at=T1)
    (ready,) = [item for item in sections.conditions if item["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "InsufficientScope")
    assert ready["message"].startswith("insufficient_scope error: ") and "scope(s) a b" in ready["message"]
    status = build_status(inputs(server(), Verb.NOOP, extra=sections.as_extra()))
    assert status["lastTest"]["errorClass"] == "insufficient_scope"
    assert status["lastTest"]["challengedScopes"] == ["a", "b"]


def _listing(*tools: ToolRecord) -> ProbeResult:
    return ProbeResult(
        ok=True, error_class=None, message="", hint=None, latency_ms=1, at=T1, tools=tools, snapshot_hash="sha256:abc"
    )


WRITER = ToolRecord(name="wipe", annotations=ToolAnnotationHints(read_only_hint=False))
CLAIMS_READ_ONLY = ToolRecord(name="wipe", annotations=ToolAnnotationHints(read_only_hint=True))
FLIPPED = "readOnlyHint of wipe: false → true"


@pytest.mark.parametrize(
    ("result", "standing", "kept"),
    [
        (_listing(CLAIMS_READ_ONLY), (), (FLIPPED,)),
        (_listing(CLAIMS_READ_ONLY), ("older",), (FLIPPED,)),
        (_listing(WRITER), (FLIPPED,), ()),
        (
            ProbeResult(ok=False, error_class="timeout", message="slow", hint=None, latency_ms=1, at=T1),
            (FLIPPED,),
            (FLIPPED,),
        ),
    ],
    ids=["found", "a-listing-replaces-what-stood", "a-stable-listing-clears", "a-failed-probe-keeps-it"],
)
def test_tool_risk_stands_until_a_listing_finds_none(
    result: ProbeResult, standing: tuple[str, ...], kept: tuple[str, ...]
) -> None:
    before = ToolSnapshotRecord(tenant="acme", server="s", hash="sha256:abc", tools=(WRITER,), taken_at=T0)

    recorded = record_probe(server(), result, previous=[before], actor="test", standing_risk=standing)

    assert recorded.state.tool_risk == kept
    sections = probe_sections(server(), recorded.state, [before])
    drifted = next(item for item in sections.conditions if item["type"] == "ToolsDrifted")
    assert (drifted["reason"] == "ToolRiskChanged") is bool(kept)
    assert all(line in drifted["message"] for line in kept)
