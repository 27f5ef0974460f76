"""The Helm chart in deploy/helm/autoloader: its values, their schema, and what it renders."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from autoloader_processor.settings import ProcessorSettings
from shared.topics import FILES

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "autoloader"
# Deployments the chart renders with its default values.
WORKLOADS = {"api", "scheduler-sync", "discovery-worker", "s3-events", "processor"}
# Variables every service reads, from the ConfigMap or from the Secret.
CONFIG_VARIABLES = {
    "AUTOLOADER_ENV",
    "AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS",
    "AUTOLOADER_S3_ENDPOINT_URL",
    "AUTOLOADER_S3_REGION",
    "AUTOLOADER_SPARK_REMOTE",
    "PREFECT_API_URL",
}
# With the default values: no S3 keys, so that an IAM role or the default chain applies.
SECRET_VARIABLES = {
    "AUTOLOADER_DATABASE_URL",
    "AUTOLOADER_CREDENTIALS_KEY",
}
S3_KEY_VARIABLES = {"AUTOLOADER_S3_ACCESS_KEY_ID", "AUTOLOADER_S3_SECRET_ACCESS_KEY"}
# Secrets only one workload gets.
OWN_SECRET_VARIABLES = {"scheduler-sync": {"AUTOLOADER_COMMANDS_SIGNING_SECRET"}}
# The Kubernetes version the manifests are validated against: helm's default (`make helm`).
KUBERNETES = "1.31.0"
INSTALL_HELM = (
    "helm is not installed: run `make helm` (it needs Go), or set HELM to a helm binary's path"
)


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    loaded: dict[str, Any] = _load_yaml(CHART / "values.yaml")
    return loaded


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    assert "draft-07" in schema["$schema"]
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def test_values_yaml_satisfies_the_schema(
    values: dict[str, Any], validator: Draft7Validator
) -> None:
    errors = [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(values)
    ]
    assert errors == []


@pytest.mark.parametrize(
    ("path", "wrong"),
    [
        ("processor.replicas", "2"),
        ("processor.poolSize", 0),
        ("api.port", "8000"),
        ("api.replcas", 2),
        ("credentials.existingSecret", ""),
        ("credentials.keys.databaseUrl", ""),
        ("connections.spark.remote", "http://spark-connect:15002"),
        ("discoveryWorker.limit", "4"),
        ("discoveryWorker.queryIntervalSeconds", 0),
        ("migrations.enabled", "yes"),
    ],
)
def test_schema_rejects_a_wrong_value(
    values: dict[str, Any], validator: Draft7Validator, path: str, wrong: object
) -> None:
    changed = copy.deepcopy(values)
    *parents, key = path.split(".")
    target = changed
    for parent in parents:
        target = target[parent]
    target[key] = wrong

    failing_paths = {
        ".".join(map(str, [*error.absolute_path, *_extra_keys(error)]))
        for error in validator.iter_errors(changed)
    }
    assert path in failing_paths, f"schema accepted {path}={wrong!r}"


def _extra_keys(error: ValidationError) -> list[str]:
    """The unknown keys an additionalProperties error is about, so paths name them."""
    if error.validator != "additionalProperties":
        return []
    return re.findall(r"'([^']+)' was unexpected", error.message)


def _undocumented_keys(text: str) -> list[str]:
    """Keys whose value nothing documents: no `# --` comment above them or above an ancestor."""
    lines = text.splitlines()

    def has_doc_comment(line: int) -> bool:
        above = line - 1
        while above >= 0 and lines[above].lstrip().startswith("#"):
            if lines[above].lstrip().startswith("# --"):
                return True
            above -= 1
        return False

    missing: list[str] = []

    def walk(node: yaml.Node, prefix: str, documented: bool) -> None:
        for key, value in node.value:
            path = f"{prefix}{key.value}"
            key_documented = documented or has_doc_comment(key.start_mark.line)
            if isinstance(value, yaml.MappingNode) and value.value:
                walk(value, f"{path}.", key_documented)
            elif not key_documented:
                missing.append(path)

    root = yaml.compose(text)
    assert isinstance(root, yaml.MappingNode)
    walk(root, "", False)
    return missing


def test_every_value_is_documented() -> None:
    assert _undocumented_keys((CHART / "values.yaml").read_text()) == []


def test_the_documentation_check_finds_an_undocumented_key() -> None:
    text = "# -- documented\na: 1\nsection:\n  # a plain comment is not documentation\n  b: 2\n"
    assert _undocumented_keys(text) == ["section.b"]


def test_chart_yaml_has_the_required_fields() -> None:
    chart = _load_yaml(CHART / "Chart.yaml")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    assert chart["apiVersion"] == "v2"
    assert chart["name"] == CHART.name
    assert chart["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(chart["version"]))
    assert chart["appVersion"] == project["version"] == "0.1.0"
    assert chart["description"]


@pytest.fixture(scope="module")
def helm() -> str:
    """$HELM, else the helm `make helm` builds, else helm on PATH."""
    built = Path.home() / ".cache" / "autoloader" / "go" / "helm-v3.16.4" / "helm"
    found = shutil.which(os.environ.get("HELM", str(built) if built.exists() else "helm"))
    if found is None:
        pytest.skip(INSTALL_HELM)
    return found


def _run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr}"
    return result.stdout


# Ingress and ServiceMonitor on, AWS S3 with keys from the Secret: the optional branches.
EVERYTHING_ON = {
    "connections": {"s3": {"endpointUrl": ""}},
    "credentials": {
        "keys": {"s3AccessKeyId": "s3-access-key-id", "s3SecretAccessKey": "s3-secret-access-key"}
    },
    "discoveryWorker": {"limit": 4, "queryIntervalSeconds": 0.5},
    # A fixed number of processors, and a budget in percent.
    "processor": {"replicas": 3, "autoscaling": {"enabled": False}},
    "api": {"podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"}},
    "serviceMonitor": {"enabled": True},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
    "ingress": {"enabled": True, "className": "nginx"},
}
# The processor scaled by KEDA on its consumer lag, through a TriggerAuthentication.
KEDA = {
    "processor": {"autoscaling": {"keda": {"enabled": True, "authenticationRef": "kafka-sasl"}}}
}


@pytest.fixture(scope="module")
def rendered(
    helm: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, Any]]]:
    """The chart rendered with its defaults and with every optional part on, as objects."""
    folder = tmp_path_factory.mktemp("helm")
    variants: list[tuple[str, list[str]]] = [("defaults", [])]
    for name, values in (("everything-on", EVERYTHING_ON), ("keda", KEDA)):
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(values))
        variants.append((name, ["--values", str(folder / f"{name}.yaml")]))
    renders: dict[str, list[dict[str, Any]]] = {}
    for name, extra in variants:
        _run(helm, "lint", "--strict", str(CHART), *extra)
        # No --kube-version: the chart renders with helm's own default (`make helm` builds helm
        # with its release binaries' default, Kubernetes 1.31).
        output = _run(helm, "template", "rel", str(CHART), *extra)
        renders[name] = [doc for doc in yaml.safe_load_all(output) if doc]
    return renders


def _of_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {
        obj["metadata"]["labels"]["app.kubernetes.io/component"]: obj
        for obj in objects
        if obj["kind"] == kind
    }


def _runs_as_non_root(pod: dict[str, Any]) -> bool:
    if pod.get("securityContext", {}).get("runAsNonRoot") is True:
        return True
    return all(
        container.get("securityContext", {}).get("runAsNonRoot") is True
        for container in pod["containers"]
    )


def test_helm_lint_passes_and_every_deployment_runs_as_non_root(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for name, objects in rendered.items():
        deployments = _of_kind(objects, "Deployment")
        assert set(deployments) == WORKLOADS, name
        root_pods = [
            component
            for component, deployment in deployments.items()
            if not _runs_as_non_root(deployment["spec"]["template"]["spec"])
        ]
        assert root_pods == [], name


def test_deployments_run_their_commands_with_the_whole_environment(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["defaults"]
    (config_map,) = (obj for obj in objects if obj["kind"] == "ConfigMap")
    assert set(config_map["data"]) >= CONFIG_VARIABLES
    assert config_map["data"]["AUTOLOADER_ENV"] == "production"
    commands = {}
    for component, deployment in _of_kind(objects, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        commands[component] = container["command"][:6]
        assert container["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]
        from_secret = {
            env["name"] for env in container["env"] if "secretKeyRef" in env.get("valueFrom", {})
        }
        assert from_secret == SECRET_VARIABLES | OWN_SECRET_VARIABLES.get(component, set()), (
            component
        )
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, component
        assert container["resources"]["requests"], component
    assert commands == {
        "api": ["autoloader-api", "serve"],
        "scheduler-sync": ["autoloader-sync", "run"],
        # The worker, under the fork server that starts its flow runs.
        "discovery-worker": [
            "python",
            "-m",
            "autoloader_discovery.forkserver",
            "prefect",
            "worker",
            "start",
        ],
        "s3-events": ["autoloader-discovery", "run"],
        "processor": ["autoloader-processor", "run"],
    }


def test_the_worker_polls_prefect_for_flow_runs_at_the_configured_interval(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for name, seconds in (("defaults", "2"), ("everything-on", "0.5")):
        worker = _of_kind(rendered[name], "Deployment")["discovery-worker"]
        (container,) = worker["spec"]["template"]["spec"]["containers"]
        env = {variable["name"]: variable.get("value") for variable in container["env"]}
        assert env["PREFECT_WORKER_QUERY_SECONDS"] == seconds, name


def test_migrations_and_topics_run_as_hooks_before_install_and_upgrade(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    jobs = _of_kind(rendered["defaults"], "Job")
    assert set(jobs) == {"migrations", "topics"}
    for job in jobs.values():
        annotations = job["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
        (container,) = job["spec"]["template"]["spec"]["containers"]
        # Pre-install hooks run before the ConfigMap exists, so nothing may come from it.
        assert "envFrom" not in container
        assert {env["name"] for env in container["env"]} >= CONFIG_VARIABLES | SECRET_VARIABLES
    assert jobs["migrations"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "alembic",
        "upgrade",
        "head",
    ]
    assert jobs["topics"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "autoloader",
        "topics",
        "ensure",
    ]


def test_optional_parts_render_only_when_enabled(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    kinds = {name: {obj["kind"] for obj in objects} for name, objects in rendered.items()}
    optional = {"Ingress", "ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert not kinds["defaults"] & (optional | {"ScaledObject"})
    assert kinds["everything-on"] >= optional

    everything_on = rendered["everything-on"]
    (monitor,) = (obj for obj in everything_on if obj["kind"] == "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    (config_map,) = (
        obj
        for obj in everything_on
        if obj["kind"] == "ConfigMap" and "AUTOLOADER_ENV" in obj["data"]
    )
    assert "AUTOLOADER_S3_ENDPOINT_URL" not in config_map["data"]
    for component, deployment in _of_kind(everything_on, "Deployment").items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        names = {env["name"] for env in container["env"]}
        assert names >= S3_KEY_VARIABLES, component
    worker = _of_kind(everything_on, "Deployment")["discovery-worker"]
    assert worker["spec"]["template"]["spec"]["containers"][0]["command"][-3:] == [
        "--limit",
        "4",
        "--with-healthcheck",
    ]


def test_processors_and_workers_scale_on_cpu_and_every_workload_has_a_disruption_budget(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    defaults = rendered["defaults"]
    scalers = _of_kind(defaults, "HorizontalPodAutoscaler")
    assert set(scalers) == {"processor", "discovery-worker"}
    deployments = _of_kind(defaults, "Deployment")
    for component, scaler in scalers.items():
        spec = scaler["spec"]
        assert spec["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployments[component]["metadata"]["name"],
        }
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"], component
        (metric,) = spec["metrics"]
        assert metric["resource"]["name"] == "cpu", component
        assert "replicas" not in deployments[component]["spec"], f"{component}: the HPA owns it"
    assert (
        scalers["discovery-worker"]["spec"]["minReplicas"],
        scalers["discovery-worker"]["spec"]["maxReplicas"],
    ) == (3, 5)

    budgets = _of_kind(defaults, "PodDisruptionBudget")
    assert set(budgets) == WORKLOADS
    for component, budget in budgets.items():
        selector = deployments[component]["spec"]["selector"]["matchLabels"]
        assert budget["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": selector}}

    everything_on = rendered["everything-on"]
    assert set(_of_kind(everything_on, "HorizontalPodAutoscaler")) == {"discovery-worker"}
    assert _of_kind(everything_on, "Deployment")["processor"]["spec"]["replicas"] == 3
    assert _of_kind(everything_on, "PodDisruptionBudget")["api"]["spec"]["maxUnavailable"] == "50%"


def test_keda_scales_the_processor_on_its_consumer_groups_lag_instead_of_the_hpa(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    keda = rendered["keda"]
    assert set(_of_kind(keda, "HorizontalPodAutoscaler")) == {"discovery-worker"}
    assert "replicas" not in _of_kind(keda, "Deployment")["processor"]["spec"]
    (scaled,) = _of_kind(keda, "ScaledObject").values()
    spec = scaled["spec"]
    assert (
        spec["scaleTargetRef"]["name"]
        == _of_kind(keda, "Deployment")["processor"]["metadata"]["name"]
    )
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (2, 6)
    lag, cpu = spec["triggers"]
    # The group and topic the processor really consumes, not a copy that could drift.
    assert lag["metadata"] == {
        "bootstrapServers": "kafka:9092",
        "consumerGroup": ProcessorSettings.model_fields["group_id"].default,
        "topic": FILES.name,
        "lagThreshold": "100",
    }
    assert lag["authenticationRef"] == {"name": "kafka-sasl"}
    assert cpu == {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}


def test_keda_on_a_workload_that_consumes_no_kafka_is_refused(helm: str, tmp_path: Path) -> None:
    values = tmp_path / "worker-keda.yaml"
    values.write_text(yaml.safe_dump({"discoveryWorker": {"autoscaling": {"keda": {}}}}))
    result = subprocess.run(
        [helm, "template", "rel", str(CHART), "--values", str(values)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "discoveryWorker.autoscaling: Additional property keda is not allowed" in result.stderr


CONSUMERS = {"scheduler-sync": "SYNC", "s3-events": "DISCOVERY", "processor": "PROCESSOR"}


def test_every_service_is_scraped_and_the_alerts_and_the_dashboard_ship(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    everything_on = rendered["everything-on"]
    deployments = _of_kind(everything_on, "Deployment")
    for component, service in CONSUMERS.items():
        (container,) = deployments[component]["spec"]["template"]["spec"]["containers"]
        env = {variable["name"]: variable.get("value") for variable in container["env"]}
        assert env[f"AUTOLOADER_{service}_METRICS_HOST"] == "0.0.0.0", component
        assert env[f"AUTOLOADER_{service}_METRICS_PORT"] == "9400", component
        assert {"name": "metrics", "containerPort": 9400} in container["ports"], component
    (pods,) = (obj for obj in everything_on if obj["kind"] == "PodMonitor")
    (components,) = (
        match["values"]
        for match in pods["spec"]["selector"]["matchExpressions"]
        if match["key"] == "app.kubernetes.io/component"
    )
    assert set(components) == set(CONSUMERS)
    assert pods["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"

    (rule,) = (obj for obj in everything_on if obj["kind"] == "PrometheusRule")
    assert rule["spec"] == _load_yaml(CHART / "files" / "prometheus-rules.yaml")
    (dashboard,) = (obj for obj in everything_on if "autoloader.json" in obj.get("data", {}))
    shipped = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["autoloader.json"]) == shipped
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


# Kinds of the Prometheus Operator's and KEDA's CRDs, which kubernetes-validate has no schema
# of: their content is checked above (and the rules by promtool, tests/unit/test_monitoring.py).
CUSTOM_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule", "ScaledObject"}


def test_every_rendered_manifest_satisfies_the_kubernetes_schema(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """Strict: a field Kubernetes does not know fails, as a typo in a template would."""
    checked = set()
    for name, objects in rendered.items():
        for obj in objects:
            if obj["kind"] in CUSTOM_KINDS:
                continue
            where = f"{name}: {obj['kind']} {obj['metadata']['name']}"
            try:
                kubernetes_validate.validate(obj, KUBERNETES, strict=True)
            except kubernetes_validate.ValidationError as error:
                pytest.fail(f"{where}: {error.message} at {list(error.path)}")
            checked.add(obj["kind"])
    assert checked >= {"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job"}


def test_the_schema_check_refuses_a_field_kubernetes_does_not_know(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    deployment = copy.deepcopy(_of_kind(rendered["defaults"], "Deployment")["processor"])
    deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRefs"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)
