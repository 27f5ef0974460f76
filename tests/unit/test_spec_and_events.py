"""The ingestion spec's presets and checks, the event schemas, and the relay's ordering rule."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any, cast

import pytest
from pydantic import ValidationError

from autoloader_api.ingestions import masked, merge_patch
from autoloader_api.relay import publishable
from shared.events import IngestionCreated, IngestionSnapshot, parse_ingestion_event
from shared.models import OutboxEvent
from shared.spec import IngestionSpec, ScheduleSpec

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("schedule", "cron"),
    [
        ({"frequency": "hourly"}, "0 * * * *"),
        ({"frequency": "daily", "time": "02:30"}, "30 2 * * *"),
        ({"frequency": "daily"}, "0 0 * * *"),
        ({"frequency": "weekly", "time": "18:05", "day_of_week": "Friday"}, "5 18 * * 5"),
        ({"frequency": "weekly"}, "0 0 * * 0"),
        ({"frequency": "every_n_minutes", "interval_minutes": 15}, "*/15 * * * *"),
        ({"frequency": "every_n_minutes", "interval_minutes": 120}, "0 */2 * * *"),
        ({"frequency": "every_n_minutes", "interval_minutes": 1440}, "0 0 * * *"),
        ({"frequency": "custom", "cron": "*/5 9-17 * * 1-5"}, "*/5 9-17 * * 1-5"),
    ],
)
def test_schedule_presets_become_cron(schedule: dict[str, Any], cron: str) -> None:
    assert ScheduleSpec.model_validate(schedule).to_cron() == cron


@pytest.mark.parametrize(
    "schedule",
    [
        {"frequency": "custom", "cron": "* * *"},
        {"frequency": "custom", "cron": "0 24 * * *"},
        {"frequency": "hourly", "cron": "0 * * * *"},
        {"frequency": "every_n_minutes"},
        {"frequency": "every_n_minutes", "interval_minutes": 100},
        {"frequency": "daily", "time": "7:00"},
        {"frequency": "hourly", "timezone": "Europe/Atlantis"},
    ],
)
def test_bad_schedules_are_refused(schedule: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ScheduleSpec.model_validate(schedule)


def spec(**overrides: Any) -> IngestionSpec:
    body: dict[str, Any] = {
        "name": "orders",
        "source": {"type": "s3", "path": "s3://landing/orders/"},
        "format": {"type": "json"},
        "destination": {"table": "orders"},
    }
    return IngestionSpec.model_validate({**body, **overrides})


def test_work_queue_follows_the_execution_settings() -> None:
    assert spec().execution.work_queue == "default"
    assert spec(execution={"high_memory": True}).execution.work_queue == "high-memory"
    assert spec(execution={"priority": "high", "high_memory": True}).execution.work_queue == (
        "priority"
    )


def test_untyped_columns_are_for_text_formats() -> None:
    for kind in ("json", "csv"):
        untyped = spec(format={"type": kind, "schema": {"inference": "none"}})
        assert untyped.format.schema_.inference == "none"
    with pytest.raises(ValidationError, match="parquet files carry their own column types"):
        spec(format={"type": "parquet", "schema": {"inference": "none"}})


def test_stored_spec_leaves_credentials_out_and_keeps_the_rest() -> None:
    source = {
        "type": "s3",
        "path": "s3://landing/orders/",
        "credentials": {"aws_access_key_id": "AKIAXXXX", "aws_secret_access_key": "hush"},
    }
    stored = spec(source=source).stored()
    assert "credentials" not in stored["source"]
    assert stored["source"]["path"] == "s3://landing/orders/"
    assert stored["format"]["schema"]["evolution_enabled"] is True
    assert spec(source=source).source.bucket == "landing"


def test_quoted_destination_cannot_break_out_of_its_identifier() -> None:
    assert spec().destination.qualified == "`spark_catalog`.`default`.`orders`"
    with pytest.raises(ValidationError):
        spec(destination={"table": "orders` DROP TABLE x; --"})


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}
    patch = {"a": None, "b": {"c": 20}, "e": [3], "f": {"g": 1}}
    assert merge_patch(target, patch) == {"b": {"c": 20, "d": 3}, "e": [3], "f": {"g": 1}}
    assert target == {"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]}  # untouched, nested too
    # A patch object over a value that is not one merges into an empty object: no nulls stay.
    assert merge_patch({"a": 1}, {"a": {"b": None, "c": 2}}) == {"a": {"c": 2}}


def test_masking_hides_secrets_and_shortens_the_key_id() -> None:
    shown = masked(
        {
            "aws_access_key_id": "AKIA1234567890",
            "aws_secret_access_key": "topsecret",
            "aws_session_token": "token",
            "aws_region": "eu-west-1",
        }
    )
    assert shown == {
        "aws_access_key_id": "AKIA****",
        "aws_secret_access_key": "****",
        "aws_session_token": "****",
        "aws_region": "eu-west-1",
    }


def test_events_round_trip_through_json_and_are_keyed_by_ingestion() -> None:
    event = IngestionCreated(
        tenant_id=uuid.uuid4(),
        ingestion_id=uuid.uuid4(),
        ingestion=IngestionSnapshot(
            name="orders",
            status="active",
            source_type="s3",
            schedule_cron="0 * * * *",
            schedule_timezone="UTC",
            work_queue="default",
            version=1,
        ),
    )
    parsed = parse_ingestion_event(event.model_dump_json())
    assert parsed == event
    assert event.key == str(event.ingestion_id).encode()
    with pytest.raises(ValidationError):
        parse_ingestion_event(b'{"event_type": "IngestionExploded"}')


def rows(*ids: int) -> list[OutboxEvent]:
    return [cast(OutboxEvent, SimpleNamespace(id=row_id)) for row_id in ids]


def test_relay_publishes_only_the_unbroken_oldest_rows_of_each_key() -> None:
    # Rows 2 (key a) and 5 (key b) are held by another relay.
    unsent = [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "b"), (6, "b"), (7, "c")]
    assert publishable(rows(1, 3, 4, 6, 7), unsent) == [1, 4, 7]
    assert publishable(rows(3, 7), unsent) == [7]
    assert publishable(rows(1, 2, 3), unsent) == [1, 2, 3]
