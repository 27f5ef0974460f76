"""Settings of the components every service talks to.

Each service builds one settings object of its own from these parts; each part reads its own
environment variables (prefix in `env_prefix`). Defaults point at the native stack that
`make up` starts.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_DATABASE_")

    url: SecretStr = SecretStr(
        "postgresql+asyncpg://autoloader:autoloader@127.0.0.1:5432/autoloader"
    )
    pool_size: int = 10


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_KAFKA_")

    bootstrap_servers: str = "127.0.0.1:9092"


class S3Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_S3_")

    endpoint_url: str | None = "http://127.0.0.1:8333"
    access_key_id: str | None = "autoloader"
    secret_access_key: SecretStr | None = SecretStr("autoloader-secret")
    region: str = "us-east-1"


class SparkSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_SPARK_")

    remote: str = "sc://127.0.0.1:15002"


class PrefectSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PREFECT_")

    api_url: str = "http://127.0.0.1:4200/api"


class CredentialsSettings(BaseSettings):
    """The key that encrypts source credentials at rest (Fernet, url-safe base64)."""

    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_CREDENTIALS_")

    key: SecretStr


class TenancySettings(BaseSettings):
    """What tenants may point their ingestions at. `local` sources read the service's own
    filesystem, so they are off unless an operator turns them on for given roots."""

    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_TENANCY_")

    local_sources_enabled: bool = False
    local_source_roots: list[str] = []
    warehouse_bucket: str = "warehouse"


class CommandSettings(BaseSettings):
    """The secret from which each tenant's key for signing upstream commands is derived."""

    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_COMMANDS_")

    signing_secret: SecretStr | None = None


class FlowRunSettings(BaseSettings):
    """How Prefect runs `run_ingestion`; the defaults are those the seeds' flows used."""

    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_FLOW_")

    work_pool: str = "autoloader"
    entrypoint: str = "autoloader_discovery.flows.run_ingestion"
    timeout_seconds: int = 3600
    retries: int = 2
    retry_delay_seconds: int = 60
