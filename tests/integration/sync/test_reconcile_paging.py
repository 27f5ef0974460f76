"""Reconcile sees every deployment Autoloader manages, not only Prefect's first page of 200.

The test adds more than a page of orphaned `ingestion-*` deployments (no ingestion behind
them) to the stack's Prefect server, one of them named to sort after every other, and runs
reconcile against the stack's database: every one of them must be found, and deleted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags
from prefect.exceptions import ObjectNotFound

from autoloader_sync.consumer import build_syncer
from autoloader_sync.prefect_gateway import FLOW_NAME, PAGE_SIZE, TAG
from autoloader_sync.reconcile import reconcile
from autoloader_sync.settings import SyncSettings
from shared.settings import PrefectSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ORPHANS = PAGE_SIZE + 5


async def tagged(client: PrefectClient, tag: str) -> list[str]:
    names: list[str] = []
    while page := await client.read_deployments(
        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[tag])),
        limit=PAGE_SIZE,
        offset=len(names),
    ):
        names += [deployment.name for deployment in page]
    return names


@pytest.fixture
async def orphans(prefect_settings: PrefectSettings, unique: str) -> AsyncIterator[list[str]]:
    """More than a page of orphaned deployments, the last by name sorting after all others;
    whatever reconcile leaves is deleted afterwards."""
    test_tag = f"reconcile-paging:{unique}"
    names = [f"ingestion-{uuid.uuid4()}" for _ in range(ORPHANS - 1)]
    names.append(f"ingestion-zzzz-{unique}")
    limit = asyncio.Semaphore(8)
    async with PrefectClient(prefect_settings.api_url) as client:
        flow_id = await client.create_flow_from_name(FLOW_NAME)

        async def create(name: str) -> None:
            async with limit:
                await client.create_deployment(
                    flow_id=flow_id, name=name, tags=[TAG, test_tag], paused=True
                )

        try:
            await asyncio.gather(*(create(name) for name in names))
            yield names
        finally:
            for name in await tagged(client, test_tag):
                try:
                    found = await client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
                    await client.delete_deployment(found.id)
                except ObjectNotFound:
                    pass


async def test_reconcile_finds_and_deletes_orphans_past_the_first_page(
    stack_env: dict[str, str], prefect_settings: PrefectSettings, orphans: list[str]
) -> None:
    syncer = build_syncer(SyncSettings())

    planned = await reconcile(syncer, dry_run=True)
    assert set(orphans) <= set(planned.deleted), (
        f"{len(set(orphans) - set(planned.deleted))} of {len(orphans)} orphans not seen"
    )

    await reconcile(syncer)
    async with PrefectClient(prefect_settings.api_url) as client:
        with pytest.raises(ObjectNotFound):
            await client.read_deployment_by_name(f"{FLOW_NAME}/{orphans[-1]}")
        left = set(await tagged(client, TAG)) & set(orphans)
    assert not left, f"{len(left)} orphans were left"
