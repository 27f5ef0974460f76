"""Log lines are JSON objects carrying the ids passed in `extra`."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from shared.logs import JsonFormatter

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
