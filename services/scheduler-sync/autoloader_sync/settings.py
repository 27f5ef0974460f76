"""The autoloader-sync process's one settings object."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import DatabaseSettings, KafkaSettings, PrefectSettings


class SyncSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_SYNC_")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
