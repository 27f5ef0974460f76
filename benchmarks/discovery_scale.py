"""`make bench-discovery`: discovery of a 100,000-key prefix with 50,000 keys already known in
file_state, and with none known, timed in-process. Needs `make up`.

What is timed is the body of the flow's `discover_files_task` (autoloader_discovery.flows)
without Prefect: read the source's credentials, then `list_source` and `record_new_files`
page by page, with the same settings, engine and session factory as the flow. Each round
prints the seconds (and of them, how long the loop waited for the next page and how long it
spent recording), the keys listed, the new files recorded, the S3 ListObjectsV2 requests and
the database round trips, counted by listeners this benchmark puts on the engine (statements,
transactions, and the pool's pre-ping at each connection checkout; asyncpg's one-off prepare of
a statement on a new connection is not counted). The known files are recorded beforehand by
`record_new_files` too, under a finished run of their own.

Nothing discovered here is ever ingested. Each measurement has an ingestion of its own
(its known files are its own, and an index range no earlier round touched), created through
the REST API and deleted through it again before any of its files is recorded: the processor
skips the files of a deleted ingestion, and this benchmark publishes nothing to
`autoloader.files`. The runs and file rows are removed after each measurement, and those an
interrupted run of the benchmark left behind are removed at the start.

The keys are uploaded once, to s3://autoloader-landing/bench/discovery-<keys>/; a marker
object beside the prefix says that they are all there, so later runs reuse them. Uploading
100,000 objects takes a few minutes, and the store notifies each of them on
`autoloader.s3-events`, which the discovery consumer reads (and ignores: no ingestion takes
notifications from this prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from unittest import mock

import httpx
from botocore.exceptions import ClientError
from sqlalchemy import delete, event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from autoloader_discovery import listing
from autoloader_discovery.discovery import RunContext, record_new_files, source_credentials
from autoloader_discovery.listing import ListedObject, list_source
from autoloader_discovery.settings import DiscoverySettings
from benchmarks.report import median, save
from devstack.components.seaweedfs import LANDING_BUCKET
from devstack.layout import Layout
from shared.crypto import CredentialCipher
from shared.db import create_engine, session_factory
from shared.models import FileState, FileStatus, Ingestion, Run, RunStatus, RunTrigger
from shared.s3 import s3_client, source_client
from shared.settings import S3Settings
from shared.spec import IngestionSpec

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

API = os.environ.get("AUTOLOADER_API_URL", "http://127.0.0.1:8000")
NAME_PREFIX = "bench_discovery_"
TARGET_SECONDS = 10.0  # issue 12: 100,000 keys discovered in 10 s or less
# SQLAlchemy's asyncpg dialect pings a connection at checkout (pool_pre_ping) in a transaction
# of its own: BEGIN, ";", ROLLBACK.
PING_ROUND_TRIPS = 3


# ------------------------------------------------------------------------- the keys in the store


def key_of(prefix: str, number: int) -> str:
    return f"{prefix}/part-{number:06d}.json"


def ensure_keys(s3: S3Client, prefix: str, keys: int, threads: int) -> None:
    """Upload what the prefix lacks of its `keys` objects, unless its marker says none."""
    marker = f"{prefix}.ready"  # beside the prefix, so that no listing of it sees the marker
    try:
        s3.head_object(Bucket=LANDING_BUCKET, Key=marker)
        print(f"reusing the {keys:,} keys of s3://{LANDING_BUCKET}/{prefix}/")
        return
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchKey", "NotFound"):
            raise
    present = {
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=LANDING_BUCKET, Prefix=f"{prefix}/"
        )
        for item in page.get("Contents", [])
    }
    missing = [n for n in range(keys) if key_of(prefix, n) not in present]
    print(f"uploading {len(missing):,} of {keys:,} keys to s3://{LANDING_BUCKET}/{prefix}/")
    began, step = time.monotonic(), max(1, len(missing) // 20)

    def put(number: int) -> None:
        body = f'{{"n": {number}}}\n'.encode()
        s3.put_object(Bucket=LANDING_BUCKET, Key=key_of(prefix, number), Body=body)

    with ThreadPoolExecutor(threads) as pool:
        uploads = [pool.submit(put, number) for number in missing]
        for done, upload in enumerate(as_completed(uploads), 1):
            upload.result()
            if done % step == 0 or done == len(missing):
                rate = done / max(time.monotonic() - began, 1e-9)
                print(f"  {done:,}/{len(missing):,} uploaded ({rate:,.0f}/s)", flush=True)
    s3.put_object(Bucket=LANDING_BUCKET, Key=marker, Body=f"{keys}\n".encode())


# ------------------------------------------------------------------------------ what is counted


@dataclass
class RoundTrips:
    """Database work seen by the engine's and the pool's event listeners."""

    statements: int = 0
    begins: int = 0
    commits: int = 0
    rollbacks: int = 0
    checkouts: int = 0

    @property
    def total(self) -> int:
        return (
            self.statements
            + self.begins
            + self.commits
            + self.rollbacks
            + PING_ROUND_TRIPS * self.checkouts
        )

    def reset(self) -> None:
        self.statements = self.begins = self.commits = self.rollbacks = self.checkouts = 0

    def listen(self, engine: AsyncEngine) -> None:
        sync_engine = engine.sync_engine

        def counter(name: str) -> Any:
            def count(*args: Any, **kwargs: Any) -> None:
                setattr(self, name, getattr(self, name) + 1)

            return count

        event.listen(sync_engine, "before_cursor_execute", counter("statements"))
        event.listen(sync_engine, "begin", counter("begins"))
        event.listen(sync_engine, "commit", counter("commits"))
        event.listen(sync_engine, "rollback", counter("rollbacks"))
        event.listen(sync_engine.pool, "checkout", counter("checkouts"))


class ListRequests:
    """ListObjectsV2 requests of every source client listing makes while it is installed."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, **kwargs: Any) -> None:
        self.count += 1

    @contextmanager
    def installed(self) -> Iterator[ListRequests]:
        def counted(settings: S3Settings, credentials: Any) -> Any:
            client = source_client(settings, credentials)
            client.meta.events.register("before-call.s3.ListObjectsV2", self)
            return client

        with mock.patch.object(listing, "source_client", counted):
            yield self


