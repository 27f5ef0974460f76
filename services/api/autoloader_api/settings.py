"""The API process's one settings object."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import (
    CredentialsSettings,
    DatabaseSettings,
    KafkaSettings,
    TenancySettings,
)


class RelaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_RELAY_")

    enabled: bool = True
    batch_size: int = 200
    poll_interval_seconds: float = 0.2
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_API_")

    host: str = "127.0.0.1"
    port: int = 8000
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    credentials: CredentialsSettings = Field(default_factory=CredentialsSettings)  # type: ignore[arg-type]
    relay: RelaySettings = Field(default_factory=RelaySettings)
    tenancy: TenancySettings = Field(default_factory=TenancySettings)
    admin_token: SecretStr | None = None  # AUTOLOADER_API_ADMIN_TOKEN: the /admin routes
