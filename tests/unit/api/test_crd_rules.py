"""The CRDs' CEL rules, evaluated for real with celpy, decide every table case the way the models do.

Kubernetes 1.20 (the e2e API server) ignores `x-kubernetes-validations`, so this is where the rules are
proven: each one must parse, reject at least one case, and accept every valid case.
"""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.api.kinds import KINDS
from tests.unit.api.admission import (
    all_rules,
    compile_rule,
    evaluate_cel,
    open_api_errors,
    open_api_schema,
    spec_schema,
)
from tests.unit.api.cases import ALL_CASES, TOKEN, SpecCase, case_params, server


@pytest.mark.parametrize("case", case_params(ALL_CASES))
def test_rules_decide_like_the_models(case: SpecCase) -> None:
    schema = spec_schema(case.kind)
    outcome = evaluate_cel(schema, case.spec)
    assert outcome.errors == [], "a rule failed to evaluate instead of deciding"
    expected = case.expected_cel_error
    if expected is None:
        assert outcome.messages == []
    else:
        assert expected in outcome.messages
    admitted = not outcome.failed and not open_api_errors(schema, case.spec)
    assert admitted == case.valid


def test_every_rule_parses() -> None:
    for info in KINDS:
        for rule, message in all_rules(open_api_schema(info.kind)):
            assert message, f"rule without a message: {rule}"
            compile_rule(rule)


def test_every_rule_rejects_some_case_and_passes_the_valid_ones() -> None:
    rejected: set[tuple[str, str]] = set()
    passed: set[tuple[str, str]] = set()
    for case in ALL_CASES:
        outcome = evaluate_cel(spec_schema(case.kind), case.spec)
        rejected.update(outcome.failed)
        if case.valid:
            passed.update(outcome.passed)
    for old, new, _ in TRANSITIONS:
        outcome = evaluate_cel(spec_schema("MCPServer"), new, old)
        rejected.update(outcome.failed)
        passed.update(outcome.passed)
    spec_rules = {rule for info in KINDS for rule in all_rules(spec_schema(info.kind))}
    assert spec_rules - rejected == set(), "rules no case rejects: add a table case"
    assert spec_rules - passed == set(), "rules no valid case passes: add a table case"


BEARER = {"type": "bearer", "secretKeyRef": TOKEN}
TRANSPORT_IMMUTABLE = "transport is immutable: recreate to switch type"
AUTH_TYPE_IMMUTABLE = "auth.type is immutable: recreate to switch type"

TRANSITIONS: list[tuple[dict[str, Any], dict[str, Any], str | None]] = [
    (server(transport="sse"), server(transport="sse", enabled=False), None),
    (server(), server(transport="streamable-http"), None),
    (server(transport="streamable-http"), server(), None),
    (server(transport="sse"), server(transport="websocket"), TRANSPORT_IMMUTABLE),
    (server(), server(transport="sse"), TRANSPORT_IMMUTABLE),
    (server(transport="websocket"), server(), TRANSPORT_IMMUTABLE),
    (server(BEARER), server({**BEARER, "secretKeyRef": {"name": "crm-token-2", "key": "token"}}), None),
    (server(), server({"type": "none"}), None),
    (server({"type": "none"}), server(), None),
    (server(), server(BEARER), AUTH_TYPE_IMMUTABLE),
    (server(BEARER), server(), AUTH_TYPE_IMMUTABLE),
    (server(BEARER), server({"type": "apiKey", "secretKeyRef": TOKEN}), AUTH_TYPE_IMMUTABLE),
    (
        server({"type": "oauthClientCredentials", "dynamicRegistration": True}),
        server({"type": "oauthAuthorizationCode", "pkce": "public"}),
        AUTH_TYPE_IMMUTABLE,
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), TRANSITIONS)
def test_transition_rules(old: dict[str, Any], new: dict[str, Any], message: str | None) -> None:
    outcome = evaluate_cel(spec_schema("MCPServer"), new, old)
    assert outcome.errors == []
    assert outcome.messages == ([] if message is None else [message])


def test_transition_rules_do_not_run_on_create() -> None:
    outcome = evaluate_cel(spec_schema("MCPServer"), server(BEARER, transport="sse"))
    assert outcome.failed == []
    assert not any("oldSelf" in rule for rule, _ in outcome.passed)


def test_rules_on_list_items_see_each_item() -> None:
    headers = [{"name": "x-a", "value": "1"}, {"name": "x-b"}, {"name": "x-c", "value": "3"}]
    outcome = evaluate_cel(spec_schema("MCPServer"), server(headers=headers))
    assert outcome.messages == ["set exactly one of value or valueFrom"]