@dataclass
class Round:
    number: int
    known: int
    seconds: float
    listed: int
    new: int
    waiting_for_listing: float
    recording: float
    list_requests: int
    pages: int
    statements: int
    transactions: int
    checkouts: int
    round_trips: int

    @property
    def round_trips_per_page(self) -> float:
        return self.round_trips / max(self.pages, 1)

    def line(self) -> str:
        return (
            f"round {self.number}, {self.known:>6,} known: {self.seconds:6.2f} s "
            f"(waiting for listing {self.waiting_for_listing:.2f} s, recording "
            f"{self.recording:.2f} s)  {self.listed:,} listed  {self.new:,} new  "
            f"{self.list_requests} S3 list requests  {self.statements} statements  "
            f"{self.transactions} transactions  {self.checkouts} checkouts  "
            f"{self.round_trips} round trips ({self.round_trips_per_page:.1f} a page)"
        )


# ---------------------------------------------------------------------------- what is timed


@dataclass
class Discovered:
    listed: int = 0
    new: int = 0
    pages: int = 0
    waiting_for_listing: float = 0.0  # seconds the loop waited for the next page
    recording: float = 0.0  # seconds in record_new_files


async def discover(
    sessions: async_sessionmaker[AsyncSession],
    settings: DiscoverySettings,
    cipher: CredentialCipher,
    context: RunContext,
) -> Discovered:
    """flows.discover_files_task without Prefect: list the source and record what is new."""
    async with sessions() as session:
        credentials = await source_credentials(session, context.ingestion_id, cipher)
    pages = list_source(context.spec.source, credentials, settings.s3, settings.page_size)
    found = Discovered()
    async with sessions() as session:
        while True:
            began = time.perf_counter()
            page = await asyncio.to_thread(next, pages, None)
            arrived = time.perf_counter()
            found.waiting_for_listing += arrived - began
            if page is None:
                return found
            found.new += await record_new_files(session, context, page)
            found.recording += time.perf_counter() - arrived
            found.listed += len(page)
            found.pages += 1


# ------------------------------------------------------------------------ the ingestion's rows


def create_deleted_ingestion(api: httpx.Client, prefix: str) -> uuid.UUID:
    """An ingestion of the prefix, made and deleted through the API: its files are never
    processed."""
    name = f"{NAME_PREFIX}{uuid.uuid4().hex[:8]}"
    body = {
        "name": name,
        "source": {
            "type": "s3",
            "path": f"s3://{LANDING_BUCKET}/{prefix}/",
            "file_pattern": "*.json",
        },
        "format": {"type": "json"},
        "destination": {"table": name},
    }
    created = api.post("/api/v1/ingestions", json=body).raise_for_status().json()
    api.delete(f"/api/v1/ingestions/{created['id']}").raise_for_status()
    return uuid.UUID(created["id"])


async def deleted_ingestion(
    sessions: async_sessionmaker[AsyncSession], ingestion_id: uuid.UUID
) -> Ingestion:
    async with sessions() as session:
        ingestion = await session.get(Ingestion, ingestion_id)
    assert ingestion is not None and ingestion.deleted_at is not None
    return ingestion


