"""Prometheus metrics every consumer service shares: its own `/metrics` address, and the lag
of its Kafka consumer groups.

The API serves `/metrics` on its own port. Scheduler-sync, discovery and the processor serve
theirs on `AUTOLOADER_<SERVICE>_METRICS_PORT` (0 turns it off), from a thread of
prometheus_client's, so a slow scrape never holds up the event loop. docs/metrics.md lists
every metric.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge, start_http_server

from shared.periodic import every

log = logging.getLogger(__name__)

LAG_INTERVAL_SECONDS = 15.0

CONSUMER_LAG = Gauge(
    "autoloader_kafka_consumer_lag",
    "Messages of a partition that the consumer group has not committed yet",
    ["group", "topic", "partition"],
)


def serve_metrics(host: str, port: int) -> Callable[[], None]:
    """Serve the process's metrics at http://host:port/metrics; return what stops it."""
    if port == 0:
        return lambda: None
    try:
        server, thread = start_http_server(port, host)
    except OSError as error:
        raise RuntimeError(
            f"cannot serve metrics at {host}:{port} ({error.strerror}): set the service's "
            "METRICS_PORT (docs/metrics.md) to a free port, or to 0 for none"
        ) from error
    log.info("metrics at http://%s:%d/metrics", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop


class LagReporter:
    """Sets CONSUMER_LAG for some consumer groups: each partition's end offset minus the
    group's committed offset, for every partition the group has committed to."""

    def __init__(self, bootstrap: str, groups: Sequence[str]) -> None:
        self.groups = tuple(groups)
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        self.offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.started = False

    async def report(self) -> None:
        if not self.started:
            await asyncio.gather(self.admin.start(), self.offsets.start())
            self.started = True
        for group in self.groups:
            committed = await self.admin.list_consumer_group_offsets(group)
            ends = await self.offsets.end_offsets(list(committed))
            for partition, meta in committed.items():
                self._set(group, partition, ends[partition] - meta.offset)

    @staticmethod
    def _set(group: str, partition: TopicPartition, lag: int) -> None:
        labels = (group, partition.topic, str(partition.partition))
        CONSUMER_LAG.labels(*labels).set(max(lag, 0))

    async def run(self, stop: asyncio.Event) -> None:
        """Report every LAG_INTERVAL_SECONDS until ``stop`` is set."""
        try:
            await every(LAG_INTERVAL_SECONDS, stop, self.report, "consumer lag report")
        finally:
            if self.started:
                await asyncio.gather(self.admin.close(), self.offsets.stop())
