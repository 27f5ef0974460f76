"""`autoloader status INGESTION`: how an ingestion is doing, as `GET /api/v1/ingestions/{id}/
status` answers: pending and claimed files, the oldest pending file, the last commit, the last
error, the current run and the sync with Prefect. With --watch it follows the current run with
a progress bar until the run ends, then prints the status again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import create_engine, session_factory
from shared.models import Ingestion
from shared.runs import UNFINISHED
from shared.settings import DatabaseSettings
from shared.status import IngestionStatusReport, ingestion_status

POLL_SECONDS = 1.0


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser(
        "status",
        help="an ingestion's backlog, last commit, last error and current run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("ingestion", type=uuid.UUID, help="ingestion id")
    status.add_argument("--json", action="store_true", help="print the API's JSON answer")
    status.add_argument("--watch", action="store_true", help="follow the current run until it ends")
    status.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    return asyncio.run(_status(args.ingestion, args.json, args.watch))


async def _status(ingestion_id: uuid.UUID, as_json: bool, watch: bool) -> int:
    engine = create_engine(DatabaseSettings())
    sessions = session_factory(engine)
    try:
        report = await _report(sessions, ingestion_id)
        if report is None:
            print(f"ingestion {ingestion_id} not found", file=sys.stderr)
            return 1
        if watch and report.current_run is not None:
            await _follow(sessions, report)
            report = await _report(sessions, ingestion_id)
            assert report is not None, "the ingestion was there a moment ago"
        print(report.model_dump_json(indent=2) if as_json else render(report))
        return 0
    finally:
        await engine.dispose()


async def _report(
    sessions: async_sessionmaker[AsyncSession], ingestion_id: uuid.UUID
) -> IngestionStatusReport | None:
    async with sessions() as session:
        ingestion = await session.get(Ingestion, ingestion_id)
        if ingestion is None or ingestion.deleted_at is not None:
            return None
        return await ingestion_status(session, ingestion)


async def _follow(
    sessions: async_sessionmaker[AsyncSession], report: IngestionStatusReport
) -> None:
    """A progress bar of the current run's files, until the run is no longer unfinished."""
    assert report.current_run is not None
    run_id = report.current_run.id
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    # On stderr, so that stdout holds the status alone (--json stays parseable).
    console = Console(stderr=True)
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task(f"run {run_id}", total=None)
        while (run := report.current_run) is not None and run.id == run_id:
            description = f"run {run_id} {run.status}: {run.records} records"
            progress.update(
                task, description=description, total=run.files_expected, completed=run.files_done
            )
            if run.status not in UNFINISHED:
                break
            await asyncio.sleep(POLL_SECONDS)
            fresh = await _report(sessions, report.ingestion_id)
            if fresh is None:
                break
            report = fresh


def render(report: IngestionStatusReport) -> str:
    lines = [f"ingestion {report.name} ({report.ingestion_id}): {report.state}"]
    pending, claimed = report.pending, report.claimed
    lines.append(f"  pending      {pending.files} files, {pending.bytes} bytes")
    if report.oldest_pending:
        oldest = report.oldest_pending
        lines.append(f"  oldest       {oldest.age_seconds:.0f}s waiting: {oldest.path}")
    lines.append(f"  claimed      {claimed.files} files, {claimed.bytes} bytes")
    if commit := report.last_commit:
        into = f" in {commit.table}" if commit.table else ""
        lines.append(f"  last commit  {commit.at.isoformat()}: snapshot {commit.snapshot_id}{into}")
    else:
        lines.append("  last commit  none yet")
    if error := report.last_error:
        retry = "failed for good" if error.status == "FAILED" else "will be tried again"
        lines.append(
            f"  last error   {error.path} (attempt {error.attempts}, {retry}): {error.error}"
        )
    if run := report.current_run:
        expected = "?" if run.files_expected is None else str(run.files_expected)
        lines.append(
            f"  current run  {run.id} {run.status} ({run.trigger}): {run.files_done}/{expected}"
            f" files, {run.records} records"
        )
    else:
        lines.append("  current run  none")
    sync = report.sync
    lines.append(f"  prefect      {sync.status}" + (f": {sync.error}" if sync.error else ""))
    return "\n".join(lines)
