"""The Prefect flow `run_ingestion`: discover an ingestion's new files and hand them on.

The flow only orchestrates small tasks: open the run, list and record new files page by page
(or, for a backfill, find the window's files in file_state and queue them again), publish
them to `autoloader.files` for the processor pool. It carries ids only; everything else
is read from the database. Timeout and retries come from AUTOLOADER_FLOW_* settings, which
scheduler-sync puts in each deployment's environment.

While it works the flow writes the run's heartbeat, so that scheduler-sync's watchdog can tell
a live flow run from one whose process died. When discovery fails for good, files already
recorded still close the run (see shared.runs.close_interrupted_run).

Prefect's worker runs every flow run in a new interpreter, which imports this module before
the run can start: what only a later step needs (the S3 listing, the Kafka producer, the
backfill) is imported in that step, so that the run is marked running sooner
(docs/performance.md).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from prefect import flow, get_run_logger, runtime, task
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from sqlalchemy.ext.asyncio import AsyncEngine

from autoloader_discovery.discovery import (
    RunContext,
    beat,
    fail_run,
    finish_discovery,
    pending_files,
    record_new_files,
    source_credentials,
    start_run,
)
from autoloader_discovery.settings import DiscoverySettings
from shared.crypto import CredentialCipher
from shared.db import create_engine, session_factory
from shared.errors import ACCESS_DENIED, NOT_FOUND, TIMEOUT, UNREACHABLE, classify, public_error
from shared.events import FilesDiscovered
from shared.models import RunTrigger


# No task persists its result: results hold ids and counts only, and nothing a retry needs.
@task(name="start_run", cache_policy=NO_CACHE, persist_result=False)
async def start_run_task(
    engine: AsyncEngine, settings: DiscoverySettings, ingestion_id: str, run_id: str | None
) -> RunContext:
    flow_run_id = runtime.flow_run.id
    async with session_factory(engine)() as session:
        return await start_run(
            session,
            uuid.UUID(ingestion_id),
            uuid.UUID(run_id) if run_id else None,
            uuid.UUID(flow_run_id) if flow_run_id else None,
        )


@task(name="discover_files", cache_policy=NO_CACHE, persist_result=False)
async def discover_files_task(
    engine: AsyncEngine, settings: DiscoverySettings, context: RunContext
) -> int:
    """List the source and record what is new; return how many files are new."""
    from autoloader_discovery.listing import list_source  # boto3: only a listing needs it

    logger = get_run_logger()
    new, listed = 0, 0
    cipher = CredentialCipher(settings.credentials.key)
    async with session_factory(engine)() as session:
        credentials = await source_credentials(session, context.ingestion_id, cipher)
    pages = list_source(context.spec.source, credentials, settings.s3, settings.page_size)
    async with session_factory(engine)() as session:
        # One page at a time: the listing never sits whole in memory, and progress shows as it goes.
        while (page := await asyncio.to_thread(next, pages, None)) is not None:
            listed += len(page)
            new += await record_new_files(session, context, page)
            logger.info("listed %d objects, %d new so far", listed, new)
    return new


@task(name="replay_files", cache_policy=NO_CACHE, persist_result=False)
async def replay_files_task(
    engine: AsyncEngine, settings: DiscoverySettings, context: RunContext
) -> int:
    """A backfill: find the window's files in file_state and queue them again."""
    from autoloader_discovery.backfill import Progress, Replay, Window  # backfills only

    logger = get_run_logger()

    def report(progress: Progress) -> None:
        logger.info("backfill progress: %s", progress.as_dict())

    replay = Replay(
        ingestion_id=context.ingestion_id,
        run_id=context.run_id,
        window=Window.of(context.parameters or {}),
        sessions=session_factory(engine),
        report=report,
        page_size=settings.page_size,
    )
    return (await replay.run()).files_queued


@task(name="publish_files", cache_policy=NO_CACHE, persist_result=False)
async def publish_files_task(
    engine: AsyncEngine, settings: DiscoverySettings, context: RunContext
) -> int:
    """Publish every PENDING file of the run; a retry publishes them again, harmlessly."""
    from aiokafka import AIOKafkaProducer  # needed only once the files are known

    async with session_factory(engine)() as session:
        files = await pending_files(session, context.run_id)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for start in range(0, len(files), settings.files_per_event):
            event = FilesDiscovered(
                tenant_id=context.tenant_id,
                ingestion_id=context.ingestion_id,
                run_id=context.run_id,
                files=files[start : start + settings.files_per_event],
                replayed=context.trigger == RunTrigger.BACKFILL,
            )
            await producer.send_and_wait(
                event.topic.name, event.model_dump_json().encode(), key=event.key
            )
    finally:
        await producer.stop()
    async with session_factory(engine)() as session:
        await finish_discovery(session, context.run_id)
    return len(files)


