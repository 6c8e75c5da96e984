"""The chart rendered with default and overridden values: what Argo CD and `helm install` would apply.

Asserts on parsed manifests: the single Recreate replica, the operator's arguments, the registry Secret,
probes, security context, least-privilege RBAC in both watch modes, peering, metrics and the PDB. Every
Kubernetes object is also validated against the Kubernetes 1.30 OpenAPI schema in strict mode.
"""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from reconciler.cli import build_parser
from tests.unit.chart.conftest import CHART_DIR, Notes, Render, find, one, rule_set

APP_VERSION = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())["appVersion"]
KINDS = ("mcpservers", "mcpconnections", "mcpaccessgrants", "mcptemplatebindings")
GROUP = "mcp.reconciler.dev"
RBAC_KINDS = {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
KUBERNETES_VERSION = "1.30.0"
NOT_IN_KUBERNETES_SCHEMAS = {"kopf.dev/v1", "monitoring.coreos.com/v1"}
EVERYTHING_ON: dict[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "podDisruptionBudget": {"enabled": True},
    "export": {"configMaps": True},
    "probe": {"allowPrivateNetworks": True},
    "imagePullSecrets": [{"name": "ghcr"}],
    "podAnnotations": {"example.com/team": "platform"},
    "podLabels": {"example.com/cost-centre": "ai"},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}]
            }
        }
    },
    "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"}],
    "extraArgs": ["--verbose"],
    "priorityClassName": "system-cluster-critical",
}
NAMESPACED: dict[str, Any] = {"watch": {"scope": "Namespaced", "namespaces": ["team-a", "team-b"]}}


def expected_namespaced_rules(*, configmap_writes: bool = False) -> set[tuple[str, str, str]]:
    rules = {(GROUP, kind, verb) for kind in KINDS for verb in ("get", "list", "watch", "patch", "update")}
    rules |= {(GROUP, f"{kind}/status", verb) for kind in KINDS for verb in ("get", "patch", "update")}
    rules |= {(GROUP, f"{kind}/finalizers", "update") for kind in KINDS}
    rules |= {("", "secrets", verb) for verb in ("get", "list", "watch")}
    configmap_verbs = ("get", "list", "watch") + (("create", "update", "patch") if configmap_writes else ())
    rules |= {("", "configmaps", verb) for verb in configmap_verbs}
    rules |= {(group, "events", verb) for group in ("", "events.k8s.io") for verb in ("create", "patch")}
    return rules