async def context_of(
    sessions: async_sessionmaker[AsyncSession], ingestion: Ingestion, status: RunStatus
) -> RunContext:
    """A new run of the ingestion, as the API records a manual one, and its RunContext."""
    now = datetime.now(UTC)
    run = Run(
        id=uuid.uuid4(),
        ingestion_id=ingestion.id,
        tenant_id=ingestion.tenant_id,
        trigger=RunTrigger.MANUAL,
        status=status,
        requested_by="bench-discovery",
        started_at=now,
        heartbeat_at=now,
    )
    async with sessions() as session, session.begin():
        session.add(run)
    spec = IngestionSpec.model_validate(ingestion.spec)
    return RunContext(run.id, ingestion.id, ingestion.tenant_id, spec, RunTrigger.MANUAL)


async def know(
    sessions: async_sessionmaker[AsyncSession],
    ingestion: Ingestion,
    known: Sequence[ListedObject],
    page_size: int,
) -> None:
    """Record `known` as landed files of a finished run, the way discovery records files."""
    if not known:
        return
    context = await context_of(sessions, ingestion, RunStatus.RUNNING)
    async with sessions() as session:
        for start in range(0, len(known), page_size):
            await record_new_files(session, context, known[start : start + page_size])
    async with sessions() as session, session.begin():
        await session.execute(
            update(FileState)
            .where(FileState.run_id == context.run_id)
            .values(status=FileStatus.SUCCESS, records=1)
        )
        await session.execute(
            update(Run)
            .where(Run.id == context.run_id)
            .values(
                status=RunStatus.SUCCESS, files_expected=len(known), finished_at=datetime.now(UTC)
            )
        )


async def forget(
    sessions: async_sessionmaker[AsyncSession], ingestion_ids: list[uuid.UUID]
) -> None:
    """Remove the file rows and runs of the (deleted) ingestions."""
    async with sessions() as session, session.begin():
        await session.execute(delete(FileState).where(FileState.ingestion_id.in_(ingestion_ids)))
        await session.execute(delete(Run).where(Run.ingestion_id.in_(ingestion_ids)))


