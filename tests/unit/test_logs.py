"""Log lines are JSON objects carrying the ids passed in `extra`."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from shared.logs import JsonFormatter, RepeatFilter

pytestmark = pytest.mark.unit


def test_a_log_line_is_json_with_its_ingestion_and_run_ids() -> None:
    ingestion_id, run_id = uuid.uuid4(), uuid.uuid4()
    record = logging.LogRecord(
        "autoloader", logging.WARNING, __file__, 1, "landed %d files", (3,), None
    )
    record.ingestion_id, record.run_id = ingestion_id, run_id

    line = json.loads(JsonFormatter().format(record))

    assert line["message"] == "landed 3 files"
    assert line["level"] == "WARNING"
    assert (line["ingestion_id"], line["run_id"]) == (str(ingestion_id), str(run_id))
    assert "batch_id" not in line


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_a_libraries_retry_noise_is_logged_once_a_window_with_the_dropped_count() -> None:
    now = [0.0]
    repeats = RepeatFilter(prefixes=("aiokafka",), window=60.0, clock=lambda: now[0])
    connect = "Unable connect to node with id %s: %s"

    passed = []
    for second in range(150):  # a 150 s outage, one retry a second against two brokers
        now[0] = float(second)
        for node in (1, 2):
            record = _record("aiokafka.conn", connect, node, "refused")
            if repeats.filter(record):
                passed.append((second, getattr(record, "suppressed", 0)))

    assert passed == [(0, 0), (60, 119), (120, 119)]


def test_each_kind_of_message_and_every_other_logger_pass_unfiltered() -> None:
    repeats = RepeatFilter(prefixes=("aiokafka",), window=60.0, clock=lambda: 5.0)

    assert repeats.filter(_record("aiokafka.conn", "Unable connect to node %s", 1))
    assert repeats.filter(_record("aiokafka.cluster", "Unable to update metadata"))
    assert not repeats.filter(_record("aiokafka.conn", "Unable connect to node %s", 2))
    ours = [repeats.filter(_record("autoloader.processor", "published %d files", 3)) for _ in "ab"]
    assert ours == [True, True]


def test_the_dropped_count_is_a_field_of_the_json_line() -> None:
    record = _record("aiokafka.conn", "Unable connect to node %s", 1)
    record.suppressed = 41

    assert json.loads(JsonFormatter().format(record))["suppressed"] == 41
