"""The composition root: everything the API process builds once from its settings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from autoloader_api.relay import OutboxRelay, kafka_producer_factory, wake_after_outbox_commits
from autoloader_api.settings import ApiSettings
from shared.crypto import CredentialCipher
from shared.db import create_engine, session_factory


@dataclass
class Container:
    settings: ApiSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cipher: CredentialCipher
    relay: OutboxRelay
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    def build(cls, settings: ApiSettings) -> Container:
        engine = create_engine(settings.database)
        sessions = session_factory(engine)
        relay = OutboxRelay(
            sessions, kafka_producer_factory(settings.kafka.bootstrap_servers), settings.relay
        )
        # The API's commits wake the relay, so an event leaves without waiting for a poll.
        wake_after_outbox_commits(sessions, relay.wake)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            cipher=CredentialCipher(settings.credentials.key),
            relay=relay,
        )