def deployment(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return one(manifests, "Deployment")


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    containers = deployment(manifests)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


# --------------------------------------------------------------------------------------- whole-chart properties
@pytest.mark.parametrize(
    "overrides",
    [{}, EVERYTHING_ON, NAMESPACED, {**NAMESPACED, **EVERYTHING_ON}, {"peering": {"enabled": False}}],
    ids=["defaults", "everything-on", "namespaced", "namespaced-everything-on", "standalone"],
)
def test_every_object_is_valid_kubernetes(render: Render, overrides: dict[str, Any]) -> None:
    manifests = render(overrides)
    for manifest in manifests:
        if manifest["apiVersion"] in NOT_IN_KUBERNETES_SCHEMAS:
            continue
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overrides", [{}, EVERYTHING_ON, NAMESPACED], ids=["defaults", "everything-on", "namespaced"])
def test_every_object_carries_the_standard_labels(render: Render, overrides: dict[str, Any]) -> None:
    for manifest in render(overrides, release="platform"):
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "mcp-reconciler", manifest["kind"]
        assert labels["app.kubernetes.io/instance"] == "platform"
        assert labels["app.kubernetes.io/version"] == APP_VERSION
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == f"mcp-reconciler-{APP_VERSION}"


def test_defaults_render_exactly_the_expected_objects(render: Render) -> None:
    kinds = sorted((m["kind"], m["metadata"]["name"]) for m in render())
    assert kinds == [
        ("ClusterKopfPeering", "mcp-mcp-reconciler"),
        ("ClusterRole", "mcp-mcp-reconciler"),
        ("ClusterRoleBinding", "mcp-mcp-reconciler"),
        ("Deployment", "mcp-mcp-reconciler"),
        ("Service", "mcp-mcp-reconciler-metrics"),
        ("ServiceAccount", "mcp-mcp-reconciler"),
    ]


def test_namespaced_objects_go_to_the_release_namespace(render: Render) -> None:
    for manifest in render(release="mcp", namespace="platform-ops"):
        if manifest["kind"] in ("Deployment", "Service", "ServiceAccount"):
            assert manifest["metadata"]["namespace"] == "platform-ops"


def test_rendering_is_deterministic(chart: helm.Chart) -> None:
    first = chart.render(EVERYTHING_ON, name="mcp", namespace="mcp-system")
    second = chart.render(EVERYTHING_ON, name="mcp", namespace="mcp-system")
    assert first == second


def test_names_fit_kubernetes_limits_with_the_longest_release_name(render: Render) -> None:
    release = "r" * 53  # Helm refuses longer release names
    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    for manifest in render(EVERYTHING_ON, release=release):
        name = manifest["metadata"]["name"]
        assert len(name) <= 63 and dns_label.match(name), (manifest["kind"], name)


def test_fullname_does_not_repeat_the_chart_name(render: Render) -> None:
    assert deployment(render(release="mcp-reconciler"))["metadata"]["name"] == "mcp-reconciler"
    assert deployment(render({"fullnameOverride": "registry-operator"}))["metadata"]["name"] == "registry-operator"


# --------------------------------------------------------------------------------------- the Deployment
def test_one_replica_recreated_never_rolled(render: Render) -> None:
    spec = deployment(render())["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_selector_matches_pod_labels_and_ignores_the_version(render: Render) -> None:
    spec = deployment(render())["spec"]
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    assert "app.kubernetes.io/version" not in selector and "helm.sh/chart" not in selector


def test_image_is_pinned_to_the_app_version(render: Render) -> None:
    assert container(render())["image"] == f"ghcr.io/mcp-reconciler/mcp-reconciler:{APP_VERSION}"
    assert container(render({"image": {"tag": "0.2.0"}}))["image"].endswith(":0.2.0")
    digest = "sha256:" + "a" * 64
    assert (
        container(render({"image": {"digest": digest}}))["image"] == f"ghcr.io/mcp-reconciler/mcp-reconciler@{digest}"
    )


def test_cluster_mode_runs_the_operator_on_every_namespace_with_peering(render: Render) -> None:
    main = container(render())
    assert main["command"] == ["mcp-reconciler"]
    assert main["args"] == ["run", "--peering", "mcp-mcp-reconciler"]


def test_namespaced_mode_passes_each_watched_namespace(render: Render) -> None:
    assert container(render(NAMESPACED))["args"] == [
        "run",
        "-n",
        "team-a",
        "-n",
        "team-b",
        "--peering",
        "mcp-mcp-reconciler",
    ]


def test_optional_arguments(render: Render) -> None:
    args = container(render({**EVERYTHING_ON, "peering": {"enabled": False}, "metrics": {"port": 9090}}))["args"]
    assert args == ["run", "--standalone", "--allow-private-networks", "--metrics-port", "9090", "--verbose"]


def test_the_platform_namespace_is_passed_when_set(render: Render) -> None:
    args = container(render({"export": {"platformNamespace": "platform"}}))["args"]

    assert args[args.index("--platform-namespace") + 1] == "platform"
    assert "--platform-namespace" not in container(render({}))["args"]


def test_the_public_url_is_passed_when_set(render: Render) -> None:
    args = container(render({"publicUrl": "https://reconciler.example.com"}))["args"]

    assert args[args.index("--public-url") + 1] == "https://reconciler.example.com"
    assert "--public-url" not in container(render({}))["args"]


def test_registry_url_comes_only_from_a_secret(render: Render) -> None:
    def registry_env(manifests: list[dict[str, Any]]) -> dict[str, Any]:
        found = [env for env in container(manifests)["env"] if env["name"] == "MCP_RECONCILER_REGISTRY"]
        assert len(found) == 1
        return found[0]

    default = registry_env(render())
    assert default == {
        "name": "MCP_RECONCILER_REGISTRY",
        "valueFrom": {"secretKeyRef": {"name": "mcp-mcp-reconciler-registry", "key": "dsn"}},
    }
    custom = registry_env(render({"registry": {"existingSecret": {"name": "pg-app", "key": "uri"}}}))
    assert custom["valueFrom"]["secretKeyRef"] == {"name": "pg-app", "key": "uri"}
    assert all("postgres" not in str(env.get("value", "")) for env in container(render())["env"])


def test_store_key_comes_from_a_secret_the_registry_one_by_default(render: Render) -> None:
    def key_env(manifests: list[dict[str, Any]]) -> dict[str, Any]:
        (found,) = [env for env in container(manifests)["env"] if env["name"] == "MCP_RECONCILER_KEY"]
        return dict(found["valueFrom"]["secretKeyRef"])

    assert key_env(render()) == {"name": "mcp-mcp-reconciler-registry", "key": "store-key"}
    custom = render({"secretStore": {"existingSecret": {"name": "store", "key": "aes"}}})
    assert key_env(custom) == {"name": "store", "key": "aes"}


def test_probing_can_be_turned_off(render: Render) -> None:
    assert "--no-probe" not in container(render())["args"]
    assert container(render({"probe": {"enabled": False}}))["args"] == [
        "run",
        "--peering",
        "mcp-mcp-reconciler",
        "--no-probe",
    ]


def test_extra_env_is_appended(render: Render) -> None:
    env = container(render(EVERYTHING_ON))["env"]
    assert env[-1] == {"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"}


@pytest.mark.parametrize("probe", ["startupProbe", "livenessProbe", "readinessProbe"])
def test_probes_hit_healthz_on_the_metrics_port(render: Render, probe: str) -> None:
    main = container(render())
    assert main[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert main["ports"] == [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}]


def test_a_probe_can_be_turned_off(render: Render) -> None:
    main = container(render({"probes": {"readiness": {"enabled": False}}}))
    assert "readinessProbe" not in main
    assert "livenessProbe" in main and "startupProbe" in main


def test_startup_probe_tolerates_a_slow_first_listing(render: Render) -> None:
    startup = container(render())["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_metrics_port_moves_everything_together(render: Render) -> None:
    manifests = render({"metrics": {"port": 9090}})
    assert container(manifests)["ports"][0]["containerPort"] == 9090
    assert one(manifests, "Service")["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert "--metrics-port" not in container(render())["args"]


def test_hardened_security_context(render: Render) -> None:
    pod = deployment(render())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = pod["containers"][0]["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}


def test_tmp_is_a_writable_empty_dir(render: Render) -> None:
    pod = deployment(render())["spec"]["template"]["spec"]
    assert {"name": "tmp", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]


def test_resources_and_scheduling_pass_through(render: Render) -> None:
    pod = deployment(render(EVERYTHING_ON))["spec"]["template"]
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"memory": "512Mi"}
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"][0]["key"] == "dedicated"
    assert pod["spec"]["affinity"] == EVERYTHING_ON["affinity"]
    assert pod["spec"]["imagePullSecrets"] == [{"name": "ghcr"}]
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["metadata"]["annotations"] == {"example.com/team": "platform"}
    assert pod["metadata"]["labels"]["example.com/cost-centre"] == "ai"


def test_termination_grace_period_leaves_time_for_finalizers(render: Render) -> None:
    assert deployment(render())["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


# --------------------------------------------------------------------------------------- service account and RBAC
def test_service_account_is_created_and_used(render: Render) -> None:
    manifests = render()
    account = one(manifests, "ServiceAccount")
    assert deployment(manifests)["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mcp-mcp-reconciler", "namespace": "mcp-system"}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": one(manifests, "ClusterRole")["metadata"]["name"],
    }


def test_an_existing_service_account_can_be_used(render: Render) -> None:
    manifests = render({"serviceAccount": {"create": False, "name": "platform-operator"}})
    assert not find(manifests, "ServiceAccount")
    assert deployment(manifests)["spec"]["template"]["spec"]["serviceAccountName"] == "platform-operator"
    assert one(manifests, "ClusterRoleBinding")["subjects"][0]["name"] == "platform-operator"
    unnamed = render({"serviceAccount": {"create": False}})
    assert deployment(unnamed)["spec"]["template"]["spec"]["serviceAccountName"] == "default"


def test_rbac_can_be_left_to_someone_else(render: Render) -> None:
    for overrides in ({"rbac": {"create": False}}, {**NAMESPACED, "rbac": {"create": False}}):
        assert not [m for m in render(overrides) if m["kind"] in RBAC_KINDS]


def test_cluster_mode_grants_exactly_what_the_operator_needs(render: Render) -> None:
    role = one(render(), "ClusterRole")
    assert rule_set(role) == expected_namespaced_rules() | {
        ("", "namespaces", "get"),
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("kopf.dev", "clusterkopfpeerings", "get"),
        ("kopf.dev", "clusterkopfpeerings", "list"),
        ("kopf.dev", "clusterkopfpeerings", "watch"),
        ("kopf.dev", "clusterkopfpeerings", "patch"),
    }


@pytest.mark.parametrize("overrides", [{}, EVERYTHING_ON, NAMESPACED, {**NAMESPACED, **EVERYTHING_ON}])
def test_no_wildcards_no_secret_writes_no_deletes(render: Render, overrides: dict[str, Any]) -> None:
    for role in [m for m in render(overrides) if m["kind"] in ("ClusterRole", "Role")]:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        granted = rule_set(role)
        assert not {verb for _, resource, verb in granted if resource == "secrets"} - {"get", "list", "watch"}
        dangerous = {triple for triple in granted if triple[2] in ("delete", "deletecollection", "escalate", "bind")}
        # The one delete: ConfigMaps a binding exported, when the export is on (removed with the binding).
        exported = {("", "configmaps", "delete")} if overrides.get("export", {}).get("configMaps") else set()
        assert dangerous <= exported


def test_configmap_writes_only_with_the_export_feature(render: Render) -> None:
    def configmap_verbs(overrides: dict[str, Any]) -> set[str]:
        return {
            verb for _, resource, verb in rule_set(one(render(overrides), "ClusterRole")) if resource == "configmaps"
        }

    assert configmap_verbs({}) == {"get", "list", "watch"}
    assert configmap_verbs({"export": {"configMaps": True}}) == {
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
    }


def test_namespaced_mode_uses_a_role_per_watched_namespace(render: Render) -> None:
    manifests = render(NAMESPACED)
    roles = find(manifests, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    for role in roles:
        assert rule_set(role) == expected_namespaced_rules() | {
            ("kopf.dev", "kopfpeerings", verb) for verb in ("get", "list", "watch", "patch")
        }
    bindings = find(manifests, "RoleBinding")
    assert sorted(binding["metadata"]["namespace"] for binding in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "mcp-mcp-reconciler", "namespace": "mcp-system"}
        ]


def test_namespaced_mode_reads_only_the_watched_namespace_objects_cluster_wide(render: Render) -> None:
    manifests = render(NAMESPACED)
    (cluster_role,) = find(manifests, "ClusterRole")
    assert cluster_role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["namespaces"],
            "resourceNames": ["team-a", "team-b"],
            "verbs": ["get", "list", "watch"],
        }
    ]
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]


def test_watch_mode_mistakes_fail_the_render_even_without_the_schema(render: Render) -> None:
    with pytest.raises(helm.HelmRenderError, match="needs at least one namespace"):
        render({"watch": {"scope": "Namespaced", "namespaces": []}}, validate=False)
    with pytest.raises(helm.HelmRenderError, match=r"only used with watch\.scope=Namespaced"):
        render({"watch": {"scope": "Cluster", "namespaces": ["team-a"]}}, validate=False)


# --------------------------------------------------------------------------------------- peering
def test_cluster_mode_peering_object_matches_the_operator_argument(render: Render) -> None:
    manifests = render({"peering": {"name": "mcp-prod"}})
    peering = one(manifests, "ClusterKopfPeering")
    assert peering["apiVersion"] == "kopf.dev/v1"
    assert peering["metadata"]["name"] == "mcp-prod"
    assert "namespace" not in peering["metadata"]
    assert container(manifests)["args"][-2:] == ["--peering", "mcp-prod"]


def test_namespaced_mode_has_a_peering_object_in_each_watched_namespace(render: Render) -> None:
    manifests = render(NAMESPACED)
    assert not find(manifests, "ClusterKopfPeering")
    peerings = find(manifests, "KopfPeering")
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings) == [
        ("team-a", "mcp-mcp-reconciler"),
        ("team-b", "mcp-mcp-reconciler"),
    ]


