"""`autoloader backfill`: ask for a backfill run and follow its progress until it ends.

It records the run exactly as `POST /api/v1/ingestions/{id}/backfill` does (run row plus
BackfillRequested in one commit); scheduler-sync then starts the flow run that queues the
window's files again from `file_state`, and the processor pool lands them.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import uuid
from datetime import datetime

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import create_engine, session_factory
from shared.models import Ingestion, Run, RunStatus, RunTrigger
from shared.repositories import RunRepository
from shared.settings import DatabaseSettings
from shared.spec import BackfillSpec
from shared.tenancy import Forbidden
from shared.triggers import Conflict, NotFound, trigger_run
from shared.uow import UnitOfWork

FINAL = (RunStatus.SUCCESS, RunStatus.PARTIAL, RunStatus.FAILED)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="queue an ingestion's files of a time window again",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    backfill.add_argument("--ingestion", required=True, type=uuid.UUID, help="ingestion id")
    backfill.add_argument(
        "--since", required=True, help="ISO 8601 with a zone, e.g. 2026-11-01T00:00Z"
    )
    backfill.add_argument("--until", help="ISO 8601 with a zone; default: now")
    backfill.add_argument("--reprocess", action="store_true", help="ingest ingested files again")
    backfill.add_argument("--target-table", help="with --reprocess: write to this table instead")
    backfill.add_argument("--no-wait", action="store_true", help="print the run id and return")
    backfill.add_argument("--timeout", type=float, default=3600.0, help="seconds to follow the run")
    backfill.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    try:
        spec = BackfillSpec(
            since=_instant(args.since),
            until=_instant(args.until) if args.until else None,
            reprocess=args.reprocess,
            target_table=args.target_table,
        )
    except (ValueError, ValidationError) as error:
        print(f"invalid backfill: {error}", file=sys.stderr)
        return 2
    return asyncio.run(_backfill(args, spec))


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def _backfill(args: argparse.Namespace, spec: BackfillSpec) -> int:
    engine = create_engine(DatabaseSettings())
    sessions = session_factory(engine)
    try:
        try:
            run_id = await _request(sessions, args.ingestion, spec)
        except (NotFound, Conflict, Forbidden) as error:
            print(f"backfill refused: {error}", file=sys.stderr)
            return 1
        print(f"backfill run {run_id} queued", flush=True)
        if args.no_wait:
            return 0
        try:
            async with asyncio.timeout(args.timeout):
                return await _follow(sessions, run_id)
        except TimeoutError:
            print(f"still running after {args.timeout:.0f}s; see GET /api/v1/runs/{run_id}")
            return 3
    finally:
        await engine.dispose()


async def _request(
    sessions: async_sessionmaker[AsyncSession], ingestion_id: uuid.UUID, spec: BackfillSpec
) -> uuid.UUID:
    async with UnitOfWork(sessions) as uow:
        tenant_id = await uow.session.scalar(
            select(Ingestion.tenant_id).where(
                Ingestion.id == ingestion_id, Ingestion.deleted_at.is_(None)
            )
        )
        if tenant_id is None:
            raise NotFound(f"ingestion {ingestion_id} not found")
        run = await trigger_run(
            uow,
            tenant_id,
            ingestion_id,
            trigger=RunTrigger.BACKFILL,
            requested_by=f"cli:{getpass.getuser()}",
            backfill=spec,
        )
        return run.id


async def _follow(sessions: async_sessionmaker[AsyncSession], run_id: uuid.UUID) -> int:
    """Print the run's progress whenever it changes; 0 when it succeeds."""
    shown = ""
    while True:
        async with sessions() as session:
            run = await session.get(Run, run_id)
            counts = await RunRepository(session).file_counts(run_id)
        assert run is not None
        line = f"  {run.status:<8} backfill {run.progress or {}} files {counts}"
        if line != shown:
            print(line, flush=True)
            shown = line
        if run.status in FINAL:
            print(
                f"backfill run {run_id}: {run.status}, {run.records} records"
                + (f", {run.error}" if run.error else "")
            )
            return 0 if run.status == RunStatus.SUCCESS else 1
        await asyncio.sleep(2)
