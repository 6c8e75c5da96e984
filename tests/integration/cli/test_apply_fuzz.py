"""Malformed manifests through `apply`: only our error messages, never a traceback, never a partial write.

Two halves: random mutations of a valid folder (hypothesis), and a corpus of named kinds of bad input — every
one the hardening issue found, and more — each run through the real command against a copy of a real
registry (or a file that is not one). The corpus's figures (kinds tried, tracebacks, partial writes) are
printed in pytest's terminal summary.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.registry import open_registry
from tests.integration.cli.figures import CORPUS_FIGURES, CorpusFigures
from tests.integration.cli.test_commands import run

EXAMPLE = Path(__file__).parents[3] / "examples" / "02-tenant-servers"
DOCUMENTS = [doc for path in sorted(EXAMPLE.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths(value, (*prefix, index))
    return found


@st.composite
def mutated_folders(draw: st.DrawFn) -> list[dict[str, Any]]:
    documents = copy.deepcopy(DOCUMENTS)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        doc = draw(st.sampled_from(documents))
        target = draw(st.sampled_from(paths(doc)))
        parent = doc
        for step in target[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "extra"]))
        if action == "replace":
            parent[target[-1]] = draw(JUNK)
        elif action == "delete" and isinstance(parent, dict):
            del parent[target[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(JUNK)
    return documents


def _without_auth(name: str) -> list[dict[str, Any]]:
    """The examples with one server's `auth` gone: valid input whose switch of auth.type the rows refuse."""
    documents = copy.deepcopy(DOCUMENTS)
    for doc in documents:
        if doc["metadata"]["name"] == name:
            doc["spec"].pop("auth")
    return documents


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=mutated_folders())
@example(documents=_without_auth("internal-search"))
def test_malformed_manifests_fail_cleanly_and_write_nothing(documents: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        registry_url = f"sqlite:///{root / 'registry.db'}"
        assert run("apply", "-f", str(EXAMPLE), "--no-probe", "--registry", registry_url)[0] == 0
        with open_registry(registry_url) as registry:
            before = json.dumps(registry.dump(), default=str, sort_keys=True)
            rows_before = registry.fetch_state().rows
        folder = root / "manifests"
        folder.mkdir()
        (folder / "all.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))
        code, out, err = run("apply", "-f", str(folder), "--no-probe", "--registry", registry_url)
        assert "Traceback" not in out + err
        assert code in (0, 1)
        if code == 1 and "conflicts left unresolved" in err:
            # Valid input that the registry's rows refuse (for example a switch of auth.type in place): like
            # kubectl, every other object applies whole and each refused one keeps its row exactly as it was.
            replan, planned, _ = run("plan", "-f", str(folder), "-o", "json", "--registry", registry_url)
            assert replan == 1
            actions = json.loads(planned)["actions"]
            assert {a["action"] for a in actions} <= {"noop", "conflict"}, actions
            with open_registry(registry_url) as registry:
                rows_after = registry.fetch_state().rows
            for action in actions:
                if action["action"] == "conflict":
                    key = (action["table"], action["tenant"], action["row"])
                    assert rows_after.get(key) == rows_before.get(key), key
        elif code == 1:
            assert err.startswith("error: ")
            with open_registry(registry_url) as registry:
                after = json.dumps(registry.dump(), default=str, sort_keys=True)
            assert after == before


# -- the corpus: named kinds of bad input, each run through the real command against a real registry -----------

HEAD = "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPServer\nmetadata:\n  name: x\n  namespace: t\n"
GOOD_SPEC = "spec:\n  url: https://a.example.com/mcp\n"
BEARER = "  auth:\n    type: bearer\n    secretKeyRef: {name: s, key: token}\n"


def _server(extra: str = "", *, spec: str = GOOD_SPEC, head: str = HEAD) -> str:
    return head + spec + extra


def _doc(kind: str, spec: str, name: str = "y") -> str:
    head = f"---\napiVersion: mcp.reconciler.dev/v1alpha1\nkind: {kind}\n"
    return head + f"metadata:\n  name: {name}\n  namespace: t\nspec:\n{spec}"


CONNECTION = "  serverRef: x\n  scope: platform\n"
TENANT = "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: mcp-tenant, namespace: t}\ndata:\n  region: eu\n"


@dataclass(frozen=True)
class BadInput:
    """One kind of bad input: a folder's files and the command to run on it (registry: a copy of a good one,
    or a file that is not a registry)."""

    name: str
    files: dict[str, str | bytes]
    argv: tuple[str, ...] = ("apply", "--no-probe")
    registry: str = "good"


def _server_cases() -> list[BadInput]:
    specs = {
        "transport-unknown": "  transport: carrier-pigeon\n",
        "interval-huge": "  discovery:\n    interval: 99999999999999999999h\n",
        "interval-over-a-year": "  discovery:\n    interval: 8761h\n",
        "interval-too-short": "  discovery:\n    interval: 9s\n",
        "interval-not-a-duration": "  discovery:\n    interval: soon\n",
        "interval-a-number": "  discovery:\n    interval: 3600\n",
        "enabled-a-string": "  enabled: 'yes'\n",
        "headers-a-mapping": "  headers: {a: b}\n",
        "header-twice": "  headers:\n    - {name: A, value: b}\n    - {name: a, value: c}\n",
        "header-bad-name": "  headers:\n    - {name: 'a b', value: c}\n",
        "auth-type-unknown": "  auth: {type: kerberos}\n",
        "bearer-without-secret": "  auth: {type: bearer}\n",
        "client-credentials-without-client": "  auth: {type: oauthClientCredentials}\n",
        "client-secret-literal": "  auth:\n    type: oauthClientCredentials\n    clientId: {value: a}\n"
        "    clientSecret: {value: hunter2}\n",
        "too-many-scopes": "  auth:\n    type: oauthClientCredentials\n    dynamicRegistration: true\n"
        "    scopes: [" + ", ".join(f"s{i}" for i in range(65)) + "]\n",
        "unknown-field": "  colour: blue\n",
        "approved-hash-without-pin": "  tools: {approvedHash: 'sha256:" + "ab" * 32 + "'}\n",
        "approved-hash-malformed": "  tools: {policy: Pin, approvedHash: 'md5:1'}\n",
        "deletion-policy-unknown": "  deletionPolicy: Shred\n",
        "management-policy-unknown": "  managementPolicy: Sometimes\n",
        "owner-kind-unknown": "  owner: {kind: Robot, name: r}\n",
        "display-name-empty": "  displayName: ''\n",
        "duplicate-url": "  url: https://evil.example.com/mcp\n",
        "duplicate-in-header": "  headers:\n    - {name: a, value: b, value: c}\n",
    }
    cases = [BadInput(f"server-{name}", {"s.yaml": _server(extra)}) for name, extra in specs.items()]
    cases += [
        BadInput("server-url-missing", {"s.yaml": _server(spec="spec:\n  transport: sse\n")}),
        BadInput("server-url-ftp", {"s.yaml": _server(spec="spec:\n  url: ftp://a.example.com/mcp\n")}),
        BadInput(
            "server-url-too-long", {"s.yaml": _server(spec=f"spec:\n  url: https://a.example.com/{'a' * 3000}\n")}
        ),
        BadInput("server-spec-a-list", {"s.yaml": _server(spec="spec: [a, b]\n")}),
        BadInput("generation-huge", {"s.yaml": _server(head=HEAD + "  generation: 99999999999999999999\n")}),
        BadInput("generation-negative", {"s.yaml": _server(head=HEAD + "  generation: -1\n")}),
        BadInput("name-invalid", {"s.yaml": _server(head=HEAD.replace("name: x", "name: Bad_Name"))}),
        BadInput("namespace-invalid", {"s.yaml": _server(head=HEAD.replace("namespace: t", "namespace: T!"))}),
        BadInput("api-version-unsupported", {"s.yaml": _server(head=HEAD.replace("v1alpha1", "v9"))}),
        BadInput("kind-unknown-in-group", {"s.yaml": _server(head=HEAD.replace("MCPServer", "MCPWidget"))}),
        BadInput("kind-missing", {"s.yaml": _server(head=HEAD.replace("kind: MCPServer\n", ""))}),
        BadInput(
            "metadata-a-list", {"s.yaml": "apiVersion: mcp.reconciler.dev/v1alpha1\nkind: MCPServer\nmetadata: []\n"}
        ),
        BadInput("name-missing", {"s.yaml": _server(head=HEAD.replace("  name: x\n", ""))}),
        BadInput("declared-twice", {"a.yaml": _server(), "b.yaml": _server()}),
        BadInput("duplicate-metadata-name", {"s.yaml": _server(head=HEAD + "  name: z\n")}),
    ]
    return cases


def _yaml_cases() -> list[BadInput]:
    texts: dict[str, str | bytes] = {
        "tab-indentation": _server().replace("  url", "\turl"),
        "unclosed-flow": _server("  headers: [{name: a\n"),
        "not-utf8": _server().encode() + b"  description: \xff\xfe\n",
        "control-character": _server("  description: a\x07b\n"),
        "undefined-alias": _server("  description: *nowhere\n"),
        "deep-nesting": _server("  description: " + "[" * 150 + "]" * 150 + "\n"),
        "billion-laughs": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(8)),
        "huge-number": _server("  description: " + "9" * 5000 + "\n").replace("description", "enabled"),
        "document-a-list": "- a\n- b\n",
        "document-a-scalar": "just words\n",
        "custom-tag": _server("  description: !custom 1\n"),
        "binary-url": _server(spec="spec:\n  url: !!binary aGVsbG8=\n"),
        "date-out-of-range": _server("  description: 99999-01-01\n").replace("description", "enabled"),
        "recursive-merge": "a: &x {<<: *x}\n",
    }
    return [BadInput(f"yaml-{name}", {"s.yaml": text}) for name, text in texts.items()]


def _cross_object_cases() -> list[BadInput]:
    return [
        BadInput("connection-to-missing-server", {"s.yaml": _doc("MCPConnection", CONNECTION, name="c")}),
        BadInput(
            "shared-connection-without-credential", {"s.yaml": _server(BEARER) + _doc("MCPConnection", CONNECTION)}
        ),
        BadInput(
            "connection-platform-with-subject",
            {"s.yaml": _server() + _doc("MCPConnection", CONNECTION + "  subject: u\n")},
        ),
        BadInput(
            "connection-user-without-subject",
            {"s.yaml": _server() + _doc("MCPConnection", "  serverRef: x\n  scope: user\n")},
        ),
        BadInput(
            "per-member-with-auth",
            {
                "s.yaml": _server()
                + _doc(
                    "MCPConnection",
                    CONNECTION + "  credentialMode: perMember\n  auth:\n    secretKeyRef: {name: s, key: k}\n",
                )
            },
        ),
        BadInput(
            "grant-to-missing-connection",
            {
                "s.yaml": _server()
                + _doc("MCPAccessGrant", "  target: {connectionRef: nope}\n  subjects: [{kind: Organization}]\n")
            },
        ),
        BadInput(
            "grant-without-subjects",
            {"s.yaml": _server() + _doc("MCPAccessGrant", "  target: {serverRef: x}\n  subjects: []\n")},
        ),
        BadInput(
            "binding-to-missing-server",
            {"s.yaml": _doc("MCPTemplateBinding", "  template: t\n  servers: [{serverRef: nope}]\n")},
        ),
        BadInput(
            "binding-server-twice",
            {
                "s.yaml": _server()
                + _doc("MCPTemplateBinding", "  template: t\n  servers: [{serverRef: x}, {serverRef: x}]\n")
            },
        ),
        BadInput(
            "binding-connection-of-another-server",
            {
                "s.yaml": _server()
                + _server(head=HEAD.replace("name: x", "name: w")).replace("apiVersion", "---\napiVersion", 1)
                + _doc("MCPConnection", "  serverRef: w\n  scope: platform\n", name="c")
                + _doc("MCPTemplateBinding", "  template: t\n  servers: [{serverRef: x, connectionRef: c}]\n")
            },
        ),
        BadInput(
            "tenant-slug-collision",
            {
                "s.yaml": _server()
                + _server(head=HEAD.replace("namespace: t", "namespace: u")).replace("apiVersion", "---\napiVersion", 1)
                + "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: u\n"
                + "  labels: {mcp.reconciler.dev/tenant: t}\n"
            },
        ),
        BadInput(
            "template-undefined-var-in-url",
            {"s.yaml": _server(spec="spec:\n  url: https://{{ tenant.vars.nope }}.example.com/mcp\n")},
        ),
        BadInput(
            "template-undefined-var-in-header",
            {"s.yaml": _server("  headers:\n    - {name: a, value: '{{ tenant.vars.nope }}'}\n") + TENANT},
        ),
        BadInput(
            "template-syntax-error",
            {"s.yaml": _server(spec="spec:\n  url: 'https://{{ tenant.slug .example.com/mcp'\n")},
        ),
        BadInput(
            "template-unsupported",
            {"s.yaml": _server("  headers:\n    - {name: a, value: '{% for x in y %}{% endfor %}'}\n")},
        ),
        BadInput(
            "template-renders-no-url",
            {"s.yaml": _server(spec="spec:\n  url: 'https://{{ tenant.vars.region }}x /mcp'\n") + TENANT},
        ),
        BadInput(
            "secret-bad-base64",
            {"s.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: t}\ndata:\n  token: '%%%'\n"},
        ),
        BadInput(
            "secret-binary",
            {"s.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: t}\ndata:\n  token: //4A\n"},
        ),
        BadInput("tenant-var-not-a-string", {"s.yaml": _server() + TENANT + "  seats: 5\n"}),
        BadInput(
            "tenant-label-invalid",
            {
                "s.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: t\n"
                "  labels: {mcp.reconciler.dev/tenant: 'Not A Slug'}\n"
            },
        ),
    ]


def _command_cases() -> list[BadInput]:
    folder = {"s.yaml": _server()}
    cases = [
        BadInput("resolve-show-secrets-without-folder", {}, ("resolve", "-n", "t", "--show-secrets")),
        BadInput("client-max-age-huge", folder, ("apply", "--no-probe", "--client-max-age", "99999999999999999999h")),
        BadInput("client-max-age-not-a-duration", folder, ("apply", "--no-probe", "--client-max-age", "a while")),
        BadInput("get-unknown-kind", {}, ("get", "widgets")),
        BadInput("get-missing-object", {}, ("get", "mcps", "nope", "-n", "t")),
        BadInput("test-unknown-server", folder, ("test", "nope")),
        BadInput("folder-missing", {}, ("apply", "--no-probe", "-f", "/nonexistent/folder")),
        BadInput("registry-url-unsupported", folder, registry="mysql://u:hunter2@127.0.0.1/db"),
        BadInput("registry-url-garbage", folder, registry="::not a url::"),
    ]
    for kind in ("corrupt", "truncated", "empty", "directory"):
        cases += [
            BadInput(f"registry-{kind}-{argv[0]}", folder, argv, registry=kind)
            for argv in (("apply", "--no-probe"), ("plan",), ("get",))
        ]
    return cases


CORPUS = _server_cases() + _yaml_cases() + _cross_object_cases() + _command_cases()


def _state(registry: Path) -> str | bytes | list[str]:
    if registry.is_dir():
        return sorted(child.name for child in registry.iterdir())
    if registry.name != "good.db":
        return registry.read_bytes()
    with open_registry(f"sqlite:///{registry}") as opened:
        return json.dumps(opened.dump(), default=str, sort_keys=True)


def _registry_for(case: BadInput, root: Path, good: Path) -> tuple[str, Path | None]:
    """The `--registry` URL for a case and the file whose state must not change (None: no file at all)."""
    if case.registry == "good":
        path = root / "good.db"
        shutil.copyfile(good, path)
    elif case.registry in ("corrupt", "truncated", "empty", "directory"):
        path = root / f"{case.registry}.db"
        if case.registry == "corrupt":
            path.write_bytes(bytes((index * 7919 + 13) % 256 for index in range(8192)))
        elif case.registry == "truncated":
            path.write_bytes(good.read_bytes()[:8192])
        elif case.registry == "empty":
            path.write_bytes(b"")
        else:
            path.mkdir()
    else:
        return case.registry, None
    return f"sqlite:///{path}", path


def test_every_kind_of_bad_input_is_one_error_with_no_traceback_and_no_write(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tmp_path / "baseline.db"
    assert run("apply", "-f", str(EXAMPLE), "--no-probe", "--registry", f"sqlite:///{good}")[0] == 0
    assert not good.with_name(good.name + "-wal").exists()
    figures = CorpusFigures()
    request.config.stash[CORPUS_FIGURES] = figures
    failures: list[str] = []
    for index, case in enumerate(CORPUS):
        root = tmp_path / f"case{index}"
        folder = root / "manifests"
        folder.mkdir(parents=True)
        for name, content in case.files.items():
            (folder / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        url, registry = _registry_for(case, root, good)
        before = None if registry is None else _state(registry)
        argv = [*case.argv, "--registry", url]
        if case.argv[0] in ("apply", "plan", "test") and "-f" not in case.argv:
            argv += ["-f", str(folder)]
        figures.kinds.append(case.name)
        try:
            code, out, err = run(*argv)
        except BaseException as error:  # what escapes main() is a traceback for the user
            figures.tracebacks.append(f"{case.name}: {type(error).__name__}: {error}")
            continue
        if "Traceback" in out + err:
            figures.tracebacks.append(case.name)
        if code == 0:
            figures.accepted.append(case.name)
        elif code != 1 or out or not err.startswith("error: "):
            failures.append(f"{case.name}: exit {code}, stdout {out!r}, stderr {err!r}")
        if registry is not None and _state(registry) != before:
            figures.partial_writes.append(case.name)
    print(figures.line())
    assert len(figures.kinds) >= 60
    assert figures.tracebacks == []
    assert figures.partial_writes == []
    assert figures.accepted == []
    assert failures == []
