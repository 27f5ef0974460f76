"""docker-compose.yml is valid Compose and describes the same stack as the native `make up`.

The native stack (devstack/) is the reference: its component names, environment, Spark
configuration and set-up steps are read from its code, so a change there that compose does not
follow fails here.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from devstack import jars
from devstack.__main__ import components
from devstack.components.postgres import DATABASES
from devstack.components.seaweedfs import SeaweedFS
from devstack.components.spark import CONNECT_SERVER, SparkConnect
from devstack.layout import (
    APP_DB,
    BUCKETS,
    DB_PASSWORD,
    DB_USER,
    WORK_POOL,
    WORK_QUEUES,
    Addresses,
    Layout,
)
from devstack.stack_env import stack_env

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
# Vendored, unmodified: compose-spec/compose-spec, schema/compose-spec.json at commit
# 00655e2222608fa6eaecdf12ac5195889ca2244a (no network in tests).
SCHEMA_FILE = ROOT / "tests" / "data" / "compose-spec.json"
SPARK_POM = ROOT / "devstack" / "maven" / "spark.xml"

# Native component name (devstack/__main__.py `components`) -> the compose service playing it.
NATIVE_TO_COMPOSE = {
    "postgres": "postgres",
    "migrations": "migrate",
    "seaweedfs": "seaweedfs",
    "kafka": "kafka",
    "prefect-server": "prefect-server",
    "prefect-worker": "discovery-worker",
    "spark-connect": "spark-connect",
    "api": "api",
    "dev-api-key": "dev-api-key",
    "scheduler-sync": "scheduler-sync",
    "discovery": "s3-events",
    "processor": "processor",
}

# The services run from the root Dockerfile's image; every other one is infrastructure.
PROJECT_SERVICES = {
    "migrate",
    "dev-api-key",
    "kafka-topics",
    "s3-buckets",
    "prefect-work-pool",
    "api",
    "scheduler-sync",
    "discovery-worker",
    "s3-events",
    "processor",
}

# Where an address points inside the compose network; settings absent here hold no address.
ENV_HOSTS = {
    "AUTOLOADER_DATABASE_URL": "postgres",
    "AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS": "kafka",
    "AUTOLOADER_S3_ENDPOINT_URL": "seaweedfs",
    "AUTOLOADER_SPARK_REMOTE": "spark-connect",
    "AUTOLOADER_CATALOG_JDBC_URL": "postgres",
    "PREFECT_API_URL": "prefect-server",
}
SPARK_CONF_HOSTS = {
    "spark.connect.grpc.binding.address": "0.0.0.0",
    "spark.driver.bindAddress": "0.0.0.0",
    "spark.driver.host": "spark-connect",
    "spark.sql.catalog.spark_catalog.uri": "postgres",
    "spark.hadoop.fs.s3a.endpoint": "seaweedfs",
}
# Natively the jars sit on the driver's class path; in compose Spark fetches the same jars.
SPARK_NATIVE_ONLY = {"spark.driver.extraClassPath"}
SPARK_COMPOSE_ONLY = {"spark.jars.packages", "spark.jars.ivy"}
NATIVE_HOST = "127.0.0.1"


def load_compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict), "docker-compose.yml is not a mapping"
    return document


def services() -> dict[str, dict[str, Any]]:
    found = load_compose().get("services")
    assert isinstance(found, dict) and found, "docker-compose.yml defines no services"
    return found


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever of the two Compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Dependency -> condition; the list form means `service_started`."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck") or {}
    return bool(check.get("test")) and not check.get("disable")


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    assert isinstance(cmd, list), f"command {cmd!r} should be in exec (list) form"
    return [str(part) for part in cmd]


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts of repository files."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    # The vendored schema must be the real one, not something that accepts anything.
    assert not validator.is_valid({"services": {"api": {"imag": "typo"}}})

    errors = sorted(validator.iter_errors(load_compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "docker-compose.yml breaks the Compose Specification:\n" + "\n".join(
        f"  {'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in errors
    )


def test_every_native_component_has_a_compose_service() -> None:
    native = [component.name for component in components(Layout.discover(), Addresses())]
    assert native, "the native stack lists no components"
    unmapped = [name for name in native if name not in NATIVE_TO_COMPOSE]
    assert not unmapped, (
        f"native components {unmapped} have no compose service: add one to "
        "docker-compose.yml and map it in NATIVE_TO_COMPOSE in this test"
    )
    defined = services()
    missing = {name: svc for name, svc in NATIVE_TO_COMPOSE.items() if svc not in defined}
    assert not missing, f"mapped compose services missing from docker-compose.yml: {missing}"


def test_project_services_run_the_project_image_with_the_shared_environment() -> None:
    compose = load_compose()
    defined = services()
    shared_env = compose.get("x-autoloader-env")
    assert isinstance(shared_env, dict) and shared_env, "x-autoloader-env anchor is missing"

    built = {name for name, service in defined.items() if "build" in service}
    assert built == PROJECT_SERVICES, (
        f"services built from the root Dockerfile {sorted(built)} differ from "
        f"PROJECT_SERVICES {sorted(PROJECT_SERVICES)}"
    )
    images = set()
    for name in sorted(PROJECT_SERVICES):
        service = defined[name]
        build = service["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
        assert (ROOT / context).resolve() == ROOT, f"{name}: build context is not the root"
        assert dockerfile in (None, "Dockerfile"), f"{name}: builds {dockerfile}, not Dockerfile"
        assert (ROOT / "Dockerfile").is_file()
        images.add(service.get("image"))
        env = environment(service)
        differing = {key for key, value in shared_env.items() if env.get(key) != str(value)}
        assert not differing, f"{name} does not carry x-autoloader-env: {sorted(differing)}"
    assert len(images) == 1 and None not in images, f"project services use images {images}"


def test_depends_on_targets_exist_and_are_waited_for() -> None:
    defined = services()
    for name, service in defined.items():
        for target, condition in depends_on(service).items():
            assert target in defined, f"{name} depends on {target}, which is not a service"
            dependency = defined[target]
            if target not in PROJECT_SERVICES:
                assert has_healthcheck(dependency), f"{target} has no healthcheck"
                assert condition == "service_healthy", (
                    f"{name} should wait for {target} with service_healthy, not {condition}"
                )
            elif dependency.get("restart") == "no":
                assert condition == "service_completed_successfully", (
                    f"{name} should wait for one-shot {target} to complete, not {condition}"
                )
    for name, service in defined.items():
        if name not in PROJECT_SERVICES:
            assert has_healthcheck(service), f"infrastructure service {name} has no healthcheck"


def test_bind_mounted_files_are_in_the_repository() -> None:
    for name, service in services().items():
        for target, source in bind_mounts(service).items():
            assert source.is_file(), f"{name} mounts {source} at {target}: no such file"


def test_environment_is_the_native_one_with_compose_hosts() -> None:
    shared_env = {key: str(value) for key, value in load_compose()["x-autoloader-env"].items()}
    native_keys = set(stack_env(Addresses()))
    assert set(shared_env) == native_keys, (
        f"missing {sorted(native_keys - set(shared_env))}, "
        f"extra {sorted(set(shared_env) - native_keys)} compared with devstack/stack_env.py"
    )
    for key, value in shared_env.items():
        expected = stack_env(Addresses(host=ENV_HOSTS.get(key, NATIVE_HOST)))[key]
        assert value == expected, f"{key}: {value!r} in compose, {expected!r} natively"


def test_host_ports_are_the_native_addresses() -> None:
    a = Addresses()
    native_ports = {
        "postgres": a.postgres_port,
        "kafka": a.kafka_port,
        "seaweedfs": a.s3_port,
        "prefect-server": a.prefect_port,
        "spark-connect": a.spark_connect_port,
        "api": a.api_port,
    }
    defined = services()
    for name, port in native_ports.items():
        published = [str(p) for p in defined[name].get("ports", [])]
        assert any(p.startswith(f"{NATIVE_HOST}:{port}:") for p in published), (
            f"{name} should publish {NATIVE_HOST}:{port} like the native stack, has {published}"
        )


def test_spark_connect_is_configured_like_the_native_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spark = services()["spark-connect"]
    argv = command(spark)
    assert argv[argv.index("--class") + 1] == CONNECT_SERVER
    conf_file = bind_mounts(spark)[argv[argv.index("--properties-file") + 1]]
    compose_conf = dict(
        re.split(r"\s+", line.strip(), maxsplit=1)
        for line in conf_file.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )

    monkeypatch.setattr(jars, "fetch", lambda *args: Path("/unused"))
    layout = Layout.discover()
    native: dict[str, dict[str, str]] = {
        host: SparkConnect(layout, Addresses(host=host)).conf()
        for host in {NATIVE_HOST, *SPARK_CONF_HOSTS.values()}
    }
    expected_keys = (set(native[NATIVE_HOST]) - SPARK_NATIVE_ONLY) | SPARK_COMPOSE_ONLY
    assert set(compose_conf) == expected_keys, (
        f"missing {sorted(expected_keys - set(compose_conf))}, "
        f"extra {sorted(set(compose_conf) - expected_keys)} compared with the native conf()"
    )
    for key in set(native[NATIVE_HOST]) - SPARK_NATIVE_ONLY:
        expected = native[SPARK_CONF_HOSTS.get(key, NATIVE_HOST)][key]
        assert compose_conf[key] == expected, f"{key}: {compose_conf[key]!r}, natively {expected!r}"

    pom = ET.parse(SPARK_POM).getroot()
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    native_jars = {
        ":".join(
            dep.findtext(f"m:{part}", namespaces=ns) or ""
            for part in ("groupId", "artifactId", "version")
        )
        for dep in pom.iterfind("m:dependencies/m:dependency", ns)
    }
    assert set(compose_conf["spark.jars.packages"].split(",")) == native_jars

    # The server image must be on the Spark line of the pyspark client the services use.
    tag = spark["image"].split(":", 1)[1]
    client = importlib.metadata.version("pyspark")
    assert tag.split(".")[:2] == client.split(".")[:2], f"image {tag} vs pyspark {client}"


def test_set_up_steps_create_what_the_native_stack_creates() -> None:
    defined = services()

    postgres = defined["postgres"]
    env = environment(postgres)
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == (DB_USER, DB_PASSWORD)
    assert env["POSTGRES_DB"] == APP_DB
    init_sql = "\n".join(
        path.read_text()
        for target, path in bind_mounts(postgres).items()
        if target.startswith("/docker-entrypoint-initdb.d/")
    )
    created = set(re.findall(r"CREATE DATABASE\s+\"?(\w+)", init_sql, re.IGNORECASE))
    assert created | {env["POSTGRES_DB"]} == set(DATABASES)

    seaweedfs = defined["seaweedfs"]
    s3_config = next(arg.split("=", 1)[1] for arg in command(seaweedfs) if "-s3.config=" in arg)
    identities = json.loads(bind_mounts(seaweedfs)[s3_config].read_text())
    assert identities == SeaweedFS._identities()

    assert tuple(command(defined["s3-buckets"])[-len(BUCKETS) :]) == BUCKETS
    pool_args = (WORK_POOL, *WORK_QUEUES)
    assert tuple(command(defined["prefect-work-pool"])[-len(pool_args) :]) == pool_args
    worker = command(defined["discovery-worker"])
    assert worker[worker.index("--pool") + 1] == WORK_POOL

    kafka_env = environment(defined["kafka"])
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert command(defined["kafka-topics"]) == ["autoloader", "topics", "ensure", "--seaweedfs"]
