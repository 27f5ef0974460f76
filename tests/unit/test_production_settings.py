"""AUTOLOADER_ENV=production: every service's settings refuse the development stack's values
and name the variable to set; development accepts them; a proper production setup passes."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from autoloader_api.settings import ApiSettings
from autoloader_discovery.flows import run_ingestion
from autoloader_discovery.settings import DiscoverySettings
from autoloader_processor.settings import ProcessorSettings
from autoloader_sync.settings import SyncSettings
from devstack import layout
from devstack.layout import Addresses
from devstack.stack_env import stack_env
from shared.crypto import new_key
from shared.s3 import s3_client
from shared.service import invalid_settings
from shared.settings import (
    DEV_COMMANDS_SIGNING_SECRET,
    DEV_CREDENTIALS_KEY,
    DEV_DATABASE_PASSWORD,
    DEV_S3_ACCESS_KEY_ID,
    DEV_S3_SECRET_ACCESS_KEY,
    CommandSettings,
    CredentialsSettings,
    DatabaseSettings,
    KafkaSettings,
    PrefectSettings,
    S3Settings,
    SparkSettings,
)

pytestmark = pytest.mark.unit

SERVICES: tuple[type[BaseSettings], ...] = (
    ApiSettings,
    SyncSettings,
    DiscoverySettings,
    ProcessorSettings,
)
PRODUCTION = {
    "AUTOLOADER_ENV": "production",
    "AUTOLOADER_DATABASE_URL": "postgresql+asyncpg://autoloader:pr0d-S3cret@db.internal:5432/al",
    "AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS": "kafka.internal:9092",
    "AUTOLOADER_SPARK_REMOTE": "sc://spark-connect.internal:15002",
    "PREFECT_API_URL": "https://prefect.internal/api",
    "AUTOLOADER_CREDENTIALS_KEY": new_key(),
    "AUTOLOADER_COMMANDS_SIGNING_SECRET": "a-long-random-command-signing-secret",
}
SECRETS = {
    "AUTOLOADER_COMMANDS_SIGNING_SECRET",
    "AUTOLOADER_DATABASE_URL",
    "AUTOLOADER_S3_SECRET_ACCESS_KEY",
    "AUTOLOADER_CREDENTIALS_KEY",
}
# A production environment with one development value put back (None: the variable removed),
# the settings part that must refuse it, and the variable the message must name.
DEV_DEFAULTS: dict[str, tuple[dict[str, str | None], type[BaseSettings], str]] = {
    "database password": (
        {"AUTOLOADER_DATABASE_URL": "postgresql+asyncpg://autoloader:autoloader@db:5432/al"},
        DatabaseSettings,
        "AUTOLOADER_DATABASE_URL",
    ),
    "database url left unset": (
        {"AUTOLOADER_DATABASE_URL": None},
        DatabaseSettings,
        "AUTOLOADER_DATABASE_URL",
    ),
    "S3 keys": (
        {
            "AUTOLOADER_S3_ACCESS_KEY_ID": DEV_S3_ACCESS_KEY_ID,
            "AUTOLOADER_S3_SECRET_ACCESS_KEY": DEV_S3_SECRET_ACCESS_KEY,
        },
        S3Settings,
        "AUTOLOADER_S3_ACCESS_KEY_ID",
    ),
    "S3 secret key only": (
        {
            "AUTOLOADER_S3_ACCESS_KEY_ID": "AKIAPRODUCTION",
            "AUTOLOADER_S3_SECRET_ACCESS_KEY": DEV_S3_SECRET_ACCESS_KEY,
        },
        S3Settings,
        "AUTOLOADER_S3_SECRET_ACCESS_KEY",
    ),
    "S3 endpoint": (
        {"AUTOLOADER_S3_ENDPOINT_URL": "http://127.0.0.1:8333"},
        S3Settings,
        "AUTOLOADER_S3_ENDPOINT_URL",
    ),
    "half of the S3 keys": (
        {"AUTOLOADER_S3_ACCESS_KEY_ID": "AKIAPRODUCTION"},
        S3Settings,
        "AUTOLOADER_S3_SECRET_ACCESS_KEY",
    ),
    "credentials key missing": (
        {"AUTOLOADER_CREDENTIALS_KEY": None},
        CredentialsSettings,
        "AUTOLOADER_CREDENTIALS_KEY",
    ),
    "credentials key of the dev stack": (
        {"AUTOLOADER_CREDENTIALS_KEY": DEV_CREDENTIALS_KEY},
        CredentialsSettings,
        "AUTOLOADER_CREDENTIALS_KEY",
    ),
    "kafka left unset": (
        {"AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS": None},
        KafkaSettings,
        "AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS",
    ),
    "spark left unset": (
        {"AUTOLOADER_SPARK_REMOTE": None},
        SparkSettings,
        "AUTOLOADER_SPARK_REMOTE",
    ),
    "prefect left unset": ({"PREFECT_API_URL": None}, PrefectSettings, "PREFECT_API_URL"),
    "command signing secret missing": (
        {"AUTOLOADER_COMMANDS_SIGNING_SECRET": None},
        CommandSettings,
        "AUTOLOADER_COMMANDS_SIGNING_SECRET",
    ),
    "command signing secret of the dev stack": (
        {"AUTOLOADER_COMMANDS_SIGNING_SECRET": DEV_COMMANDS_SIGNING_SECRET},
        CommandSettings,
        "AUTOLOADER_COMMANDS_SIGNING_SECRET",
    ),
}


def _parts(service: type[BaseSettings]) -> set[object]:
    return {field.annotation for field in service.model_fields.values()}


def _use(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str | None]) -> None:
    """Exactly `env` as the AUTOLOADER_*, AWS_* and PREFECT_* environment (a test run may
    export the stack's)."""
    for name in list(os.environ):
        if name.startswith(("AUTOLOADER_", "AWS_", "PREFECT_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if value is not None:
            monkeypatch.setenv(name, value)


def test_the_refused_values_are_the_dev_stacks() -> None:
    assert DEV_DATABASE_PASSWORD == layout.DB_PASSWORD
    assert (DEV_S3_ACCESS_KEY_ID, DEV_S3_SECRET_ACCESS_KEY) == (
        layout.S3_ACCESS_KEY,
        layout.S3_SECRET_KEY,
    )
    assert DEV_CREDENTIALS_KEY == layout.CREDENTIALS_KEY
    dev = stack_env(Addresses())
    assert dev["AUTOLOADER_COMMANDS_SIGNING_SECRET"] == DEV_COMMANDS_SIGNING_SECRET
    assert dev["AUTOLOADER_S3_ENDPOINT_URL"] == "http://127.0.0.1:8333"


def test_a_proper_production_environment_starts_every_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _use(monkeypatch, PRODUCTION)
    for service in SERVICES:
        service()
    s3 = ProcessorSettings().s3
    # Nothing hard-coded: unset endpoint and keys stay unset, for AWS S3 and its default chain.
    assert (s3.endpoint_url, s3.access_key_id, s3.secret_access_key) == (None, None, None)


@pytest.mark.parametrize("case", sorted(DEV_DEFAULTS))
def test_production_refuses_a_development_value_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    change, part, variable = DEV_DEFAULTS[case]
    _use(monkeypatch, {**PRODUCTION, **change})
    refusing = [service for service in SERVICES if part in _parts(service)]
    assert refusing, f"no service reads {part.__name__}"
    for service in refusing:
        with pytest.raises(ValidationError) as raised:
            service()
        assert variable in str(raised.value), service.__name__
        printed = invalid_settings("autoloader-x", raised.value)
        assert variable in printed
        for name in SECRETS & change.keys():
            secret = change[name]
            # The message names the setting, never the secret given.
            assert secret is None or secret not in printed, service.__name__


@pytest.mark.parametrize("env", [None, "development"])
def test_development_accepts_the_dev_stacks_values(
    monkeypatch: pytest.MonkeyPatch, env: str | None
) -> None:
    _use(monkeypatch, {**stack_env(Addresses()), "AUTOLOADER_ENV": env})
    for service in SERVICES:
        service()
    _use(monkeypatch, {"AUTOLOADER_ENV": env, "AUTOLOADER_CREDENTIALS_KEY": DEV_CREDENTIALS_KEY})
    for service in SERVICES:  # the code's own defaults, too
        service()


def test_an_unknown_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, {**PRODUCTION, "AUTOLOADER_ENV": "prod"})
    with pytest.raises(ValidationError, match="AUTOLOADER_ENV must be one of"):
        DatabaseSettings()


def test_a_malformed_credentials_key_fails_at_start_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _use(monkeypatch, {**PRODUCTION, "AUTOLOADER_CREDENTIALS_KEY": "not-a-fernet-key"})
    with pytest.raises(ValidationError, match="AUTOLOADER_CREDENTIALS_KEY must be 32"):
        ApiSettings()


def test_unset_s3_keys_leave_boto3_to_its_default_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    # The chain's first link, the AWS_* variables, stands for a role or an instance profile.
    _use(
        monkeypatch,
        {
            **PRODUCTION,
            "AWS_ACCESS_KEY_ID": "AKIAFROMTHECHAIN",
            "AWS_SECRET_ACCESS_KEY": "secret-from-the-chain",
        },
    )
    signer = s3_client(S3Settings())._request_signer  # type: ignore[attr-defined]
    credentials = signer._credentials
    assert credentials is not None
    assert credentials.access_key == "AKIAFROMTHECHAIN"


async def test_the_flow_refuses_before_it_touches_anything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The Prefect worker hands its environment to each flow run; the flow reads its settings
    # first, so a development value stops the run before any database, Kafka or S3 call.
    _use(monkeypatch, {**PRODUCTION, "AUTOLOADER_CREDENTIALS_KEY": DEV_CREDENTIALS_KEY})
    with pytest.raises(ValidationError, match="AUTOLOADER_CREDENTIALS_KEY"):
        await run_ingestion.fn("00000000-0000-0000-0000-000000000000")
