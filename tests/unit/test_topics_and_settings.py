"""Topic definitions and settings: the contracts other services rely on."""

from __future__ import annotations

import pytest

from shared.settings import DatabaseSettings, KafkaSettings, S3Settings
from shared.topics import ALL_TOPICS, FILES, INGESTION_EVENTS

pytestmark = pytest.mark.unit


def test_topic_names_are_unique_and_namespaced() -> None:
    names = [topic.name for topic in ALL_TOPICS]
    assert len(set(names)) == len(names) == 6
    assert all(name.startswith("autoloader.") for name in names)


def test_replayed_topics_keep_their_history() -> None:
    # scheduler-sync rebuilds Prefect from the whole ingestion-event log.
    assert INGESTION_EVENTS.configs()["retention.ms"] == "-1"
    # backfills replay file events from up to 90 days back.
    assert int(FILES.configs()["retention.ms"]) >= 90 * 24 * 3600 * 1000


def test_settings_read_their_own_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOLOADER_KAFKA_BOOTSTRAP_SERVERS", "broker:29092")
    monkeypatch.setenv("AUTOLOADER_DATABASE_URL", "postgresql+asyncpg://u:p@db:5432/x")
    monkeypatch.setenv("AUTOLOADER_S3_SECRET_ACCESS_KEY", "s3cr3t")
    assert KafkaSettings().bootstrap_servers == "broker:29092"
    assert DatabaseSettings().url.get_secret_value() == "postgresql+asyncpg://u:p@db:5432/x"
    settings = S3Settings()
    assert settings.secret_access_key is not None
    assert "s3cr3t" not in repr(settings)
