"""The probes: /livez checks nothing, /readyz checks the database only and answers one word,
and the details at /admin/health are status words behind the admin token."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from autoloader_api.app import create_app
from autoloader_api.settings import ApiSettings, RelaySettings
from shared.preflight import KafkaProbe
from shared.settings import DatabaseSettings, KafkaSettings

pytestmark = pytest.mark.integration

ADMIN_TOKEN = f"admin-{uuid.uuid4().hex}"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NOTHING_LISTENS = "127.0.0.1:1"

AppClient = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Any]]]


@pytest.fixture
def app_client(api_settings: ApiSettings) -> AppClient:
    """An app built from the tests' settings with some of them replaced, with the admin token
    and without a relay; yields its client and the app."""

    @asynccontextmanager
    async def build(**update: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
        settings = api_settings.model_copy(
            update={
                "admin_token": SecretStr(ADMIN_TOKEN),
                "relay": RelaySettings(enabled=False),
                **update,
            }
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield client, app

    return build


def database_urls(settings: DatabaseSettings) -> dict[str, str]:
    url = make_url(settings.url.get_secret_value())
    return {
        "no such database": url.set(database=f"missing_{uuid.uuid4().hex[:8]}").render_as_string(
            hide_password=False
        ),
        "wrong password": url.set(password="not-the-password").render_as_string(
            hide_password=False
        ),
        "nothing listening": url.set(host="127.0.0.1", port=1).render_as_string(
            hide_password=False
        ),
    }


async def test_livez_readyz_and_the_old_health_path(client: httpx.AsyncClient) -> None:
    livez, health, readyz = [await client.get(path) for path in ("/livez", "/health", "/readyz")]
    assert (livez.status_code, livez.json()) == (200, {"status": "alive"})
    assert (health.status_code, health.json()) == (200, {"status": "alive"})
    assert (readyz.status_code, readyz.json()) == (200, {"status": "ready"})


@pytest.mark.parametrize("case", ["no such database", "wrong password", "nothing listening"])
async def test_readyz_is_503_with_one_word_when_the_database_fails(
    app_client: AppClient, api_settings: ApiSettings, case: str
) -> None:
    url = database_urls(api_settings.database)[case]
    database = DatabaseSettings(url=SecretStr(url))
    async with app_client(database=database) as (client, _):
        readyz = await client.get("/readyz")
        livez = await client.get("/livez")
        details = await client.get("/admin/health", headers=ADMIN)

    assert readyz.status_code == 503
    # Exactly this: no driver message, host, user or database name.
    assert readyz.json() == {"status": "unready", "database": "unreachable"}
    assert (livez.status_code, livez.json()) == (200, {"status": "alive"})
    assert details.status_code == 503
    assert details.json()["database"] == "unreachable"
    assert details.json()["outbox_oldest_unsent_seconds"] is None
    assert str(make_url(url).database) not in details.text and "password" not in details.text


async def test_kafka_unreachable_leaves_readyz_ready_and_shows_in_admin_health(
    app_client: AppClient,
) -> None:
    async with app_client(kafka=KafkaSettings(bootstrap_servers=NOTHING_LISTENS)) as (client, _):
        readyz = await client.get("/readyz")
        livez = await client.get("/livez")
        details = await client.get("/admin/health", headers=ADMIN)

    assert (readyz.status_code, readyz.json()) == (200, {"status": "ready"})
    assert livez.status_code == 200
    assert details.status_code == 503
    body = details.json()
    assert set(body) == {"status", "database", "kafka", "outbox_oldest_unsent_seconds"}
    assert (body["status"], body["database"], body["kafka"]) == ("degraded", "ok", "unreachable")
    assert NOTHING_LISTENS not in details.text and "Error" not in details.text


async def test_admin_health_is_ok_and_keeps_one_kafka_client(app_client: AppClient) -> None:
    async with app_client() as (client, app):
        probe: KafkaProbe = app.state.kafka_probe
        probe.ttl = 0  # ask Kafka on every call, to see which client each call uses
        answers, clients = [], []
        for _ in range(3):
            answers.append(await client.get("/admin/health", headers=ADMIN))
            clients.append(probe.admin)

    for answer in answers:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["status"], body["database"], body["kafka"]) == ("ok", "ok", "ok")
        age = body["outbox_oldest_unsent_seconds"]
        assert age is None or age >= 0
    assert clients[0] is not None and all(c is clients[0] for c in clients)
