"""The seeds' example request, with the auth header added, against the API `make up` runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
API = os.environ.get("AUTOLOADER_API_URL", "http://127.0.0.1:8000")

SEED_BODY = """{
    "name": "Test Hourly Ingestion %s",
    "cluster_id": "cluster_123",
    "source": {
      "type": "s3",
      "path": "s3://test-bucket/data/",
      "file_pattern": "*.json",
      "credentials": {
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "aws_region": "us-east-1"
      }
    },
    "format": {
      "type": "json",
      "schema": {
        "inference": "auto",
        "evolution_enabled": true
      }
    },
    "destination": {
      "catalog": "spark_catalog",
      "database": "default",
      "table": "test_table",
      "write_mode": "append"
    },
    "schedule": {
      "frequency": "hourly",
      "timezone": "UTC"
    }
  }"""


@pytest.fixture(scope="module")
def api_key(stack_env: dict[str, str]) -> str:
    key_file = ROOT / ".local" / "dev-api-key"
    if not key_file.exists():
        pytest.skip("no development API key: run `make up`, which creates one")
    return key_file.read_text().strip()


def curl(*args: str) -> tuple[int, str]:
    result = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, check=True
    )
    body, _, code = result.stdout.rpartition("\n")
    return int(code), body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_seeds_curl_creates_a_scheduled_ingestion(api_key: str, unique: str) -> None:
    code, body = curl(
        "-X",
        "POST",
        f"{API}/api/v1/ingestions",
        "-H",
        "Content-Type: application/json",
        "-H",
        f"Authorization: Bearer {api_key}",
        "-d",
        SEED_BODY % unique,
    )
    assert code == 201, body
    created = json.loads(body)
    try:
        assert created["schedule_cron"] == "0 * * * *"
        assert created["spec"]["destination"]["table"] == "test_table"
        assert created["spec"]["source"]["credentials"]["aws_secret_access_key"] == "****"
        code, body = curl(
            f"{API}/api/v1/ingestions/{created['id']}", "-H", f"Authorization: Bearer {api_key}"
        )
        assert code == 200 and json.loads(body)["name"] == f"Test Hourly Ingestion {unique}"
    finally:
        curl(
            "-X",
            "DELETE",
            f"{API}/api/v1/ingestions/{created['id']}",
            "-H",
            f"Authorization: Bearer {api_key}",
        )
