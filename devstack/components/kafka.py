"""Apache Kafka in KRaft mode, single node, from the Kafka jars on Maven Central."""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path

from devstack import jars, proc
from devstack.component import Component
from devstack.layout import KAFKA_VERSION, java_home
from shared.kafka_admin import ensure_topics
from shared.topics import ALL_TOPICS, SEAWEEDFS_FILER

LOG4J = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
"""


class Kafka(Component):
    name = "kafka"
    start_timeout = 90.0

    @property
    def address(self) -> str:
        return self.addresses.kafka_bootstrap

    @property
    def home(self) -> Path:
        return self.layout.data / "kafka"

    def install(self) -> None:
        jars.fetch(self.layout, "kafka", KAFKA_VERSION)

    def healthy(self) -> bool:
        if not proc.port_open(self.addresses.host, self.addresses.kafka_port):
            return False
        try:
            asyncio.run(asyncio.wait_for(self._list_topics(), timeout=10))
        except Exception:
            return False
        return True

    async def _list_topics(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.address, request_timeout_ms=5_000)
        await admin.start()
        try:
            await admin.list_topics()
        finally:
            await admin.close()

    def start(self) -> int:
        config = self._write_config()
        classpath = f"{jars.fetch(self.layout, 'kafka', KAFKA_VERSION)}/*"
        if not (self.home / "log" / "meta.properties").exists():
            proc.run(
                [
                    *self._java(classpath),
                    "kafka.tools.StorageTool",
                    "format",
                    # One argument: an id may start with "-", which argparse takes for a flag.
                    f"--cluster-id={_cluster_id()}",
                    "-c",
                    str(config),
                ],
                "formatting Kafka's KRaft storage",
            )
        return proc.spawn(
            self.layout, self.name, [*self._java(classpath), "kafka.Kafka", str(config)]
        )

    def _java(self, classpath: str) -> list[str]:
        return [
            str(java_home() / "bin" / "java"),
            "-Xms256m",
            "-Xmx1g",
            f"-Dlog4j.configuration=file:{self.home / 'log4j.properties'}",
            "-cp",
            classpath,
        ]

    def prepare(self) -> None:
        asyncio.run(ensure_topics(self.address, (*ALL_TOPICS, SEAWEEDFS_FILER)))

    def _write_config(self) -> Path:
        a = self.addresses
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j.properties").write_text(LOG4J)
        config = self.home / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{a.host}:{a.kafka_controller_port}",
                    f"listeners=PLAINTEXT://{a.host}:{a.kafka_port},"
                    f"CONTROLLER://{a.host}:{a.kafka_controller_port}",
                    f"advertised.listeners=PLAINTEXT://{a.host}:{a.kafka_port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.home / 'log'}",
                    "num.partitions=6",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=12",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=-1",
                    "",
                ]
            )
        )
        return config


def _cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
