"""Loading a folder of YAML: what each document kind becomes, and how every mistake is located."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import reconciler.manifests
from reconciler.api import MCPAccessGrant, MCPConnection, MCPServer, MCPTemplateBinding
from reconciler.engine.inputs import SourceLocation, Tenant
from reconciler.errors import InvalidInput
from reconciler.manifests import load_folder, parsing, reading
from tests.unit.manifests.samples import (
    ALL,
    BINDING,
    CONNECTION,
    GRANT,
    NAMESPACE,
    SECRET,
    SERVER,
    TENANT_CONFIGMAP,
    documents,
    write_files,
)


def problems_of(root: Path, files: dict[str, str | bytes]) -> list[str]:
    write_files(root, files)
    with pytest.raises(InvalidInput) as caught:
        load_folder(root)
    return [problem.render() for problem in caught.value.problems]


def server(spec: str, *, name: str = "crm", namespace: str = "acme") -> str:
    """An MCPServer manifest whose spec body starts on line 7."""
    return (
        "apiVersion: mcp.reconciler.dev/v1alpha1\n"
        "kind: MCPServer\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  namespace: {namespace}\n"
        "spec:\n" + spec
    )


def test_public_api_is_pinned() -> None:
    assert reconciler.manifests.__all__ == [
        "MAX_DOCUMENT_DEPTH",
        "MAX_DOCUMENT_NODES",
        "MAX_FILE_BYTES",
        "MAX_FILE_NODES",
        "load_folder",
    ]


# --- what each document type becomes ---------------------------------------------------------------------


def test_every_supported_kind_loads_from_one_multi_document_file(tmp_path: Path) -> None:
    write_files(tmp_path, {"all.yaml": documents(*ALL)})

    loaded = load_folder(tmp_path)

    assert [type(resource) for resource in loaded.resources] == [
        MCPServer,
        MCPConnection,
        MCPAccessGrant,
        MCPTemplateBinding,
    ]
    assert loaded.tenants == {
        "acme": Tenant(namespace="acme", slug="acme-corp", vars={"workspace": "ws-42", "region": "eu"})
    }
    assert loaded.secrets.read("acme", "crm-token", "token") == "tok-from-data"
    assert loaded.secrets.read("acme", "crm-token", "key") == "new-key", "stringData wins over data"
    assert loaded.warnings == []


def test_locations_record_file_and_first_line_of_each_object(tmp_path: Path) -> None:
    write_files(tmp_path, {"all.yaml": documents(SERVER, CONNECTION), "more/secret.yaml": SECRET})

    loaded = load_folder(tmp_path)

    connection_line = 1 + SERVER.count("\n") + 2
    assert loaded.location_of("MCPServer", "acme", "crm") == SourceLocation("all.yaml", 2)
    assert loaded.location_of("MCPConnection", "acme", "crm-platform") == SourceLocation("all.yaml", connection_line)
    assert loaded.location_of("Secret", "acme", "crm-token") == SourceLocation("more/secret.yaml", 1)


def test_nested_folders_are_walked_in_sorted_order_and_hidden_or_non_yaml_files_skipped(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "b/z.yml": server("  url: https://b.example.com/mcp\n", name="from-b"),
            "a/deeper/y.yaml": server("  url: https://a.example.com/mcp\n", name="from-a"),
            "c.yaml": server("  url: https://c.example.com/mcp\n", name="from-c"),
            ".git/config.yaml": "not: [valid",
            ".hidden.yaml": "not: [valid",
            "README.md": "# not: [yaml",
            "values.json": "{",
        },
    )

    loaded = load_folder(tmp_path)

    assert [resource.metadata.name for resource in loaded.resources] == ["from-a", "from-b", "from-c"]


def test_status_in_a_manifest_is_dropped(tmp_path: Path) -> None:
    text = server("  url: https://crm.example.com/mcp\n") + "status:\n  registryId: '7'\n  anything: goes\n"
    write_files(tmp_path, {"s.yaml": text})

    (resource,) = load_folder(tmp_path).resources

    assert resource.status is None


def test_objects_without_namespace_use_the_default_namespace(tmp_path: Path) -> None:
    text = SERVER.replace("  namespace: acme\n", "")
    write_files(tmp_path, {"s.yaml": text})

    loaded = load_folder(tmp_path, default_namespace="team-a")

    assert loaded.resources[0].metadata.namespace == "team-a"
    assert loaded.tenants == {"team-a": Tenant(namespace="team-a", slug="team-a")}
    assert ("MCPServer", "team-a", "crm") in loaded.locations


def test_configmap_and_secret_without_namespace_use_the_default_namespace(tmp_path: Path) -> None:
    configmap = TENANT_CONFIGMAP.replace("  namespace: acme\n", "")
    secret = SECRET.replace("  namespace: acme\n", "")
    write_files(tmp_path, {"t.yaml": documents(configmap, secret)})

    loaded = load_folder(tmp_path, default_namespace="team-a")

    assert loaded.tenant_for("team-a").vars == {"workspace": "ws-42", "region": "eu"}
    assert loaded.secrets.has_secret("team-a", "crm-token")


def test_tenants_cover_declared_and_referenced_namespaces(tmp_path: Path) -> None:
    other_namespace = NAMESPACE.replace("name: acme", "name: acme-staging")
    write_files(
        tmp_path,
        {
            "ns.yaml": documents(NAMESPACE, other_namespace),
            "plain.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: globex\n",
            "s.yaml": server("  url: https://x.example.com/mcp\n", namespace="initech"),
        },
    )

    tenants = load_folder(tmp_path).tenants

    assert tenants == {
        "acme": Tenant(namespace="acme", slug="acme-corp"),
        "acme-staging": Tenant(namespace="acme-staging", slug="acme-corp"),
        "globex": Tenant(namespace="globex", slug="globex"),
        "initech": Tenant(namespace="initech", slug="initech"),
    }


def test_secret_data_is_decoded_and_multiline_base64_accepted(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"x" * 120).decode()
    folded = "\n".join(encoded[i : i + 40] for i in range(0, len(encoded), 40))
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: long, namespace: acme}\ndata:\n  blob: |\n" + "".join(
        f"    {line}\n" for line in folded.splitlines()
    )
    write_files(tmp_path, {"s.yaml": text})

    assert load_folder(tmp_path).secrets.read("acme", "long", "blob") == "x" * 120


def test_a_single_file_path_is_accepted_and_named_as_given(tmp_path: Path) -> None:
    write_files(tmp_path, {"one.yaml": SERVER, "two.yaml": "kind: [broken"})
    given = tmp_path / "one.yaml"

    assert len(load_folder(given).resources) == 1
    with pytest.raises(InvalidInput) as caught:
        load_folder(str(tmp_path / "two.yaml"))
    assert caught.value.problems[0].file == str(tmp_path / "two.yaml")


def test_empty_documents_and_empty_files_are_ignored(tmp_path: Path) -> None:
    write_files(tmp_path, {"a.yaml": "---\n---\n# only a comment\n---\nnull\n---\n" + SERVER, "b.yaml": ""})

    loaded = load_folder(tmp_path)

    assert len(loaded.resources) == 1
    assert loaded.location_of("MCPServer", "acme", "crm") == SourceLocation("a.yaml", 7)


@pytest.mark.parametrize(
    ("text", "warning"),
    [
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: acme}\n",
            "x.yaml:1: skipping Deployment acme/web (not managed by mcp-reconciler)",
        ),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: acme}\ndata: {a: b}\n",
            "x.yaml:1: skipping ConfigMap acme/settings (not managed by mcp-reconciler)",
        ),
        (
            "apiVersion: v1\nkind: List\nitems: []\n",
            "x.yaml:1: skipping List (unnamed) (not managed by mcp-reconciler)",
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: admin}\n",
            "x.yaml:1: skipping ClusterRole admin (not managed by mcp-reconciler)",
        ),
        (
            "apiVersion: toolhive.stacklok.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: fetch}\n",
            "x.yaml:1: skipping MCPServer fetch (not managed by mcp-reconciler)",
        ),
    ],
)
def test_documents_of_other_kinds_are_skipped_with_a_warning(tmp_path: Path, text: str, warning: str) -> None:
    write_files(tmp_path, {"x.yaml": text})

    loaded = load_folder(tmp_path)

    assert loaded.warnings == [warning]
    assert loaded.resources == []


def test_an_empty_folder_loads_nothing_and_says_so(tmp_path: Path) -> None:
    loaded = load_folder(tmp_path)

    assert loaded.resources == []
    assert loaded.warnings == [f"{tmp_path}: no YAML files found"]


# --- every mistake names file, line, object and field ---------------------------------------------------------

_SPEC_CASES = [
    pytest.param(
        "  url: https://crm.example.com/mcp\n  transport: ftp\n",
        "servers.yaml:8: MCPServer acme/crm: field spec.transport: must be one of 'streamable-http', 'sse' or "
        "'websocket'",
        id="bad-literal",
    ),
    pytest.param(
        "  url: https://crm.example.com/mcp\n  bogus: 1\n",
        "servers.yaml:8: MCPServer acme/crm: field spec.bogus: unknown field",
        id="unknown-field",
    ),
    pytest.param(
        "  transport: sse\n",
        "servers.yaml:6: MCPServer acme/crm: field spec.url: required field is missing",
        id="missing-field",
    ),
    pytest.param(
        "  url: ftp://crm.example.com/mcp\n",
        "servers.yaml:7: MCPServer acme/crm: field spec.url: must be an http:// or https:// URL",
        id="pattern",
    ),
    pytest.param(
        "  url: https://crm.example.com/mcp\n  enabled: maybe\n",
        "servers.yaml:8: MCPServer acme/crm: field spec.enabled: must be true or false",
        id="wrong-type",
    ),
    pytest.param(
        "  url: https://crm.example.com/mcp\n  headers:\n    - name: a\n      value: b\n    - name: c\n",
        "servers.yaml:11: MCPServer acme/crm: field spec.headers[1]: set exactly one of value or valueFrom",
        id="model-validator-in-list",
    ),
    pytest.param(
        "  url: https://crm.example.com/mcp\n  auth:\n    type: bearer\n    secretKeyRef:\n      key: token\n",
        "servers.yaml:10: MCPServer acme/crm: field spec.auth.secretKeyRef.name: required field is missing",
        id="union-tag-stripped",
    ),
    pytest.param(
        "  url: https://crm.example.com/mcp\n  auth:\n    type: bearer\n    secretKeyRef: {name: t, key: k}\n"
        "    headerName: x\n",
        "servers.yaml:11: MCPServer acme/crm: field spec.auth.headerName: unknown field",
        id="union-extra-field",
    ),
    pytest.param(
        "  url: https://crm.example.com/mcp\n  auth:\n    type: basic\n",
        "servers.yaml:9: MCPServer acme/crm: field spec.auth.type: unknown auth type 'basic': use one of none, "
        "bearer, apiKey, oauthClientCredentials, oauthAuthorizationCode",
        id="bad-discriminator",
    ),
    pytest.param(
        "  url: https://crm.example.com/mcp\n  auth:\n    secretKeyRef: {name: t, key: k}\n",
        "servers.yaml:8: MCPServer acme/crm: field spec.auth.type: required field is missing (use one of none, "
        "bearer, apiKey, oauthClientCredentials, oauthAuthorizationCode)",
        id="missing-discriminator",
    ),
    pytest.param(
        "  url: https://crm.example.com/mcp\n  auth:\n    type: oauthClientCredentials\n"
        "    clientId: {value: id}\n    clientSecret: {value: literal}\n",
        "servers.yaml:8: MCPServer acme/crm: field spec.auth: clientSecret must come from secretKeyRef, not a "
        "literal value",
        id="validator-message-without-prefix",
    ),
    pytest.param(
        "  url: https://crm.example.com/mcp\n  discovery:\n    interval: soon\n",
        "servers.yaml:9: MCPServer acme/crm: field spec.discovery.interval: must be a duration such as 30s, 10m "
        "or 1h30m",
        id="duration",
    ),
    pytest.param(
        "  url: https://crm.example.com/mcp\n  discovery:\n    interval: 5s\n",
        "servers.yaml:9: MCPServer acme/crm: field spec.discovery.interval: interval must be at least 10s",
        id="field-validator",
    ),
    pytest.param(
        "  url: https://crm.example.com/mcp\n  headers: {name: a}\n",
        "servers.yaml:8: MCPServer acme/crm: field spec.headers: must be a list",
        id="mapping-instead-of-list",
    ),
    pytest.param(
        "  - url: https://crm.example.com/mcp\n",
        "servers.yaml:6: MCPServer acme/crm: field spec: must be a mapping",
        id="list-instead-of-mapping",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), _SPEC_CASES)
def test_server_spec_errors_are_located(tmp_path: Path, spec: str, expected: str) -> None:
    assert problems_of(tmp_path, {"servers.yaml": server(spec)}) == [expected]


_DOCUMENT_CASES = [
    pytest.param(
        SERVER.replace("name: crm\n", "name: CRM_1\n", 1),
        "x.yaml:4: MCPServer acme/CRM_1: field metadata.name: must be a DNS-1123 name",
        id="bad-object-name",
    ),
    pytest.param(
        SERVER.replace("namespace: acme", "namespace: Acme"),
        "x.yaml:5: MCPServer Acme/crm: field metadata.namespace: must be a DNS-1123 label",
        id="bad-namespace",
    ),
    pytest.param(
        SERVER.replace("  name: crm\n", "  labels: {team: 7}\n  name: crm\n"),
        "x.yaml:4: MCPServer acme/crm: field metadata.labels.team: must be a string",
        id="label-not-string",
    ),
    pytest.param(
        SERVER.replace("v1alpha1", "v1beta1"),
        "x.yaml:1: MCPServer acme/crm: field apiVersion: unsupported apiVersion mcp.reconciler.dev/v1beta1: use "
        "mcp.reconciler.dev/v1alpha1",
        id="wrong-version",
    ),
    pytest.param(
        SERVER.replace("kind: MCPServer", "kind: MCPServers"),
        "x.yaml:2: field kind: unknown kind MCPServers in mcp.reconciler.dev: use one of MCPServer, MCPConnection, "
        "MCPAccessGrant, MCPTemplateBinding",
        id="unknown-kind-in-our-group",
    ),
    pytest.param(
        SERVER.replace("kind: MCPServer\n", ""),
        "x.yaml:1: field kind: required field is missing",
        id="missing-kind",
    ),
    pytest.param(
        SERVER.replace("apiVersion: mcp.reconciler.dev/v1alpha1\n", ""),
        "x.yaml:1: field apiVersion: required field is missing",
        id="missing-api-version",
    ),
    pytest.param(
        SERVER.replace("kind: MCPServer", "kind: [MCPServer]"),
        "x.yaml:2: field kind: must be a non-empty string",
        id="kind-not-a-string",
    ),
    pytest.param(
        SERVER.replace("  name: crm\n", ""),
        "x.yaml:3: field metadata.name: required field is missing (every MCPServer needs a name)",
        id="missing-name",
    ),
    pytest.param(
        "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPServer\nmetadata: crm\nspec: {}\n",
        "x.yaml:3: field metadata: must be a mapping (every MCPServer needs metadata with a name)",
        id="metadata-not-a-mapping",
    ),
    pytest.param(
        "- just\n- a list\n",
        "x.yaml:1: a manifest must be a mapping with apiVersion, kind and metadata, not a list",
        id="not-a-mapping",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\n---\nkind: [unclosed\n",
        "x.yaml:6: invalid YAML: while parsing a flow sequence",
        id="syntax-error-mark",
    ),
    pytest.param(
        "a: 1\n\tb: 2\n",
        "x.yaml:2: invalid YAML",
        id="tab-indentation",
    ),
    pytest.param(
        "a: &x 1\nb: *missing\n",
        "x.yaml:2: invalid YAML",
        id="undefined-alias",
    ),
    pytest.param(
        "a: !!python/object/apply:os.system ['true']\n",
        "x.yaml:1: invalid YAML: could not determine a constructor",
        id="unsafe-tag",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ok}\nbig: " + "9" * 5000 + "\n",
        "x.yaml:1: invalid YAML: a number or date in this document is out of range",
        id="huge-integer",
    ),
    pytest.param(
        CONNECTION.replace("scope: platform", "scope: platform\n  subject: alice"),
        "x.yaml:6: MCPConnection acme/crm-platform: field spec: subject is not allowed with scope: platform",
        id="connection-validator",
    ),
    pytest.param(
        GRANT.replace("  subjects:\n    - kind: Organization\n", "  subjects: []\n"),
        "x.yaml:8: MCPAccessGrant acme/crm-everyone: field spec.subjects: needs at least 1 item(s)",
        id="grant-empty-list",
    ),
    pytest.param(
        BINDING + "    - serverRef: crm\n",
        "x.yaml:6: MCPTemplateBinding acme/support-agent: field spec: server 'crm' is listed twice",
        id="binding-validator",
    ),
    pytest.param(
        NAMESPACE.replace("acme-corp", "Acme Corp"),
        "x.yaml:6: Namespace acme: field metadata.labels['mcp.reconciler.dev/tenant']: tenant slug must be a "
        "DNS-1123 label",
        id="bad-tenant-label",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: acme.corp\n",
        "x.yaml:4: Namespace acme.corp: field metadata.name: must be a DNS-1123 label",
        id="bad-namespace-name",
    ),
    pytest.param(
        TENANT_CONFIGMAP + "  seats: 5\n",
        "x.yaml:9: ConfigMap acme/mcp-tenant: field data.seats: must be a string (quote numbers and booleans)",
        id="tenant-var-not-a-string",
    ),
    pytest.param(
        TENANT_CONFIGMAP.replace("data:\n  workspace: ws-42\n  region: eu\n", "data: [a, b]\n"),
        "x.yaml:6: ConfigMap acme/mcp-tenant: field data: must be a mapping",
        id="tenant-data-not-a-mapping",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: acme}\ndata:\n  tls.crt: '%%%'\n",
        "x.yaml:5: Secret acme/s: field data['tls.crt']: Secret key 'tls.crt' is not valid base64",
        id="secret-bad-base64",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: acme}\ndata:\n  raw: "
        + base64.b64encode(b"\xff\xfe\x00").decode()
        + "\n",
        "x.yaml:5: Secret acme/s: field data.raw: Secret key 'raw' holds binary data; only UTF-8 text can be used",
        id="secret-binary",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: acme}\nstringData:\n  bad key: v\n",
        "x.yaml:5: Secret acme/s: field stringData['bad key']: keys must be made of letters",
        id="secret-bad-key",
    ),
    pytest.param(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: acme}\nstringData:\n  port: 8080\n",
        "x.yaml:5: Secret acme/s: field stringData.port: must be a string",
        id="secret-value-not-a-string",
    ),
]


@pytest.mark.parametrize(("text", "expected"), _DOCUMENT_CASES)
def test_document_errors_are_located(tmp_path: Path, text: str, expected: str) -> None:
    rendered = problems_of(tmp_path, {"x.yaml": text})

    assert len(rendered) == 1, rendered
    assert rendered[0].startswith(expected), rendered[0]


def test_secret_values_never_appear_in_problems(tmp_path: Path) -> None:
    value = "hunter2-very-secret-value!"
    text = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: acme}\n"
        f"data:\n  token: {value}\nstringData:\n  other: [{value}]\n  third: {{{value}: 1}}\n"
    )
    broken = f"apiVersion: v1\nkind: Secret\nmetadata: {{name: t}}\nstringData:\n  token: {value}: x\n"

    rendered = problems_of(tmp_path, {"a.yaml": text, "b.yaml": broken})

    assert len(rendered) == 4, rendered
    assert all(value not in line and "hunter2" not in line for line in rendered), rendered


def test_duplicates_across_files_name_both_locations(tmp_path: Path) -> None:
    rendered = problems_of(tmp_path, {"a.yaml": SERVER, "b/again.yaml": documents(GRANT, SERVER)})

    second_line = GRANT.count("\n") + 3
    assert rendered == [
        f"b/again.yaml:{second_line}: MCPServer acme/crm: declared twice: first at a.yaml:1, again here"
    ]


def test_duplicates_are_per_kind_and_namespace(tmp_path: Path) -> None:
    other_namespace = SERVER.replace("namespace: acme", "namespace: globex")
    same_name_other_kind = GRANT.replace("name: crm-everyone", "name: crm")
    write_files(tmp_path, {"a.yaml": documents(SERVER, other_namespace, same_name_other_kind)})

    assert len(load_folder(tmp_path).resources) == 3


def test_duplicate_core_objects_are_reported(tmp_path: Path) -> None:
    rendered = problems_of(tmp_path, {"a.yaml": documents(SECRET, NAMESPACE), "b.yaml": documents(NAMESPACE, SECRET)})

    assert [line.split(": ", 2)[1] for line in rendered] == ["Namespace acme", "Secret acme/crm-token"]


def test_all_problems_across_the_folder_are_collected(tmp_path: Path) -> None:
    rendered = problems_of(
        tmp_path,
        {
            "a.yaml": documents(server("  url: nope\n"), server("  url: https://ok.example.com/x\n", name="ok")),
            "b/c.yaml": documents(GRANT.replace("Organization", "Everyone"), "kind: [\n"),
            "d.yaml": b"kind: \xff\n",
        },
    )

    assert [line.split(":", 1)[0] for line in rendered] == ["a.yaml", "b/c.yaml", "b/c.yaml", "d.yaml"]


def test_nothing_is_returned_when_anything_is_wrong(tmp_path: Path) -> None:
    write_files(tmp_path, {"good.yaml": documents(*ALL), "bad.yaml": "kind: ["})

    with pytest.raises(InvalidInput):
        load_folder(tmp_path)


# --- files that cannot be read, and hostile YAML --------------------------------------------------------------


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    assert problems_of(tmp_path, {"x.yaml": b"a: 1\nb: caf\xe9\n"}) == ["x.yaml:2: file is not UTF-8 text"]


def test_control_characters_are_a_problem(tmp_path: Path) -> None:
    assert problems_of(tmp_path, {"x.yaml": "a: 1\nb: \x07\n"}) == [
        "x.yaml:2: invalid YAML: character #x0007 is not allowed"
    ]


def test_an_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "missing-target")

    rendered = problems_of(tmp_path, {})

    assert rendered == ["dangling.yaml: cannot read file: No such file or directory"]


def test_a_missing_path_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_folder(tmp_path / "nowhere")

    assert caught.value.problems[0].render() == f"{tmp_path / 'nowhere'}: no such file or directory"


def test_oversized_files_are_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "MAX_FILE_BYTES", 1024)

    rendered = problems_of(tmp_path, {"big.yaml": "a: " + "x" * 2000 + "\n", "small.yaml": SERVER})

    assert rendered == ["big.yaml: file is larger than 1024 bytes"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a: " + "[" * 5000 + "]" * 5000 + "\n", "x.yaml:1: nesting is deeper than 100 levels", id="flow"),
        pytest.param(
            "".join("  " * depth + f"k{depth}:\n" for depth in range(150)),
            "x.yaml:101: nesting is deeper than 100 levels",
            id="block",
        ),
        pytest.param(
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(
                f"{chr(98 + level)}: &{chr(98 + level)} [" + ", ".join([f"*{chr(97 + level)}"] * 10) + "]\n"
                for level in range(8)
            ),
            "x.yaml:1: document expands to more than 100000 nodes",
            id="billion-laughs",
        ),
        pytest.param("a: &x [*x]\n", "x.yaml:1: document expands to more than 100000 nodes", id="recursive-alias"),
        pytest.param("a: &x {<<: *x}\n", "x.yaml:1: document expands to more than 100000 nodes", id="recursive-merge"),
    ],
)
def test_hostile_yaml_is_refused_quickly(tmp_path: Path, text: str, expected: str) -> None:
    rendered = problems_of(tmp_path, {"x.yaml": text})

    assert len(rendered) == 1 and rendered[0].startswith(expected), rendered


def test_documents_before_an_oversized_one_are_still_checked(tmp_path: Path) -> None:
    text = documents(server("  url: ftp://x.example.com\n"), "a: " + "[" * 150 + "]" * 150 + "\n")

    rendered = problems_of(tmp_path, {"x.yaml": text})

    assert [line.split(": ")[-1] for line in rendered] == [
        "must be an http:// or https:// URL",
        "nesting is deeper than 100 levels",
    ]


def test_files_with_too_many_nodes_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parsing, "MAX_FILE_NODES", 50)
    many = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nports: [" + ", ".join(["1"] * 30) + "]\n"

    rendered = problems_of(tmp_path, {"x.yaml": documents(many, many)})

    assert rendered == ["x.yaml:10: file has more than 50 nodes: split it"]


def test_an_unreadable_directory_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_walk = os.walk

    def walk_with_locked_directory(top: Path, **options: Any) -> Iterator[tuple[str, list[str], list[str]]]:
        options["onerror"](PermissionError(13, "Permission denied", str(tmp_path / "locked")))
        yield from real_walk(top, **options)

    monkeypatch.setattr(os, "walk", walk_with_locked_directory)

    rendered = problems_of(tmp_path, {"ok.yaml": SERVER})

    assert rendered == ["locked: cannot read directory: Permission denied"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            server("  url: https://crm.example.com/mcp\n  url: https://evil.example.com/mcp\n"),
            ["x.yaml:8: MCPServer acme/crm: field spec.url: duplicate key: already set at line 7"],
            id="spec-url",
        ),
        pytest.param(
            server("  url: https://crm.example.com/mcp\n  headers:\n    - {name: a, value: b, name: c}\n"),
            ["x.yaml:9: MCPServer acme/crm: field spec.headers[0].name: duplicate key: already set at line 9"],
            id="in-a-list-item",
        ),
        pytest.param(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: acme}\nstringData:\n  k: a\n  k: b\n",
            ["x.yaml:6: Secret acme/s: field stringData.k: duplicate key: already set at line 5"],
            id="secret-key",
        ),
        pytest.param(
            "kind: MCPServer\nkind: MCPServer\n",
            ["x.yaml:2: field kind: duplicate key: already set at line 1"],
            id="unnamed",
        ),
        pytest.param(
            server(
                "  url: https://crm.example.com/mcp\n  url: https://a.example.com/mcp\n  url: https://b.example.com/mcp\n"
            ),
            [
                "x.yaml:8: MCPServer acme/crm: field spec.url: duplicate key: already set at line 7",
                "x.yaml:9: MCPServer acme/crm: field spec.url: duplicate key: already set at line 7",
            ],
            id="three-times",
        ),
    ],
)
def test_duplicate_keys_are_refused_with_file_line_and_key_path(tmp_path: Path, text: str, expected: list[str]) -> None:
    rendered = problems_of(tmp_path, {"x.yaml": text})

    assert [line.split("; ")[0] for line in rendered] == expected


def test_a_key_beside_a_merge_key_overrides_it_and_is_no_duplicate(tmp_path: Path) -> None:
    spec = "  <<: {transport: sse, url: https://old.example.com/mcp}\n  url: https://crm.example.com/mcp\n"
    write_files(tmp_path, {"x.yaml": server(spec)})

    resource = load_folder(tmp_path).resources[0]
    assert isinstance(resource, MCPServer)
    assert (resource.spec.transport, resource.spec.url) == ("sse", "https://crm.example.com/mcp")