async def leftovers(sessions: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
    """Deleted ingestions of earlier, interrupted runs of this benchmark that still have runs."""
    async with sessions() as session:
        rows = await session.scalars(
            select(Ingestion.id).where(
                Ingestion.name.startswith(NAME_PREFIX, autoescape=True),
                Ingestion.deleted_at.is_not(None),
                select(Run.id).where(Run.ingestion_id == Ingestion.id).exists(),
            )
        )
        return list(rows)


async def ingestions_covering(sessions: async_sessionmaker[AsyncSession], prefix: str) -> list[str]:
    """Ingestions (not deleted) whose source holds the prefix: they would ingest its keys."""
    where = f"s3://{LANDING_BUCKET}/{prefix}/"
    async with sessions() as session:
        rows = await session.execute(
            select(Ingestion.name, Ingestion.spec).where(Ingestion.deleted_at.is_(None))
        )
        return [name for name, spec in rows if where.startswith(spec["source"]["path"])]


# ------------------------------------------------------------------------------------ the run


def summarize(rounds: Sequence[Round], known_counts: Sequence[int], keys: int) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for known in known_counts:
        mine = [r for r in rounds if r.known == known]
        summary[str(known)] = {
            "seconds": median([r.seconds for r in mine]),
            "keys_per_second": median([r.listed / r.seconds for r in mine]),
            "round_trips": median([r.round_trips for r in mine]),
            "statements": median([r.statements for r in mine]),
            "list_requests": median([r.list_requests for r in mine]),
            "new": median([r.new for r in mine]),
        }
    print()
    for case, figures in summary.items():
        print(
            f"median, {int(case):>6,} known: {figures['seconds']:6.2f} s  "
            f"{figures['keys_per_second']:,.0f} keys/s  {figures['round_trips']:.0f} round trips  "
            f"{figures['statements']:.0f} statements  {figures['list_requests']:.0f} list requests"
        )
    trips = {summary[str(known)]["round_trips"] for known in known_counts}
    print(
        "round trips "
        + ("do not grow" if len(trips) == 1 else "CHANGE")
        + " with the known files: "
        + ", ".join(f"{summary[str(k)]['round_trips']:.0f} with {k:,} known" for k in known_counts)
    )
    slowest = max(summary[str(known)]["seconds"] for known in known_counts)
    verdict = "met" if slowest <= TARGET_SECONDS else "NOT met"
    print(f"target, {keys:,} keys in {TARGET_SECONDS:.0f} s or less: {verdict} ({slowest:.2f} s)")
    return summary


def dev_api_key() -> str:
    path = Layout.discover().state / "dev-api-key"
    if not path.exists():
        raise SystemExit(f"no development API key in {path}: run `make up`")
    return path.read_text().strip()


async def measure(args: argparse.Namespace) -> int:
    settings = DiscoverySettings()
    page_size = args.page_size or settings.page_size
    settings = settings.model_copy(update={"page_size": page_size})
    prefix = f"bench/discovery-{args.keys}"
    engine = create_engine(settings.database)
    sessions = session_factory(engine)
    if covering := await ingestions_covering(sessions, prefix):
        await engine.dispose()
        raise SystemExit(
            f"ingestions {', '.join(covering)} read s3://{LANDING_BUCKET}/{prefix}/: they would "
            "ingest the benchmark's keys; delete them or narrow their source first"
        )
    ensure_keys(s3_client(S3Settings()), prefix, args.keys, args.threads)
    cipher = CredentialCipher(settings.credentials.key)
    if stale := await leftovers(sessions):
        print(f"removing the rows of {len(stale)} ingestion(s) an interrupted run left behind")
        await forget(sessions, stale)
    trips, requests, rounds = RoundTrips(), ListRequests(), []
    trips.listen(engine)
    known_counts = sorted({args.known, 0}, reverse=True)
    created: list[uuid.UUID] = []
    headers = {"Authorization": f"Bearer {dev_api_key()}"}
    with httpx.Client(base_url=API, headers=headers, timeout=30) as api:

        async def fresh_ingestion() -> Ingestion:
            """A new ingestion for each measurement: its keys in file_state are its own."""
            created.append(create_deleted_ingestion(api, prefix))
            return await deleted_ingestion(sessions, created[-1])

        try:
            # Listed once untimed: the known keys are every other key, so every page has
            # both; this also warms the store for the first timed round.
            source = IngestionSpec.model_validate((await fresh_ingestion()).spec).source
            everything = [
                listed
                for page in list_source(source, None, settings.s3, page_size)
                for listed in page
            ]
            if len(everything) != args.keys:
                raise SystemExit(
                    f"s3://{LANDING_BUCKET}/{prefix}/ holds {len(everything):,} keys, not "
                    f"{args.keys:,}: delete its marker {prefix}.ready to upload the missing ones"
                )
            every_other = everything[::2][: args.known]
            del everything
            for number in range(1, args.repeat + 1):
                # Alternate which case goes first, so that neither always follows the other.
                for known in known_counts if number % 2 else known_counts[::-1]:
                    ingestion = await fresh_ingestion()
                    await know(sessions, ingestion, every_other[:known], page_size)
                    context = await context_of(sessions, ingestion, RunStatus.RUNNING)
                    trips.reset()
                    with requests.installed():
                        requests.count = 0
                        began = time.perf_counter()
                        found = await discover(sessions, settings, cipher, context)
                        seconds = time.perf_counter() - began
                    measured = Round(
                        number=number,
                        known=known,
                        seconds=seconds,
                        listed=found.listed,
                        new=found.new,
                        waiting_for_listing=found.waiting_for_listing,
                        recording=found.recording,
                        list_requests=requests.count,
                        pages=found.pages,
                        statements=trips.statements,
                        transactions=trips.commits + trips.rollbacks,
                        checkouts=trips.checkouts,
                        round_trips=trips.total,
                    )
                    await forget(sessions, [ingestion.id])
                    print(measured.line(), flush=True)
                    if (found.listed, found.new) != (args.keys, args.keys - known):
                        raise SystemExit(
                            f"expected {args.keys - known:,} new of {args.keys:,} listed"
                        )
                    rounds.append(measured)
        finally:
            await forget(sessions, created)
            await engine.dispose()
    summary = summarize(rounds, known_counts, args.keys)
    save(
        "discovery",
        {
            "keys": args.keys,
            "known": args.known,
            "page_size": page_size,
            "repeat": args.repeat,
            "target_seconds": TARGET_SECONDS,
            "rounds": [asdict(r) | {"per_page": r.round_trips_per_page} for r in rounds],
            "median": summary,
        },
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--keys", type=int, default=100_000, help="keys in the prefix")
    parser.add_argument("--known", type=int, default=50_000, help="keys already in file_state")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of each case")
    parser.add_argument("--page-size", type=int, default=None, help="keys a page (1 to 1000)")
    parser.add_argument("--threads", type=int, default=10, help="parallel uploads")
    args = parser.parse_args()
    if not 0 <= args.known <= args.keys // 2:
        parser.error("--known must be between 0 and half of --keys (every other key is known)")
    if args.page_size is not None and not 1 <= args.page_size <= 1000:
        parser.error("--page-size must be between 1 and 1000 (S3 lists at most 1000 a page)")
    return asyncio.run(measure(args))


if __name__ == "__main__":
    sys.exit(main())
