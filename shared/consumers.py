"""What every Kafka consumer of Autoloader does the same way.

- A message it cannot parse or apply goes to `autoloader.dlq` with the reason, the topic it
  came from and the consumer group in its headers, and the consumer carries on.
- While a dependency is unreachable (the database, Kafka, Prefect) the consumer retries with
  backoff and does not return, so the offset is not committed and nothing behind the message
  in its partition is skipped.
- A consumer that takes its messages in batches (`batch=True`) gets them as `Received`
  (`batch_of`), and rejects a bad one alone: its neighbours in the batch are still applied.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage
from prometheus_client import Counter
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential

from shared.topics import DLQ

log = logging.getLogger(__name__)
T = TypeVar("T")


async def raw_body(message: StreamMessage[Any]) -> bytes | list[bytes]:
    """A subscriber's decoder that hands its handler the bytes as sent (a batch subscriber's,
    the list of them): the handler validates them itself and dead-letters what does not
    parse, instead of FastStream failing before the handler runs."""
    return message.body


@dataclass(frozen=True)
class Received:
    """One Kafka message as it was sent: its bytes and its key."""

    value: bytes
    key: bytes | None = None


def batch_of(bodies: Sequence[bytes], message: StreamMessage[Any]) -> list[Received]:
    """The messages of one delivery to a batch subscriber (decoded with `raw_body`), in the
    order consumed: offset order within each partition, so one key's messages stay in order."""
    raw = message.raw_message
    records = raw if isinstance(raw, tuple | list) else (raw,)
    return [Received(body, record.key) for body, record in zip(bodies, records, strict=True)]


DEAD_LETTERS = Counter(
    "autoloader_dead_letters_total",
    "Messages (and files failed for good) sent to the DLQ, by consumer group and source topic",
    ["consumer", "source_topic"],
)


@dataclass(frozen=True)
class DeadLetters:
    """Sends one consumer's rejects to the DLQ."""

    broker: KafkaBroker
    source_topic: str
    consumer: str

    async def send(self, raw: bytes, key: bytes | None, reason: str) -> None:
        log.error("dead-lettering a message of %s: %s", self.source_topic, reason[:500])
        DEAD_LETTERS.labels(self.consumer, self.source_topic).inc()
        await self.broker.publish(
            raw,
            topic=DLQ.name,
            key=key,
            headers={
                "reason": reason[:4000],
                "source_topic": self.source_topic,
                "consumer": self.consumer,
            },
        )


# SQLSTATEs of a database that is away or restarting, whatever the driver wraps them in:
# connection exceptions (class 08), shutting down or starting up (57P01-57P03), too many
# connections (53300).
TRANSIENT_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def is_transient(error: BaseException) -> bool:
    """Failures that pass when the database or Kafka comes back."""
    if isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    if isinstance(error, KafkaConnectionError | KafkaTimeoutError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return bool(error.connection_invalidated) or sqlstate.startswith(TRANSIENT_SQLSTATES)


async def retrying(
    action: Callable[[], Awaitable[T]],
    what: str,
    transient: Callable[[BaseException], bool] = is_transient,
    initial_seconds: float = 1.0,
    max_seconds: float = 60.0,
) -> T:
    """Await action until it succeeds or fails for a reason that is not transient, waiting
    ``initial_seconds`` after the first failure and twice as long after each next one, up to
    ``max_seconds``."""

    def warn(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: %s: %s; retrying in %.0fs", what, type(error).__name__, error, wait)

    retryer = AsyncRetrying(
        retry=retry_if_exception(transient),
        wait=wait_exponential(multiplier=initial_seconds, max=max_seconds),
        before_sleep=warn,
        reraise=True,
    )

    async def attempt() -> T:  # a coroutine function: tenacity calls others synchronously
        return await action()

    return await retryer(attempt)
