"""The models' own cross-field rules: each table case is accepted, or rejected with the message users see.

The same table drives the CRD rule tests (test_crd_rules.py), which check the cluster decides the same way.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.api import MCPServer, MCPServerSpec, MCPTemplateBindingSpec
from reconciler.api.common import dump_spec
from reconciler.api.kinds import kind_for
from tests.unit.api.cases import ALL_CASES, SpecCase, binding, case_params, server


@pytest.mark.parametrize("case", case_params([case for case in ALL_CASES if case.valid]))
def test_accepts(case: SpecCase) -> None:
    kind_for(case.kind).spec_model.model_validate(case.spec)


@pytest.mark.parametrize("case", case_params([case for case in ALL_CASES if not case.valid]))
def test_rejects_with_message(case: SpecCase) -> None:
    assert case.model_error is not None
    with pytest.raises(ValidationError) as caught:
        kind_for(case.kind).spec_model.model_validate(case.spec)
    assert case.model_error in str(caught.value)


def test_whole_object_reports_the_spec_path() -> None:
    manifest = {
        "apiVersion": "mcp.reconciler.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": "crm", "namespace": "acme"},
        "spec": server({"type": "oauthClientCredentials"}),
    }
    with pytest.raises(ValidationError) as caught:
        MCPServer.model_validate(manifest)
    (error,) = caught.value.errors()
    assert error["loc"][:3] == ("spec", "auth", "oauthClientCredentials")
    assert (
        "set clientId and clientSecret, or clientAssertion (clientId optional), or dynamicRegistration: true"
        in error["msg"]
    )


def test_authorization_code_dynamic_registration_is_implied_when_unset() -> None:
    spec = MCPServerSpec.model_validate(server({"type": "oauthAuthorizationCode", "pkce": "public"}))
    assert spec.auth.type == "oauthAuthorizationCode"
    assert spec.auth.dynamic_registration is None
    assert spec.auth.client_id is None


def test_defaults_the_crd_rules_rely_on() -> None:
    spec = MCPServerSpec.model_validate(server())
    assert (spec.transport, spec.auth.type, spec.tools.policy) == ("streamable-http", "none", "Track")


def test_binding_export_is_off_unless_asked_and_defaults_the_key() -> None:
    assert MCPTemplateBindingSpec.model_validate(binding()).export is None
    export = MCPTemplateBindingSpec.model_validate(binding(export={"configMap": {}})).export
    assert export is not None
    assert (export.config_map.name, export.config_map.key) == (None, "mcp-config.json")


@pytest.mark.parametrize(
    ("export", "location"),
    [
        ({"configMap": {"name": "x", "mountPath": "/etc/mcp"}}, ("export", "configMap", "mountPath")),
        ({"configMap": {}, "secret": {"name": "x"}}, ("export", "secret")),
        ({"configMap": {"name": "Bad_Name"}}, ("export", "configMap", "name")),
        ({"configMap": {"key": "a/b"}}, ("export", "configMap", "key")),
        ({"configMap": {"key": ".."}}, ("export", "configMap", "key")),
        ({"configMap": {"name": "a" * 254}}, ("export", "configMap", "name")),
    ],
)
def test_binding_export_errors_name_the_field(export: dict[str, Any], location: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as caught:
        MCPTemplateBindingSpec.model_validate(binding(export=export))
    (error,) = caught.value.errors()
    assert error["loc"] == location


def test_binding_export_is_written_back_as_authored() -> None:
    spec = MCPTemplateBindingSpec.model_validate(binding(export={"configMap": {}}))
    assert dump_spec(spec)["export"] == {"configMap": {}}
