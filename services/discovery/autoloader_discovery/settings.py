"""The discovery process's one settings object (the flow and the S3-event consumer)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import (
    CredentialsSettings,
    DatabaseSettings,
    FlowRunSettings,
    KafkaSettings,
    PrefectSettings,
    S3Settings,
    TenancySettings,
    metrics_port,
)


class DiscoverySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOLOADER_DISCOVERY_")

    group_id: str = "discovery"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = metrics_port(9402)
    notification_join_seconds: float = Field(
        default=10.0, ge=0, description="notified files join an s3_event run this young"
    )
    notification_batch_max: int = Field(
        default=500,
        ge=1,
        le=5000,
        description="notifications (and SeaweedFS filer events) handled as one batch, at most",
    )
    notification_poll_ms: int = Field(
        default=20,
        ge=5,
        le=1000,
        description=(
            "an idle notification consumer waits this long for a message, then sleeps as"
            " long: a notification may wait this long before its batch starts"
        ),
    )
    seaweedfs_bridge: bool = Field(
        default=False,
        description="translate SeaweedFS filer events into S3 notifications (local stack)",
    )
    page_size: int = Field(default=1000, ge=1, le=1000)
    files_per_event: int = Field(default=100, ge=1)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    credentials: CredentialsSettings = Field(default_factory=CredentialsSettings)  # type: ignore[arg-type]
    flow: FlowRunSettings = Field(default_factory=FlowRunSettings)
    tenancy: TenancySettings = Field(default_factory=TenancySettings)
