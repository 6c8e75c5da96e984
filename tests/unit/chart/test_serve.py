"""The chart's optional `serve` component: `mcp-reconciler serve` in a Deployment of its own, a Service, an Ingress.

Asserts on what `helm template` renders with `serve.enabled`: nothing new when it is off; one Recreate replica
whose arguments the real CLI parser accepts, with the public URL, the registry and store-key Secrets the operator
uses and the platform token from its own Secret; pods, Service and selectors that never overlap the operator's;
the Ingress in the usual chart shape; and a failed render when the token Secret is missing. Every Kubernetes
object is validated against the Kubernetes 1.30 OpenAPI schema in strict mode, as in test_render.py.
"""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from reconciler.cli import build_parser
from tests.unit.chart.conftest import Notes, Render, find, one, rule_set
from tests.unit.chart.test_render import EVERYTHING_ON, KUBERNETES_VERSION, NAMESPACED, NOT_IN_KUBERNETES_SCHEMAS

PUBLIC_URL = "https://mcp.example.com"
SERVE: dict[str, Any] = {"serve": {"enabled": True, "tokenSecret": {"name": "mcp-serve", "key": "bearer"}}}
SERVE_PUBLIC: dict[str, Any] = {**SERVE, "publicUrl": PUBLIC_URL}
INGRESS: dict[str, Any] = {
    "publicUrl": PUBLIC_URL,
    "serve": {
        "enabled": True,
        "tokenSecret": {"name": "mcp-serve"},
        "service": {"port": 8080},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "hosts": [{"host": "mcp.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}],
            "tls": [{"secretName": "mcp-example-tls", "hosts": ["mcp.example.com"]}],
        },
    },
}
SERVE_SECRETS: dict[str, Any] = {
    "publicUrl": PUBLIC_URL,
    "serve": {"enabled": True, "tokenSecret": {"name": "mcp-serve"}, "secrets": {"read": True}},
}
SERVE_NAME = "mcp-mcp-reconciler-serve"
OPERATOR_NAME = "mcp-mcp-reconciler"


def serve_deployment(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return one(manifests, "Deployment", SERVE_NAME)


def serve_container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = serve_deployment(manifests)["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def operator_pod(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    pod = one(manifests, "Deployment", OPERATOR_NAME)["spec"]["template"]
    assert isinstance(pod, dict)
    return pod


def env_by_name(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {env["name"]: env for env in container["env"]}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


# --------------------------------------------------------------------------------------- off by default
@pytest.mark.parametrize(
    "overrides",
    [{}, {"publicUrl": PUBLIC_URL, "serve": {"tokenSecret": {"name": "mcp-serve"}, "ingress": {"enabled": True}}}],
    ids=["defaults", "configured-but-disabled"],
)
def test_serve_disabled_renders_nothing_new(render: Render, overrides: dict[str, Any]) -> None:
    manifests = render(overrides)
    assert [m["metadata"]["name"] for m in find(manifests, "Deployment")] == [OPERATOR_NAME]
    assert [m["metadata"]["name"] for m in find(manifests, "Service")] == ["mcp-mcp-reconciler-metrics"]
    assert not find(manifests, "Ingress")


def test_serve_disabled_needs_no_token_secret(render: Render) -> None:
    assert render({"serve": {"enabled": False, "tokenSecret": {"name": ""}}})


# --------------------------------------------------------------------------------------- valid Kubernetes
@pytest.mark.parametrize(
    "overrides",
    [
        SERVE,
        SERVE_PUBLIC,
        INGRESS,
        {**EVERYTHING_ON, **INGRESS},
        {**NAMESPACED, **SERVE_PUBLIC},
        {**NAMESPACED, **SERVE_SECRETS},
        {**EVERYTHING_ON, **SERVE_SECRETS},
    ],
    ids=[
        "serve",
        "serve-public-url",
        "ingress",
        "everything-on-ingress",
        "namespaced-serve",
        "namespaced-secrets",
        "everything-on-secrets",
    ],
)
def test_every_object_is_valid_kubernetes(render: Render, overrides: dict[str, Any]) -> None:
    for manifest in render(overrides):
        if manifest["apiVersion"] in NOT_IN_KUBERNETES_SCHEMAS:
            continue
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_serve_renders_a_deployment_and_a_service(render: Render) -> None:
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in render(SERVE) if "serve" in m["metadata"]["name"])
    assert kinds == [("Deployment", SERVE_NAME), ("Service", SERVE_NAME)]


def test_serve_objects_carry_the_standard_labels(render: Render) -> None:
    for manifest in render(INGRESS, release="platform"):
        if manifest["metadata"]["name"] != "platform-mcp-reconciler-serve":
            continue
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "mcp-reconciler-serve", manifest["kind"]
        assert labels["app.kubernetes.io/instance"] == "platform"
        assert labels["app.kubernetes.io/component"] == "serve"
        assert labels["app.kubernetes.io/part-of"] == "mcp-reconciler"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


def test_serve_names_never_collide_with_the_operator_even_with_the_longest_release_name(render: Render) -> None:
    release = "r" * 53  # Helm refuses longer release names
    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    manifests = render(INGRESS, release=release)
    deployments = [m["metadata"]["name"] for m in find(manifests, "Deployment")]
    services = [m["metadata"]["name"] for m in find(manifests, "Service")]
    assert len(set(deployments)) == 2 and len(set(services)) == 2
    for name in deployments + services + [m["metadata"]["name"] for m in find(manifests, "Ingress")]:
        assert len(name) <= 63 and dns_label.match(name), name


# --------------------------------------------------------------------------------------- the serve Deployment
def test_one_replica_recreated_never_rolled(render: Render) -> None:
    spec = serve_deployment(render(SERVE))["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_serve_listens_on_every_interface_with_the_public_url(render: Render) -> None:
    container = serve_container(render(SERVE_PUBLIC))
    assert container["command"] == ["mcp-reconciler"]
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", "8787", "--public-url", PUBLIC_URL]
    assert container["ports"] == [{"name": "http", "containerPort": 8787, "protocol": "TCP"}]


def test_the_public_url_is_passed_only_when_set(render: Render) -> None:
    assert "--public-url" not in serve_container(render(SERVE))["args"]


def test_optional_arguments_follow_the_operator_values(render: Render) -> None:
    overrides = {
        **SERVE,
        "probe": {"allowPrivateNetworks": True},
        "export": {"platformNamespace": "platform"},
    }
    overrides["serve"] = {**SERVE["serve"], "port": 9000, "extraArgs": ["--anonymous"]}
    container = serve_container(render(overrides))
    assert container["args"] == [
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "9000",
        "--allow-private-networks",
        "--platform-namespace",
        "platform",
        "--anonymous",
    ]
    assert container["ports"][0]["containerPort"] == 9000


def test_the_cli_accepts_the_arguments_and_reads_the_token_from_the_secret(render: Render) -> None:
    container = serve_container(render({**SERVE_PUBLIC, "export": {"platformNamespace": "platform"}}))
    args = build_parser().parse_args(container["args"])
    assert (args.host, args.port, args.public_url, args.platform_namespace) == (
        "0.0.0.0",
        8787,
        PUBLIC_URL,
        "platform",
    )
    token = env_by_name(container)[args.token_env]
    assert token == {"name": args.token_env, "valueFrom": {"secretKeyRef": {"name": "mcp-serve", "key": "bearer"}}}


def test_the_token_secret_key_defaults_to_token(render: Render) -> None:
    container = serve_container(render({"serve": {"enabled": True, "tokenSecret": {"name": "mcp-serve"}}}))
    reference = env_by_name(container)["MCP_RECONCILER_SERVE_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert reference == {"name": "mcp-serve", "key": "token"}


def test_serve_uses_the_operators_registry_and_store_key_secrets(render: Render) -> None:
    overrides = {
        **SERVE,
        "registry": {"existingSecret": {"name": "pg-app", "key": "uri"}},
        "secretStore": {"existingSecret": {"name": "mcp-store", "key": "key"}},
    }
    manifests = render(overrides)
    operator = env_by_name(operator_pod(manifests)["spec"]["containers"][0])
    serve = env_by_name(serve_container(manifests))
    for name in ("MCP_RECONCILER_REGISTRY", "MCP_RECONCILER_KEY", "HOME", "PYTHONDONTWRITEBYTECODE"):
        assert serve[name] == operator[name], name
    assert serve["MCP_RECONCILER_REGISTRY"]["valueFrom"]["secretKeyRef"] == {"name": "pg-app", "key": "uri"}
    assert serve["MCP_RECONCILER_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "mcp-store", "key": "key"}
    assert all("valueFrom" in env or env["name"] in {"HOME", "PYTHONDONTWRITEBYTECODE"} for env in serve.values())


def test_serve_pod_mirrors_the_operators_image_and_security(render: Render) -> None:
    manifests = render({**EVERYTHING_ON, **SERVE})
    operator = operator_pod(manifests)["spec"]
    pod = serve_deployment(manifests)["spec"]["template"]["spec"]
    container = serve_container(manifests)
    assert container["image"] == operator["containers"][0]["image"]
    assert container["securityContext"] == operator["containers"][0]["securityContext"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"] == operator["securityContext"]
    assert pod["securityContext"]["runAsUser"] == 65532 and pod["securityContext"]["runAsNonRoot"] is True
    assert pod["volumes"] == operator["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    for key in ("imagePullSecrets", "nodeSelector", "tolerations", "affinity", "priorityClassName"):
        assert pod[key] == operator[key], key
    # serve never calls the Kubernetes API.
    assert pod["automountServiceAccountToken"] is False


def test_an_init_container_migrates_the_registry_before_serve_starts(render: Render) -> None:
    manifests = render(SERVE)
    pod = serve_deployment(manifests)["spec"]["template"]["spec"]
    (migrate,) = pod["initContainers"]
    (operator_migrate,) = operator_pod(manifests)["spec"]["initContainers"]
    assert migrate["command"] == ["mcp-reconciler", "migrate"]
    assert migrate["env"] == operator_migrate["env"]
    assert migrate["securityContext"] == operator_migrate["securityContext"]


def test_probes_check_the_port_since_every_http_route_needs_a_token(render: Render) -> None:
    container = serve_container(render(SERVE))
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "http"}, probe
        assert "httpGet" not in container[probe]


def test_serve_has_resources_of_its_own(render: Render) -> None:
    default = serve_container(render(SERVE))["resources"]
    assert default["requests"]["memory"] and default["limits"]["memory"]
    overrides = {"serve": {**SERVE["serve"], "resources": {"limits": {"memory": "1Gi"}}}}
    assert serve_container(render(overrides))["resources"]["limits"]["memory"] == "1Gi"


# --------------------------------------------------------------------------------------- selectors
def test_serve_and_operator_select_only_their_own_pods(render: Render) -> None:
    manifests = render({**SERVE, "podDisruptionBudget": {"enabled": True}})
    operator = one(manifests, "Deployment", OPERATOR_NAME)
    serve = serve_deployment(manifests)
    operator_labels = operator["spec"]["template"]["metadata"]["labels"]
    serve_labels = serve["spec"]["template"]["metadata"]["labels"]
    serve_service = one(manifests, "Service", SERVE_NAME)
    metrics_service = one(manifests, "Service", "mcp-mcp-reconciler-metrics")
    pdb = one(manifests, "PodDisruptionBudget")

    assert selects(serve["spec"]["selector"]["matchLabels"], serve_labels)
    assert selects(serve_service["spec"]["selector"], serve_labels)
    for selector in (serve["spec"]["selector"]["matchLabels"], serve_service["spec"]["selector"]):
        assert not selects(selector, operator_labels)
    for selector in (
        operator["spec"]["selector"]["matchLabels"],
        metrics_service["spec"]["selector"],
        pdb["spec"]["selector"]["matchLabels"],
    ):
        assert not selects(selector, serve_labels)
    assert "app.kubernetes.io/version" not in serve["spec"]["selector"]["matchLabels"]


# --------------------------------------------------------------------------------------- Service and Ingress
def test_service_is_cluster_ip_by_default_and_targets_the_serve_port(render: Render) -> None:
    service = one(render(SERVE), "Service", SERVE_NAME)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    overrides = {"serve": {**SERVE["serve"], "service": {"type": "LoadBalancer", "port": 443}}}
    service = one(render(overrides), "Service", SERVE_NAME)
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"][0]["port"] == 443


def test_ingress_routes_the_host_to_the_serve_service(render: Render) -> None:
    manifests = render(INGRESS)
    ingress = one(manifests, "Ingress", SERVE_NAME)
    service = one(manifests, "Service", SERVE_NAME)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["rules"] == [
        {
            "host": "mcp.example.com",
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": service["metadata"]["name"], "port": {"number": 8080}}},
                    }
                ]
            },
        }
    ]
    assert service["spec"]["ports"][0]["port"] == 8080
    assert ingress["spec"]["tls"] == [{"hosts": ["mcp.example.com"], "secretName": "mcp-example-tls"}]


def test_ingress_without_hosts_serves_the_public_urls_host(render: Render) -> None:
    overrides = {
        "publicUrl": "https://connect.example.com:8443/acme",
        "serve": {"enabled": True, "tokenSecret": {"name": "mcp-serve"}, "ingress": {"enabled": True}},
    }
    ingress = one(render(overrides), "Ingress", SERVE_NAME)
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "connect.example.com"
    assert [(path["path"], path["pathType"]) for path in rule["http"]["paths"]] == [("/", "Prefix")]
    assert "tls" not in ingress["spec"] and "ingressClassName" not in ingress["spec"]


def test_ingress_without_hosts_or_public_url_fails(render: Render) -> None:
    overrides = {"serve": {"enabled": True, "tokenSecret": {"name": "mcp-serve"}, "ingress": {"enabled": True}}}
    with pytest.raises(helm.HelmRenderError, match=r"needs serve\.ingress\.hosts or publicUrl"):
        render(overrides)


# --------------------------------------------------------------------------------------- the token Secret
def test_serve_without_a_token_secret_fails_the_render(render: Render) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"serve\.enabled needs serve\.tokenSecret\.name"):
        render({"serve": {"enabled": True}}, validate=False)
    with pytest.raises(helm.HelmValuesError, match=r"/serve/tokenSecret/name"):
        render({"serve": {"enabled": True}})


def test_notes_tell_how_to_create_the_token_secret_and_route_the_public_url(notes: Notes) -> None:
    assert "serve" not in notes().split("kubectl apply --server-side")[-1]
    text = notes(SERVE_PUBLIC)
    assert "create secret generic mcp-serve" in text and "--from-literal=bearer=" in text
    assert f"{PUBLIC_URL}/oauth/callback" in text
    assert f"service/{SERVE_NAME}" in text


def test_the_registry_api_callers_file_is_mounted_from_a_configmap_and_passed_as_callers(render: Render) -> None:
    manifests = render({"serve": {**SERVE["serve"], "callers": {"configMap": "registry-callers"}, "anonymous": True}})
    container = serve_container(manifests)
    args = build_parser().parse_args(container["args"])
    assert str(args.callers) == "/etc/mcp-reconciler/callers/callers.yaml"
    assert args.anonymous is True
    assert {"name": "callers", "mountPath": "/etc/mcp-reconciler/callers", "readOnly": True} in container[
        "volumeMounts"
    ]
    volumes = serve_deployment(manifests)["spec"]["template"]["spec"]["volumes"]
    assert {
        "name": "callers",
        "configMap": {"name": "registry-callers", "items": [{"key": "callers.yaml", "path": "callers.yaml"}]},
    } in volumes
    kubernetes_validate.validate(serve_deployment(manifests), KUBERNETES_VERSION, strict=True)


def test_without_callers_only_the_platform_token_is_known(render: Render) -> None:
    container = serve_container(render(SERVE))
    args = build_parser().parse_args(container["args"])
    assert args.callers is None and args.anonymous is False
    assert [mount["name"] for mount in container["volumeMounts"]] == ["tmp"]


# --------------------------------------------------------------------------------------- serve.secrets.read
SECRET_GET = {("", "secrets", "get")}


def test_serve_reads_no_secrets_by_default(render: Render) -> None:
    manifests = render(SERVE_PUBLIC)
    assert "--secrets" not in serve_container(manifests)["args"]
    assert not [m for m in manifests if m["kind"] in RBAC_KINDS and m["metadata"]["name"] == SERVE_NAME]
    assert not find(manifests, "ServiceAccount", SERVE_NAME)


def test_reading_secrets_runs_serve_as_its_own_account_with_a_token(render: Render) -> None:
    manifests = render(SERVE_SECRETS)
    pod = serve_deployment(manifests)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SERVE_NAME != operator_pod(manifests)["spec"]["serviceAccountName"]
    assert pod["automountServiceAccountToken"] is True
    account = one(manifests, "ServiceAccount", SERVE_NAME)
    assert account["automountServiceAccountToken"] is False, "only the serve pod mounts the token"
    args = build_parser().parse_args(serve_container(manifests)["args"])
    assert args.secrets == "kubernetes" and args.kubeconfig is None, "in-cluster: the pod's service account"


def test_reading_secrets_in_cluster_mode_grants_exactly_get_on_secrets(render: Render) -> None:
    manifests = render(SERVE_SECRETS)
    role = one(manifests, "ClusterRole", SERVE_NAME)
    assert rule_set(role) == SECRET_GET
    binding = one(manifests, "ClusterRoleBinding", SERVE_NAME)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": SERVE_NAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SERVE_NAME, "namespace": "mcp-system"}]
    assert not find(manifests, "Role", SERVE_NAME) and not find(manifests, "RoleBinding", SERVE_NAME)


def test_reading_secrets_in_namespaced_mode_grants_get_in_each_watched_namespace_only(render: Render) -> None:
    manifests = render({**NAMESPACED, **SERVE_SECRETS})
    roles = find(manifests, "Role", SERVE_NAME)
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    assert all(rule_set(role) == SECRET_GET for role in roles)
    bindings = find(manifests, "RoleBinding", SERVE_NAME)
    assert sorted(binding["metadata"]["namespace"] for binding in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"]["name"] == SERVE_NAME
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SERVE_NAME, "namespace": "mcp-system"}]
    assert not find(manifests, "ClusterRole", SERVE_NAME) and not find(manifests, "ClusterRoleBinding", SERVE_NAME)


def test_reading_secrets_without_rbac_creates_the_account_only(render: Render) -> None:
    manifests = render({**SERVE_SECRETS, "rbac": {"create": False}})
    assert find(manifests, "ServiceAccount", SERVE_NAME)
    assert not [m for m in manifests if m["kind"] in RBAC_KINDS and m["metadata"]["name"] == SERVE_NAME]


RBAC_KINDS = {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
