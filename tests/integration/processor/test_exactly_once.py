"""The processor's exactly-once holes, each reproduced against the real PostgreSQL, S3 store
and Spark Connect: overlapping holders, an ambiguous commit, a split re-claim."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_processor import claims
from autoloader_processor.iceberg import IcebergTables
from autoloader_processor.pool import Processor
from autoloader_processor.reading import BatchReader
from shared.models import FileState
from tests.integration.processor.conftest import Landing, expire_lease, put_files, record_files

pytestmark = pytest.mark.integration


async def claim(
    sessions: async_sessionmaker[AsyncSession], landing: Landing, worker: str, max_files: int = 10
) -> claims.Claim:
    async with sessions() as session:
        taken = await claims.claim_batch(
            session, landing.ingestion.id, worker, max_files, 10**9, 20
        )
    assert taken is not None
    return taken


async def states(sessions: async_sessionmaker[AsyncSession], ids: list[int]) -> list[Any]:
    async with sessions() as session:
        rows = await session.execute(
            select(
                FileState.id,
                FileState.status,
                FileState.records,
                FileState.batch_id,
                FileState.attempts,
            )
            .where(FileState.id.in_(ids))
            .order_by(FileState.id)
        )
        return list(rows.all())


def table_rows(spark: Any, landing: Landing) -> tuple[int, int]:
    frame = spark.table(landing.table)
    return frame.count(), frame.select("file", "row").distinct().count()


async def test_overlapping_holders_of_one_batch_land_it_once(
    sessions: async_sessionmaker[AsyncSession],
    landing: Landing,
    processor: Processor,
    s3: Any,
    spark: Any,
) -> None:
    """A holder that outlived its lease has staged the batch; the next holder lands it; the
    first one's late publish is refused, and its marks change nothing."""
    sizes = put_files(s3, landing, [f"f{n}.json" for n in range(4)])
    ids = await record_files(sessions, landing, sizes)
    first = await claim(sessions, landing, "first")
    read = BatchReader(spark, landing.spec, sizes).read()
    assert read.frame is not None
    tables = IcebergTables(spark, set())
    tables.ensure_table(landing.table, read.frame)
    staged = tables.stage(
        landing.spec, landing.table, read.frame, first.files[0].batch_id, first.token
    )

    await expire_lease(sessions, ids)
    second = await claim(sessions, landing, "second")
    assert second.ids == first.ids
    assert first.fresh and not second.fresh  # the replay key was made before: look it up
    assert {f.batch_id for f in second.files} == {first.files[0].batch_id}
    async with sessions() as session:
        assert not await claims.renew(session, first, 20)
    assert await processor.process(landing.ingestion, landing.spec, second)

    assert tables.publish(landing.table, staged) is None
    async with sessions() as session, session.begin():
        assert await claims.mark_succeeded(session, first, dict.fromkeys(ids, 99)) == 0
    assert table_rows(spark, landing) == (12, 12)
    assert [(s.status, s.records) for s in await states(sessions, ids)] == [("SUCCESS", 3)] * 4


async def test_a_commit_that_landed_before_an_error_is_not_written_again(
    sessions: async_sessionmaker[AsyncSession],
    landing: Landing,
    processor: Processor,
    s3: Any,
    spark: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The publish lands, then the connection drops: the files are SUCCESS from the table's
    own record of the batch, and nothing is written twice."""
    sizes = put_files(s3, landing, [f"f{n}.json" for n in range(3)])
    ids = await record_files(sessions, landing, sizes)
    publish = IcebergTables.publish

    def publish_then_drop(self: IcebergTables, table: str, snapshot_id: int) -> bool:
        publish(self, table, snapshot_id)
        raise ConnectionResetError("the connection dropped after the commit")

    monkeypatch.setattr(IcebergTables, "publish", publish_then_drop)
    assert await processor.process(
        landing.ingestion, landing.spec, await claim(sessions, landing, "p")
    )

    assert [(s.status, s.records) for s in await states(sessions, ids)] == [("SUCCESS", 3)] * 3
    assert table_rows(spark, landing) == (9, 9)


async def test_an_error_before_the_commit_keeps_the_replay_key_for_the_retry(
    sessions: async_sessionmaker[AsyncSession],
    landing: Landing,
    processor: Processor,
    s3: Any,
    spark: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sizes = put_files(s3, landing, [f"f{n}.json" for n in range(3)])
    ids = await record_files(sessions, landing, sizes)
    first = await claim(sessions, landing, "p")

    def refuse(self: IcebergTables, table: str, snapshot_id: int) -> bool:
        raise TimeoutError("the catalog did not say whether the commit landed")

    with monkeypatch.context() as patch:
        patch.setattr(IcebergTables, "publish", refuse)
        await processor.process(landing.ingestion, landing.spec, first)
    after = await states(sessions, ids)
    assert {(s.status, s.batch_id, s.attempts) for s in after} == {
        ("PENDING", first.files[0].batch_id, 1)
    }

    await _due_now(sessions, ids)
    retry = await claim(sessions, landing, "p")
    assert retry.ids == ids and retry.files[0].batch_id == first.files[0].batch_id
    assert await processor.process(landing.ingestion, landing.spec, retry)
    assert [(s.status, s.records) for s in await states(sessions, ids)] == [("SUCCESS", 3)] * 3
    assert table_rows(spark, landing) == (9, 9)


async def test_a_re_claim_takes_the_whole_orphaned_batch_and_never_a_due_retry_with_it(
    sessions: async_sessionmaker[AsyncSession], landing: Landing, s3: Any
) -> None:
    """f4 is a due retry, f5-f7 an orphaned batch: no claim mixes them, however the limit
    cuts."""
    sizes = put_files(s3, landing, [f"f{n}.json" for n in range(4, 8)])
    f4, *orphaned = await record_files(sessions, landing, sizes)
    batch = await claim(sessions, landing, "dead", max_files=3)  # f4, f5, f6
    async with sessions() as session, session.begin():
        await session.execute(  # f4 failed alone earlier and is due again, outside any batch
            text(
                "UPDATE file_state SET status = 'PENDING', batch_id = NULL, claim_token = NULL "
                "WHERE id = :id"
            ),
            {"id": f4},
        )
        await session.execute(  # f5, f6, f7 make up the dead holder's batch
            text(
                "UPDATE file_state SET status = 'CLAIMED', batch_id = :batch, "
                "lease_until = now() - interval '1 second' WHERE id = ANY(:ids)"
            ),
            {"batch": batch.files[0].batch_id, "ids": orphaned},
        )

    first = await claim(sessions, landing, "next", max_files=3)
    second = await claim(sessions, landing, "next", max_files=3)
    assert first.ids == [f4]
    assert first.files[0].batch_id != batch.files[0].batch_id
    assert second.ids == orphaned
    assert {f.batch_id for f in second.files} == {batch.files[0].batch_id}


async def test_fresh_files_never_take_the_replay_key_of_a_batch_not_yet_claimable(
    sessions: async_sessionmaker[AsyncSession], landing: Landing, s3: Any
) -> None:
    """f1 and f2 share batch X after a failure whose commit may have landed; their retries come
    due at different times (attempts differ). With only f1 due, X cannot be claimed whole, and
    the fresh f3 is claimed on its own, under a batch id of its own, not X's."""
    sizes = put_files(s3, landing, ["f1.json", "f2.json", "f3.json"])
    f1, f2, f3 = await record_files(sessions, landing, sizes)
    batch = await claim(sessions, landing, "dead", max_files=2)
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "UPDATE file_state SET status = 'PENDING', claim_token = NULL, "
                "lease_until = NULL, next_attempt_at = CASE WHEN id = :f1 "
                "THEN now() - interval '1 second' ELSE now() + interval '1 hour' END "
                "WHERE id = ANY(:ids)"
            ),
            {"f1": f1, "ids": [f1, f2]},
        )

    fresh = await claim(sessions, landing, "next")
    assert fresh.ids == [f3]
    assert fresh.files[0].batch_id != batch.files[0].batch_id
    assert batch.fresh and fresh.fresh  # ids this claim made: no table can hold them yet