@pytest.mark.parametrize("overrides", [{}, NAMESPACED], ids=["cluster", "namespaced"])
def test_standalone_mode_has_no_peering_objects_or_permissions(render: Render, overrides: dict[str, Any]) -> None:
    manifests = render({**overrides, "peering": {"enabled": False}})
    assert not find(manifests, "ClusterKopfPeering") and not find(manifests, "KopfPeering")
    for role in [m for m in manifests if m["kind"] in ("ClusterRole", "Role")]:
        assert not [triple for triple in rule_set(role) if triple[0] == "kopf.dev"]
    assert "--standalone" in container(manifests)["args"]


# --------------------------------------------------------------------------------------- metrics and PDB
def test_metrics_service_selects_the_operator_pod(render: Render) -> None:
    manifests = render()
    service = one(manifests, "Service")
    pod_labels = deployment(manifests)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["type"] == "ClusterIP"
    assert not find(render({"metrics": {"service": {"enabled": False}}}), "Service")


def test_service_monitor_is_optional_and_scrapes_the_metrics_service(render: Render) -> None:
    assert not find(render(), "ServiceMonitor")
    manifests = render(EVERYTHING_ON)
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["mcp-system"]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_service_monitor_without_the_service_fails(render: Render) -> None:
    overrides = {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}}
    with pytest.raises(helm.HelmRenderError, match=r"needs metrics\.service\.enabled"):
        render(overrides)