HEARTBEAT_SECONDS = 5.0


@flow(name="run_ingestion", persist_result=False)
async def run_ingestion(ingestion_id: str, run_id: str | None = None) -> dict[str, Any]:
    settings = DiscoverySettings()
    retries, delay = settings.flow.retries, settings.flow.retry_delay_seconds
    engine = create_engine(settings.database)
    context: RunContext | None = None
    heartbeat: asyncio.Task[None] | None = None
    deadline = asyncio.timeout(settings.flow.timeout_seconds)
    try:
        async with deadline:
            start = start_run_task.with_options(retries=retries, retry_delay_seconds=delay)
            discover = discover_files_task.with_options(retries=retries, retry_delay_seconds=delay)
            replay = replay_files_task.with_options(retries=retries, retry_delay_seconds=delay)
            publish = publish_files_task.with_options(retries=retries, retry_delay_seconds=delay)
            context = await start(engine, settings, ingestion_id, run_id)
            heartbeat = asyncio.create_task(_beat_until_cancelled(engine, context.run_id))
            find = replay if context.trigger == RunTrigger.BACKFILL else discover
            new = await find(engine, settings, context)
            published = await publish(engine, settings, context)
        return {"run_id": str(context.run_id), "new_files": new, "published": published}
    except BaseException as error:
        failed_run = context.run_id if context else (uuid.UUID(run_id) if run_id else None)
        if failed_run is not None and _closes_the_run(error):
            reason = _reason(error, deadline, settings.flow.timeout_seconds)
            async with session_factory(engine)() as session:
                await fail_run(session, failed_run, reason)
        raise
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
        await engine.dispose()


async def _beat_until_cancelled(engine: AsyncEngine, run_id: uuid.UUID) -> None:
    """Write the run's heartbeat every few seconds while the flow works on it."""
    sessions = session_factory(engine)
    while True:
        await asyncio.sleep(HEARTBEAT_SECONDS)
        try:
            async with sessions() as session:
                await beat(session, run_id)
        except Exception as error:  # one missed beat is harmless; the watchdog allows several
            get_run_logger().warning("run heartbeat failed: %s: %s", type(error).__name__, error)


def _closes_the_run(error: BaseException) -> bool:
    """Whether this failure is the end of the run's discovery. Not while Prefect will retry
    the flow run, and not when the process is being stopped from outside (SystemExit, a
    termination signal): scheduler-sync's watchdog then finds the flow run crashed and starts
    discovery again, or closes the run after its last attempt."""
    if not isinstance(error, Exception | asyncio.CancelledError):
        return False
    return not _prefect_retries_this_flow_run()


def _prefect_retries_this_flow_run() -> bool:
    """True while Prefect will run this flow run again after a failure: the run is not over."""
    context = FlowRunContext.get()
    flow_ = context.flow if context is not None else None
    retries = (flow_.retries if flow_ is not None else 0) or 0
    return int(runtime.flow_run.run_count) <= retries


def _reason(error: BaseException, deadline: asyncio.Timeout, timeout_seconds: int) -> str:
    """The run's error as its tenant sees it: the reason and a ref. The full text goes to the
    flow run's log under that ref; it may name hosts or internal paths, never a secret."""
    logger = get_run_logger()
    if deadline.expired():
        detail = f"took longer than {timeout_seconds} s"
        return public_error(error, logger, where="discovery failed", reason=TIMEOUT, detail=detail)
    reason = classify(error)
    if reason in (ACCESS_DENIED, NOT_FOUND, UNREACHABLE) and _from_the_store(error):
        reason = f"source {reason}"
    return public_error(error, logger, where="discovery failed", reason=reason)


def _from_the_store(error: BaseException) -> bool:
    """botocore's errors come from listing the source (the store answering, or not)."""
    return type(error).__module__.startswith(("botocore", "boto3"))
