"""Through the whole stack, a source is read with its ingestion's own credentials and nothing
else: keys that may not read the bucket fail its files, STS credentials land theirs.

Each test uses a fresh bucket that no tenant has registered, created with the dev store's
admin keys, and store identities of its own (see tests/integration/processor/
test_source_credentials.py); the ingestion is created through the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from devstack.components.seaweedfs import SeaweedFS
from devstack.layout import Addresses, Layout
from shared.s3 import source_client
from shared.settings import S3Settings
from tests.e2e.ledger import Ledger
from tests.e2e.test_ingestion_pipeline import run_and_wait
from tests.integration.processor.test_source_credentials import (
    Buckets,
    Identities,
    Keys,
    temporary_keys,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FILES, ROWS = 4, 10


@pytest.fixture
def identities(s3_settings: S3Settings) -> Iterator[Identities]:
    made = Identities(SeaweedFS(Layout.discover(), Addresses()), s3_settings)
    yield made
    made.remove()


@pytest.fixture
def fresh(s3: S3Client) -> Iterator[Buckets]:
    made = Buckets(s3)
    yield made
    made.remove()


def put_files(s3: S3Client, bucket: str) -> None:
    for n in range(FILES):
        lines = [json.dumps({"file": n, "row": r}) for r in range(ROWS)]
        s3.put_object(Bucket=bucket, Key=f"in/part-{n}.json", Body="\n".join(lines).encode())


def body(bucket: str, table: str, keys: Keys) -> dict[str, Any]:
    return {
        "name": f"isolation-{table}",
        "source": {
            "type": "s3",
            "path": f"s3://{bucket}/in/",
            "file_pattern": "*.json",
            "credentials": keys.credentials(),
        },
        "format": {"type": "json"},
        "destination": {"catalog": "spark_catalog", "database": "default", "table": table},
    }


async def test_keys_that_may_not_read_the_bucket_fail_its_files_and_land_nothing(
    api: httpx.AsyncClient,
    s3: S3Client,
    s3_settings: S3Settings,
    spark: Any,
    ledger: Ledger,
    identities: Identities,
    fresh: Buckets,
) -> None:
    """Tenant A's keys may list B's bucket but not read its objects: discovery finds the
    files, and Spark, reading with A's keys (not the service's, which could), is refused."""
    bucket = fresh.make()
    put_files(s3, bucket)
    owner = identities.make([f"Read:{bucket}", f"List:{bucket}"])  # tenant B's keys
    tenant_a = identities.make([f"List:{bucket}"])
    table = ledger.table("iso")
    created = await api.post("/api/v1/ingestions", json=body(bucket, table, tenant_a))
    assert created.status_code == 201, created.text

    run = await run_and_wait(api, created.json()["id"])

    assert run["status"] == "failed", run
    assert run["file_counts"] == {"FAILED": FILES}, run
    files = (await api.get(f"/api/v1/ingestions/{created.json()['id']}/files")).json()["items"]
    assert files and all("access denied" in f["error"] for f in files), files
    assert not spark.catalog.tableExists(f"spark_catalog.default.{table}")
    # The files themselves are readable, with the keys that may read them.
    owners_view = source_client(s3_settings, owner.credentials())
    assert owners_view.get_object(Bucket=bucket, Key="in/part-0.json")["ContentLength"] > 0


async def test_temporary_credentials_land_their_files_once(
    api: httpx.AsyncClient,
    s3: S3Client,
    s3_settings: S3Settings,
    spark: Any,
    ledger: Ledger,
    identities: Identities,
    fresh: Buckets,
) -> None:
    """Key, secret and session token from the store's STS, scoped to the one bucket: the store
    refuses the key and secret without the token, so landing proves the token went along."""
    bucket, elsewhere = fresh.make(), fresh.make()
    put_files(s3, bucket)
    temporary = temporary_keys(s3_settings, identities.make([f"List:{elsewhere}"]), bucket)
    table = ledger.table("sts")
    created = await api.post("/api/v1/ingestions", json=body(bucket, table, temporary))
    assert created.status_code == 201, created.text
    ingestion_id = created.json()["id"]

    first = await run_and_wait(api, ingestion_id)

    assert first["status"] == "success", first
    assert (first["file_counts"], first["records"]) == ({"SUCCESS": FILES}, FILES * ROWS)
    frame = spark.table(f"spark_catalog.default.{table}")
    assert frame.count() == FILES * ROWS
    assert frame.select("file", "row").distinct().count() == FILES * ROWS
    again = await run_and_wait(api, ingestion_id)
    assert (again["status"], again["files_expected"]) == ("success", 0), again
    assert spark.table(f"spark_catalog.default.{table}").count() == FILES * ROWS