def test_pdb_is_off_by_default_and_never_min_available(render: Render) -> None:
    assert not find(render(), "PodDisruptionBudget")
    manifests = render({"podDisruptionBudget": {"enabled": True}})
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    pod_labels = deployment(manifests)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


# --------------------------------------------------------------------------------------- NOTES.txt
def test_notes_tell_how_to_create_the_registry_secret(notes: Notes) -> None:
    text = notes({"registry": {"existingSecret": {"name": "pg-app", "key": "uri"}}})
    assert "create secret generic pg-app" in text
    assert "--from-literal=uri=" in text
    assert "team-a, team-b" in notes(NAMESPACED)


def test_an_init_container_migrates_the_registry_before_the_operator_starts(render: Render) -> None:
    pod = deployment(render(EVERYTHING_ON))["spec"]["template"]["spec"]
    (migrate,) = pod["initContainers"]
    operator = pod["containers"][0]
    assert migrate["command"] == ["mcp-reconciler", "migrate"]
    assert migrate["image"] == operator["image"]
    assert migrate["securityContext"] == operator["securityContext"]
    assert migrate["resources"] == operator["resources"]
    assert {"name": "tmp", "mountPath": "/tmp"} in migrate["volumeMounts"]
    registry = [env for env in migrate["env"] if env["name"] == "MCP_RECONCILER_REGISTRY"]
    assert registry == [env for env in operator["env"] if env["name"] == "MCP_RECONCILER_REGISTRY"]
    assert all("valueFrom" in env or env["name"] in {"HOME", "PYTHONDONTWRITEBYTECODE"} for env in migrate["env"])


def test_the_upstream_interval_and_token_reach_the_operator(render: Render) -> None:
    overrides = {"upstream": {"interval": "30m", "tokenSecret": {"name": "upstream-registry", "key": "bearer"}}}
    main = container(render(overrides))

    args = build_parser().parse_args(main["args"])
    assert args.upstream_interval == "30m"
    (token,) = [env for env in main["env"] if env["name"] == "MCP_RECONCILER_UPSTREAM_TOKEN"]
    assert token["valueFrom"] == {"secretKeyRef": {"name": "upstream-registry", "key": "bearer"}}
    defaults = container(render())
    assert "--upstream-interval" not in defaults["args"], "the CLI's default, 1h, needs no flag"
    assert "MCP_RECONCILER_UPSTREAM_TOKEN" not in [env["name"] for env in defaults["env"]]


def test_a_bad_upstream_interval_fails_the_render(render: Render) -> None:
    with pytest.raises(helm.HelmValuesError, match=r"/upstream/interval"):
        render({"upstream": {"interval": "hourly"}})
