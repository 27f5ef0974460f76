"""The FastStream application of scheduler-sync (ingestion events into Prefect, upstream
commands into runs): wiring only, built from settings."""

from __future__ import annotations

import logging

from faststream import AckPolicy, FastStream
from faststream.kafka import KafkaBroker, KafkaMessage

from autoloader_sync.commands import CommandHandler
from autoloader_sync.handler import EventHandler
from autoloader_sync.prefect_gateway import PrefectGateway
from autoloader_sync.settings import SyncSettings
from autoloader_sync.sync import Syncer
from shared.consumers import DeadLetters, raw_body
from shared.db import create_engine, session_factory
from shared.topics import COMMANDS, INGESTION_EVENTS


def build_syncer(settings: SyncSettings) -> Syncer:
    gateway = PrefectGateway(
        settings.prefect.api_url, settings.flow.work_pool, settings.flow.entrypoint
    )
    sessions = session_factory(create_engine(settings.database))
    return Syncer(
        sessions=sessions,
        prefect=gateway,
        flow=settings.flow,
        flow_run_command=settings.flow_run_command or None,
    )


def broker_factory(settings: SyncSettings, syncer: Syncer) -> KafkaBroker:
    # FastStream's own line per consumed message goes to DEBUG; the handler logs what it did.
    broker = KafkaBroker(
        settings.kafka.bootstrap_servers,
        logger=logging.getLogger("autoloader_sync.kafka"),
        log_level=logging.DEBUG,
    )
    handler = EventHandler(
        syncer,
        DeadLetters(broker, INGESTION_EVENTS.name, settings.group_id).send,
        retry_initial_seconds=settings.retry_initial_seconds,
        retry_max_seconds=settings.retry_max_seconds,
    )

    @broker.subscriber(
        INGESTION_EVENTS.name,
        decoder=raw_body,
        group_id=settings.group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        max_poll_interval_ms=3_600_000,
    )
    async def on_ingestion_event(body: bytes, message: KafkaMessage) -> None:
        await handler.handle(body, message.raw_message.key)  # type: ignore[union-attr]

    _subscribe_commands(broker, settings, syncer)
    return broker


def commands_group(settings: SyncSettings) -> str:
    """The consumer group of upstream commands."""
    return f"{settings.group_id}-commands"


def _subscribe_commands(broker: KafkaBroker, settings: SyncSettings, syncer: Syncer) -> None:
    """Upstream commands, signed by their tenants, become runs (and their events), in a
    consumer group of their own."""
    group = commands_group(settings)
    commands = CommandHandler(
        syncer.sessions,
        DeadLetters(broker, COMMANDS.name, group),
        signing_secret=settings.commands.signing_secret,
        max_age_seconds=settings.command_max_age_seconds,
    )

    @broker.subscriber(
        COMMANDS.name,
        decoder=raw_body,
        group_id=group,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
        max_poll_interval_ms=3_600_000,
    )
    async def on_command(body: bytes, message: KafkaMessage) -> None:
        record = message.raw_message
        await commands.handle(body, record.key, record.headers)  # type: ignore[union-attr]


def application_factory(settings: SyncSettings) -> FastStream:
    syncer = build_syncer(settings)
    return FastStream(broker_factory(settings, syncer))
