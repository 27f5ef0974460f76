"""docs/asyncapi.yaml is what `make asyncapi` generates from the code today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_committed_asyncapi_document_matches_the_event_schemas(tmp_path: Path) -> None:
    out = tmp_path / "asyncapi.yaml"
    faststream = Path(sys.executable).parent / "faststream"
    subprocess.run(
        [
            str(faststream),
            "docs",
            "gen",
            "--factory",
            "--yaml",
            "-o",
            str(out),
            "shared.asyncapi:asyncapi",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    generated = yaml.safe_load(out.read_text())
    committed = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text())
    assert committed == generated, "docs/asyncapi.yaml is stale: run `make asyncapi`"
    schemas = generated["components"]["schemas"]
    for event in (
        "IngestionCreated",
        "IngestionUpdated",
        "IngestionDeleted",
        "IngestionPaused",
        "IngestionResumed",
        "IngestionTriggered",
        "BackfillRequested",
        "TriggerIngestion",
        "RequestBackfill",
        "S3EventNotification",
        "FilesDiscovered",
        "RunCompleted",
    ):
        assert event in schemas, f"{event} is missing from the AsyncAPI document"