async def test_files_a_replayed_commit_does_not_hold_are_retried_not_recorded_empty(
    sessions: async_sessionmaker[AsyncSession],
    landing: Landing,
    processor: Processor,
    s3: Any,
    spark: Any,
) -> None:
    """Batch X was committed with f5 and f6 only; re-claimed as {f5, f6, f7}, f7 is given back
    for a fresh attempt instead of SUCCESS with 0 rows, and then lands."""
    sizes = put_files(s3, landing, ["f5.json", "f6.json", "f7.json"])
    ids = await record_files(sessions, landing, sizes)
    taken = await claim(sessions, landing, "dead")
    partial = {p: n for p, n in sizes.items() if not p.endswith("f7.json")}
    read = BatchReader(spark, landing.spec, partial).read()
    assert read.frame is not None
    tables = IcebergTables(spark, set())
    tables.ensure_table(landing.table, read.frame)
    batch_id = taken.files[0].batch_id
    staged = tables.stage(landing.spec, landing.table, read.frame, batch_id, "dead")
    assert tables.publish(landing.table, staged) is not None
    await expire_lease(sessions, ids)

    assert await processor.process(
        landing.ingestion, landing.spec, await claim(sessions, landing, "p")
    )
    after = await states(sessions, ids)
    assert [(s.status, s.records) for s in after[:2]] == [("SUCCESS", 3)] * 2
    assert (after[2].status, after[2].batch_id, after[2].attempts) == ("PENDING", None, 1)

    await _due_now(sessions, ids)
    assert await processor.process(
        landing.ingestion, landing.spec, await claim(sessions, landing, "p")
    )
    assert [(s.status, s.records) for s in await states(sessions, ids)] == [("SUCCESS", 3)] * 3
    assert table_rows(spark, landing) == (9, 9)


async def _due_now(sessions: async_sessionmaker[AsyncSession], ids: list[int]) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE file_state SET next_attempt_at = now() WHERE id = ANY(:ids)"),
            {"ids": ids},
        )


async def test_a_table_someone_else_created_gets_wap_on_and_lands_batches_once(
    sessions: async_sessionmaker[AsyncSession], landing: Landing, spark: Any, s3: Any
) -> None:
    """The table exists without WAP (made by hand, or by another processor between our
    check and our create): creating it again is refused, and the table gets WAP instead."""
    sizes = put_files(s3, landing, ["a.json"])
    read = BatchReader(spark, landing.spec, sizes).read()
    assert read.frame is not None
    read.frame.limit(0).writeTo(landing.table).using("iceberg").create()

    tables = IcebergTables(spark, set())
    tables.ensure_table(landing.table, read.frame)

    properties = dict(
        (row["key"], row["value"])
        for row in spark.sql(f"SHOW TBLPROPERTIES {landing.table}").collect()
    )
    assert properties.get("write.wap.enabled") == "true"
    staged = tables.stage(landing.spec, landing.table, read.frame, "batch-1", "token-1")
    assert tables.publish(landing.table, staged) is not None
    assert tables.publish(landing.table, staged) is None  # the same batch again: refused
    assert spark.table(landing.table).count() == read.frame.count() > 0
