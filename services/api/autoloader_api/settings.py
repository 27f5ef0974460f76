"""The API process's one settings object."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import DatabaseSettings, KafkaSettings


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_API_")

    host: str = "127.0.0.1"
    port: int = 8000
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
