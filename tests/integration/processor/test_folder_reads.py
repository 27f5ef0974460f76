"""Which folders a batch lists whole, decided by listing them in the real store: never one
with subfolders, never one that takes more pages than the batch's files pay for, and never
when the listing fails; and a batch that lands through its folder, on the real stack."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_processor import claims, folders
from autoloader_processor.folders import FolderSizer, pages_to_list
from autoloader_processor.pool import Processor
from shared.models import FileState, FileStatus
from shared.s3 import source_client
from shared.settings import S3Settings
from shared.spec import S3Credentials
from tests.integration.processor.conftest import (
    BUCKET,
    Landing,
    fetched_batches,
    put_files,
    record_files,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


def put(s3: S3Client, bucket: str, keys: list[str]) -> list[str]:
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"a": 1}\n')
    return [f"s3://{bucket}/{key}" for key in keys]


def own_keys(settings: S3Settings) -> S3Credentials:
    assert settings.access_key_id and settings.secret_access_key, "the stack's keys"
    return S3Credentials(
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
    )


def test_a_folder_is_small_enough_only_within_its_pages(
    s3: S3Client, bucket: str, s3_settings: S3Settings
) -> None:
    put(s3, bucket, [f"flat/{i:02d}.json" for i in range(12)])
    client = source_client(s3_settings, own_keys(s3_settings).revealed())
    folder = f"s3://{bucket}/flat/"
    assert pages_to_list(client, folder, 2, page_size=5) is None  # 12 keys: 3 pages of 5
    assert pages_to_list(client, folder, 3, page_size=5) == 3


def test_a_folder_with_a_subfolder_is_never_small_enough(
    s3: S3Client, bucket: str, s3_settings: S3Settings
) -> None:
    put(s3, bucket, ["top/a.json", "top/b.json", "top/dt=2026-11-24/c.json"])
    client = source_client(s3_settings, own_keys(s3_settings).revealed())
    assert pages_to_list(client, f"s3://{bucket}/top/", 1000) is None
    assert pages_to_list(client, f"s3://{bucket}/top/dt=2026-11-24/", 1) == 1


def test_the_sizer_picks_folders_with_enough_of_the_batch_in_them(
    s3: S3Client, bucket: str, s3_settings: S3Settings
) -> None:
    many = put(s3, bucket, [f"many files/{i:02d} #?.json" for i in range(40)])
    few = put(s3, bucket, [f"few/{i}.json" for i in range(5)])
    keys = own_keys(s3_settings)
    assert FolderSizer(s3_settings, 20).folders(many + few, keys) == [f"s3://{bucket}/many files/"]
    assert FolderSizer(s3_settings, 41).folders(many + few, keys) == []  # 40 pay for no page
    assert FolderSizer(s3_settings, 0).folders(many + few, keys) == []  # turned off


def test_a_folder_that_did_not_fit_is_not_listed_again_for_as_many_pages(
    s3: S3Client, bucket: str, s3_settings: S3Settings
) -> None:
    """1,001 keys take two pages; with one key gone the folder would fit in one, but a sizer
    that found it too big does not list it again for a batch that pays for one page."""
    keys = [f"in/{i:04d}.json" for i in range(1001)]
    with ThreadPoolExecutor(16) as pool:
        paths = list(pool.map(lambda key: put(s3, bucket, [key])[0], keys))
    batch = paths[:40]
    credentials, sizer = own_keys(s3_settings), FolderSizer(s3_settings, 40)
    assert sizer.folders(batch, credentials) == []  # two pages; the batch pays for one
    s3.delete_object(Bucket=bucket, Key=keys[-1])

    assert sizer.folders(batch, credentials) == []  # remembered: not listed again
    assert FolderSizer(s3_settings, 40).folders(batch, credentials) == [f"s3://{bucket}/in/"]
    assert sizer.folders(paths[:80], credentials) == [f"s3://{bucket}/in/"]  # two pages: listed


def test_a_folder_that_fit_is_believed_to_for_a_while(
    s3: S3Client, bucket: str, s3_settings: S3Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog's batches, seconds apart, list their folder once: a subfolder made after the
    first listing is seen only once FIT_SECONDS have passed."""
    paths = put(s3, bucket, [f"fit/{i:02d}.json" for i in range(40)])
    credentials, folder = own_keys(s3_settings), [f"s3://{bucket}/fit/"]
    believing, forgetting = FolderSizer(s3_settings, 20), FolderSizer(s3_settings, 20)
    assert believing.folders(paths[:20], credentials) == folder
    monkeypatch.setattr(folders, "FIT_SECONDS", 0.0)
    assert forgetting.folders(paths[:20], credentials) == folder  # believed for no time
    put(s3, bucket, ["fit/sub/x.json"])

    assert believing.folders(paths[20:], credentials) == folder  # not listed again
    assert forgetting.folders(paths[20:], credentials) == []  # listed again: a subfolder


