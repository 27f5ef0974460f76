"""Every spec the API accepts is stored so that it validates again, unchanged.

The API keeps `IngestionSpec.stored()`; discovery, the processor and the notification router
read it back with `model_validate`. A shape that is accepted once and refused when read back
stops every run and every notification of its ingestion, so each shape the API accepts is
tried here: the seeds' request, each schedule preset, and notifications with and without a
schedule or an interval.
"""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

import pytest
from pydantic import ValidationError

from shared.spec import IngestionSpec
from tests.e2e.test_seed_request import SEED_BODY

pytestmark = pytest.mark.unit

SCHEDULES: list[dict[str, Any] | None] = [
    None,
    {"frequency": "hourly"},
    {"frequency": "hourly", "timezone": "UTC"},
    {"frequency": "daily", "time": "02:30", "timezone": "Europe/Berlin"},
    {"frequency": "daily"},
    {"frequency": "weekly", "time": "23:59", "day_of_week": "Friday"},
    {"frequency": "weekly"},
    {"frequency": "every_n_minutes", "interval_minutes": 15},
    {"frequency": "every_n_minutes", "interval_minutes": 120},
    {"frequency": "every_n_minutes", "interval_minutes": 1440},
    {"frequency": "custom", "cron": "*/5 9-17 * * 1-5", "timezone": "America/New_York"},
]

NOTIFICATIONS: list[dict[str, Any] | None] = [
    None,
    {},
    {"enabled": True},
    {"enabled": False},
    {"enabled": True, "safety_net_interval_minutes": 15},
    {"enabled": True, "safety_net_interval_minutes": 120},
    {"enabled": False, "safety_net_interval_minutes": 30},
    {"enabled": True, "safety_net_interval_minutes": None},
]

FORMATS: list[dict[str, Any]] = [
    {"type": "json"},
    {"type": "json", "multiline": True, "schema": {"inference": "none"}},
    {"type": "csv", "header": False, "delimiter": ";", "compression": "gzip"},
    {"type": "parquet"},
]


def seed_body() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(SEED_BODY % "x")
    return body


def shapes() -> list[dict[str, Any]]:
    """The seeds' body varied in schedule, notifications, format and execution."""
    bodies = []
    for schedule, notifications, format_ in itertools.product(SCHEDULES, NOTIFICATIONS, FORMATS):
        body = seed_body()
        body["schedule"] = copy.deepcopy(schedule)
        body["format"] = copy.deepcopy(format_)
        if notifications is not None:
            body["source"]["notifications"] = copy.deepcopy(notifications)
        bodies.append(body)
    local = seed_body()
    local["source"] = {"type": "local", "path": "file:///data/in", "file_pattern": "*.json"}
    local["execution"] = {"priority": "high", "max_files_per_batch": 10}
    local["overwrite_policy"] = "reingest"
    return [seed_body(), local, *bodies]


def accepted(body: dict[str, Any]) -> IngestionSpec | None:
    """The spec the API would store, or None if it refuses the body."""
    try:
        return IngestionSpec.model_validate(body)
    except ValidationError:
        return None


ACCEPTED = [body for body in shapes() if accepted(body) is not None]


def test_only_a_schedule_with_an_interval_too_is_refused() -> None:
    refused = [body for body in shapes() if accepted(body) is None]
    for body in refused:
        interval = body["source"].get("notifications", {}).get("safety_net_interval_minutes")
        assert body["schedule"] is not None and interval is not None, body
    specs = [IngestionSpec.model_validate(body) for body in ACCEPTED]
    assert any(spec.schedule and spec.uses_notifications for spec in specs)
    assert any(not spec.schedule and spec.uses_notifications for spec in specs)


@pytest.mark.parametrize("body", ACCEPTED)
def test_a_stored_spec_validates_again_unchanged(body: dict[str, Any]) -> None:
    spec = IngestionSpec.model_validate(body)
    stored = spec.stored()
    revalidated = IngestionSpec.model_validate(stored)
    assert revalidated.stored() == stored
    assert revalidated.listing_cron() == spec.listing_cron()
    full = spec.model_dump(mode="json", by_alias=True)
    assert IngestionSpec.model_validate(full).model_dump(mode="json", by_alias=True) == full


def test_a_notified_ingestion_lists_on_its_schedule_or_else_every_hour() -> None:
    body = seed_body()
    body["source"]["notifications"] = {"enabled": True}
    body["schedule"] = {"frequency": "daily", "time": "02:30"}
    stored = IngestionSpec.model_validate(body).stored()
    assert IngestionSpec.model_validate(stored).listing_cron() == ("30 2 * * *", "UTC")
    # A change that drops the schedule brings back the default safety net.
    unscheduled = {**stored, "schedule": None}
    assert IngestionSpec.model_validate(unscheduled).listing_cron() == ("0 */1 * * *", "UTC")
    body["source"]["notifications"]["safety_net_interval_minutes"] = 15
    with pytest.raises(ValidationError, match="safety net"):
        IngestionSpec.model_validate(body)
