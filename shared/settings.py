"""Settings of the components every service talks to.

Each service builds one settings object of its own from these parts; each part reads its own
environment variables (prefix in `env_prefix`). Defaults point at the native stack that
`make up` starts, so a deployment states `AUTOLOADER_ENV=production` (the image and the Helm
chart do), and then each part refuses the development stack's values, naming the variable to
set. See docs/configuration.md.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.crypto import CredentialCipher

Environment = Literal["development", "production"]
ENVIRONMENTS: tuple[Environment, ...] = ("development", "production")

# The development stack's published values (devstack/layout.py); production refuses them.
DEV_DATABASE_PASSWORD = "autoloader"
DEV_S3_ACCESS_KEY_ID = "autoloader"
DEV_S3_SECRET_ACCESS_KEY = "autoloader-secret"
DEV_S3_PORT = 8333
DEV_CREDENTIALS_KEY = "YpatRoDIDj2Y7_gEzHMt7OCrkZ2GWKA59exQBxr5AC0="
DEV_COMMANDS_SIGNING_SECRET = "dev-commands-signing-secret-not-for-production"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def environment() -> Environment:
    """AUTOLOADER_ENV: `development` (the default, what the code's defaults point at) or
    `production`, which the deployment declares."""
    value = os.environ.get("AUTOLOADER_ENV", "development").strip().lower()
    for known in ENVIRONMENTS:
        if value == known:
            return known
    raise ValueError(f"AUTOLOADER_ENV must be one of {', '.join(ENVIRONMENTS)}, not {value!r}")


def metrics_port(default: int) -> Any:
    """The `metrics_port` field of a consumer service's settings (shared.metrics serves it)."""
    return Field(
        default=default,
        ge=0,
        le=65535,
        description="port of the service's Prometheus /metrics; 0 turns it off",
    )


def _refuse(problems: list[str]) -> None:
    """Raise the problems found in production as one error, one line each."""
    if problems:
        raise ValueError("; ".join(problems))


def _address_given(settings: BaseSettings, field: str, what: str) -> None:
    """In production an address must be given: its default is the development stack's."""
    if environment() == "production" and field not in settings.model_fields_set:
        prefix = settings.model_config.get("env_prefix", "")
        default = type(settings).model_fields[field].default
        _refuse(
            [
                f"{prefix}{field.upper()} is not set, and its default ({default}) is the "
                f"development stack's; set it to {what}"
            ]
        )


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_DATABASE_")

    url: SecretStr = SecretStr(
        "postgresql+asyncpg://autoloader:autoloader@127.0.0.1:5432/autoloader"
    )
    pool_size: int = 10

    @model_validator(mode="after")
    def _no_development_password(self) -> Self:
        if environment() == "production":
            password = urlsplit(self.url.get_secret_value()).password
            if password == DEV_DATABASE_PASSWORD:
                _refuse(
                    [
                        "AUTOLOADER_DATABASE_URL uses the development password; set it to your "
                        "database's URL"
                    ]
                )
        return self


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"

    @model_validator(mode="after")
    def _given(self) -> Self:
        _address_given(self, "bootstrap_servers", "your Kafka bootstrap servers")
        return self


class S3Settings(BaseSettings):
    """The service's own S3 access. Unset endpoint means AWS S3; unset keys mean boto3's (and
    S3A's) default credentials chain: an IAM role, instance profile, web identity, AWS_*."""

    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_S3_")

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    region: str = "us-east-1"

    @model_validator(mode="after")
    def _no_development_store(self) -> Self:
        if environment() == "production":
            _refuse(self._production_problems())
        return self

    def _production_problems(self) -> list[str]:
        problems = []
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            if parts.hostname in _LOOPBACK and parts.port == DEV_S3_PORT:
                problems.append(
                    f"AUTOLOADER_S3_ENDPOINT_URL points at the development stack's store "
                    f"({parts.hostname}:{DEV_S3_PORT}); set it to your S3 endpoint, or leave "
                    "it unset for AWS S3"
                )
        secret = self.secret_access_key.get_secret_value() if self.secret_access_key else None
        if self.access_key_id == DEV_S3_ACCESS_KEY_ID or secret == DEV_S3_SECRET_ACCESS_KEY:
            problems.append(
                "AUTOLOADER_S3_ACCESS_KEY_ID and AUTOLOADER_S3_SECRET_ACCESS_KEY hold the "
                "development keys; set your own, or unset both to use an IAM role or the "
                "default credentials chain"
            )
        elif (self.access_key_id is None) != (secret is None):
            given, missing = (
                ("AUTOLOADER_S3_ACCESS_KEY_ID", "AUTOLOADER_S3_SECRET_ACCESS_KEY")
                if secret is None
                else ("AUTOLOADER_S3_SECRET_ACCESS_KEY", "AUTOLOADER_S3_ACCESS_KEY_ID")
            )
            problems.append(
                f"{given} is set but {missing} is not; set both, or neither to use an IAM "
                "role or the default credentials chain"
            )
        return problems


class SparkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_SPARK_")

    remote: str = "sc://127.0.0.1:15002"

    @model_validator(mode="after")
    def _given(self) -> Self:
        _address_given(self, "remote", "your Spark Connect server (sc://host:15002)")
        return self


class PrefectSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PREFECT_")

    api_url: str = "http://127.0.0.1:4200/api"

    @model_validator(mode="after")
    def _given(self) -> Self:
        _address_given(self, "api_url", "your Prefect server's API URL (ending in /api)")
        return self


class CredentialsSettings(BaseSettings):
    """The key that encrypts source credentials at rest (Fernet, url-safe base64)."""

    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_CREDENTIALS_")

    key: SecretStr

    @model_validator(mode="before")
    @classmethod
    def _key_given(cls, data: Any) -> Any:
        # Name the variable: pydantic's own "Field required" names only the field `key`.
        if isinstance(data, dict) and not data.get("key"):
            raise ValueError(
                "AUTOLOADER_CREDENTIALS_KEY is not set; set it to a key of your own "
                "(`autoloader-api keys generate-encryption-key` makes one)"
            )
        return data

    @model_validator(mode="after")
    def _usable_key(self) -> Self:
        CredentialCipher(self.key)  # a malformed key fails here, at start-up, naming the variable
        if environment() == "production" and self.key.get_secret_value() == DEV_CREDENTIALS_KEY:
            _refuse(
                [
                    "AUTOLOADER_CREDENTIALS_KEY is the development stack's published key; set "
                    "a key of your own (`autoloader-api keys generate-encryption-key`)"
                ]
            )
        return self


class TenancySettings(BaseSettings):
    """What tenants may point their ingestions at. `local` sources read the service's own
    filesystem, so they are off unless an operator turns them on for given roots."""

    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_TENANCY_")

    local_sources_enabled: bool = False
    # Colon-separated like PATH, e.g. /srv/landing:/data/drop
    local_source_roots: Annotated[list[str], NoDecode] = []
    warehouse_bucket: str = "warehouse"

    @field_validator("local_source_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        return [root for root in value.split(":") if root] if isinstance(value, str) else value


class CommandSettings(BaseSettings):
    """The secret from which each tenant's key for signing upstream commands is derived."""

    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_COMMANDS_")

    signing_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _secret_given(self) -> Self:
        if environment() != "production":
            return self
        secret = self.signing_secret.get_secret_value() if self.signing_secret else ""
        if not secret:
            _refuse(
                [
                    "AUTOLOADER_COMMANDS_SIGNING_SECRET is not set; set it to a long random "
                    "secret, from which each tenant's command-signing key is derived"
                ]
            )
        if secret == DEV_COMMANDS_SIGNING_SECRET:
            _refuse(
                [
                    "AUTOLOADER_COMMANDS_SIGNING_SECRET is the development stack's; set it to "
                    "a long random secret of your own"
                ]
            )
        return self


class FlowRunSettings(BaseSettings):
    """How Prefect runs `run_ingestion`; the defaults are those the seeds' flows used."""

    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_FLOW_")

    work_pool: str = "autoloader"
    entrypoint: str = "autoloader_discovery.flows.run_ingestion"
    timeout_seconds: int = 3600
    retries: int = 2
    retry_delay_seconds: int = 60