def test_a_listing_that_fails_reads_file_by_file(
    s3: S3Client, bucket: str, s3_settings: S3Settings
) -> None:
    paths = put(s3, bucket, [f"denied/{i:02d}.json" for i in range(40)])
    wrong = own_keys(s3_settings).model_copy(
        update={"aws_secret_access_key": SecretStr("not the secret")}
    )
    assert FolderSizer(s3_settings, 20).folders(paths, wrong) == []
    assert FolderSizer(s3_settings, 20).folders(paths, own_keys(s3_settings)) != []


@pytest.mark.parametrize("fetching", [True, False])
async def test_a_batch_lands_through_its_folder_beside_files_that_are_not_its_own(
    sessions: async_sessionmaker[AsyncSession],
    landing: Landing,
    processor: Processor,
    s3: S3Client,
    spark: Any,
    fetching: bool,
) -> None:
    """100 files of a 120-file folder, as the service is configured: fetched by the
    processor, or with fetching off (`AUTOLOADER_PROCESSOR_FETCH_BATCH_BYTES=0`) listed whole
    by Spark (the folder takes one page, which 100 files pay for); either way every file
    SUCCESS with its own rows, the other 20 never read."""
    if not fetching:
        processor.fetcher = None
    names = [f"batch {n:03d} #%?.json" for n in range(100)]
    sizes = put_files(s3, landing, names, rows=3)
    put_files(s3, landing, [f"other {n:02d}.json" for n in range(19)], rows=7)
    s3.put_object(Bucket=BUCKET, Key=f"{landing.prefix}/broken.json.gz", Body=b"not gzip")
    ids = await record_files(sessions, landing, sizes)
    listed_before, fetched_before = listed(), fetched_batches("fetched")
    async with sessions() as session:
        claim = await claims.claim_batch(session, landing.ingestion.id, "it", 500, 10**9, 20)
    assert claim is not None and len(claim.files) == 100

    assert await processor.process(landing.ingestion, landing.spec, claim)

    assert listed() == listed_before + (not fetching)
    assert fetched_batches("fetched") == fetched_before + fetching
    async with sessions() as session:
        rows = await session.execute(
            select(FileState.path, FileState.status, FileState.records).where(FileState.id.in_(ids))
        )
        assert {(path, status, records) for path, status, records in rows.all()} == {
            (path, FileStatus.SUCCESS, 3) for path in sizes
        }
    landed = spark.table(landing.table).groupBy("_source_file").count().collect()
    assert {row["_source_file"]: row["count"] for row in landed} == dict.fromkeys(sizes, 3)
    # 100 small files are written as one data file, not one per read task.
    assert spark.sql(f"SELECT file_path FROM {landing.table}.files").count() == 1


def listed() -> float:
    return REGISTRY.get_sample_value("autoloader_folder_reads_total", {"outcome": "listed"}) or 0.0
