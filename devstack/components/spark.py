"""Spark Connect server from PyPI pyspark, with Iceberg over a JDBC catalog and S3A.

`spark_catalog` itself is an Iceberg catalog whose metadata lives in PostgreSQL
(database `iceberg_catalog`) and whose data lives in the S3 store's `warehouse` bucket, so
`spark_catalog.default.some_table` is an Iceberg table.

The service's own S3 keys are set for the warehouse bucket alone (S3A per-bucket options,
`fs.s3a.bucket.warehouse.*`). Any other bucket is read anonymously unless the read brings
credentials of its own, as the processor's reads of a source do: a source is never read with
the service's keys (docs/storage-access.md).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from devstack import jars, proc
from devstack.component import Component
from devstack.layout import (
    DB_PASSWORD,
    DB_USER,
    S3_ACCESS_KEY,
    S3_REGION,
    S3_SECRET_KEY,
    SPARK_JARS_VERSION,
    java_home,
)

CONNECT_SERVER = "org.apache.spark.sql.connect.service.SparkConnectServer"
S3A = "org.apache.hadoop.fs.s3a."
WAREHOUSE = "warehouse"
# A read's credentials as Spark Connect shows its plan (`key: "fs.s3a.secret.key"` then
# `value: "..."`) in its UI and logs: Spark replaces each match with "*********(redacted)".
REDACTED_OPTIONS = (
    r"(?i)fs\.s3a\.(access\.key|secret\.key|session\.token)"
    r'"\s*value:\s*"(\\"|[^"])*"'
)


# Spark's default profile (org/apache/spark/log4j2-defaults.properties), with the loggers that
# write lines per job, task or cached block, or a request's whole plan, at WARN: they made up
# most of the server's log, which grew with every request.
QUIET_LOGGERS = (
    "org.apache.spark.scheduler",  # DAGScheduler, TaskSchedulerImpl, TaskSetManager
    "org.apache.spark.storage",  # MemoryStore, BlockManagerInfo, ShuffleBlockFetcherIterator
    "org.apache.spark.executor.Executor",
    "org.apache.spark.SparkContext",
    "org.apache.spark.sql.catalyst.expressions.codegen.CodeGenerator",
    "org.apache.spark.sql.connect.execution",  # ExecuteGrpcResponseSender, ...Observer
    "org.apache.spark.sql.connect.service.SessionHolder",
    "org.apache.spark.sql.connect.service.SparkConnectExecutionManager",
)


def log4j2_properties() -> str:
    lines = [
        "rootLogger.level = info",
        "rootLogger.appenderRef.stdout.ref = console",
        "appender.console.type = Console",
        "appender.console.name = console",
        "appender.console.target = SYSTEM_ERR",
        "appender.console.layout.type = PatternLayout",
        "appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex",
    ]
    for number, logger in enumerate(QUIET_LOGGERS):
        lines += [f"logger.quiet{number}.name = {logger}", f"logger.quiet{number}.level = warn"]
    return "\n".join(lines) + "\n"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


class SparkConnect(Component):
    name = "spark-connect"
    start_timeout = 180.0

    @property
    def address(self) -> str:
        return self.addresses.spark_remote

    def install(self) -> None:
        jars.fetch(self.layout, "spark", SPARK_JARS_VERSION)

    def conf(self) -> dict[str, str]:
        a = self.addresses
        extra = jars.fetch(self.layout, "spark", SPARK_JARS_VERSION)
        catalog = "spark.sql.catalog.spark_catalog"
        return {
            "spark.connect.grpc.binding.address": a.host,
            "spark.connect.grpc.binding.port": str(a.spark_connect_port),
            "spark.driver.extraClassPath": f"{extra}/*",
            "spark.driver.bindAddress": a.host,
            "spark.driver.host": a.host,
            "spark.ui.port": str(a.spark_ui_port),
            "spark.sql.catalogImplementation": "in-memory",
            "spark.sql.shuffle.partitions": "4",
            # Compiled code is cached by its text; the default 100 entries let a run's queries
            # evict each other's, and a run's first batches compiled their stages again
            # (Janino, then the JIT). See docs/performance.md.
            "spark.sql.codegen.cache.maxEntries": "1000",
            "spark.sql.extensions": (
                "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions"
            ),
            catalog: "org.apache.iceberg.spark.SparkCatalog",
            f"{catalog}.type": "jdbc",
            f"{catalog}.uri": a.catalog_jdbc_url,
            f"{catalog}.jdbc.user": DB_USER,
            f"{catalog}.jdbc.password": DB_PASSWORD,
            f"{catalog}.jdbc.schema-version": "V1",
            # Each Spark Connect session has its own catalog; a cached table would hide other
            # sessions' commits, and the processor's replay check must see every commit.
            f"{catalog}.cache-enabled": "false",
            f"{catalog}.warehouse": "s3a://warehouse/",
            "spark.hadoop.fs.s3a.endpoint": a.s3_endpoint,
            "spark.hadoop.fs.s3a.endpoint.region": S3_REGION,
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
            "spark.hadoop.fs.s3a.aws.credentials.provider": S3A + "AnonymousAWSCredentialsProvider",
            f"spark.hadoop.fs.s3a.bucket.{WAREHOUSE}.access.key": S3_ACCESS_KEY,
            f"spark.hadoop.fs.s3a.bucket.{WAREHOUSE}.secret.key": S3_SECRET_KEY,
            f"spark.hadoop.fs.s3a.bucket.{WAREHOUSE}.aws.credentials.provider": (
                S3A + "SimpleAWSCredentialsProvider"
            ),
            "spark.sql.redaction.string.regex": REDACTED_OPTIONS,
        }

    def start(self) -> int:
        home = spark_home()
        workdir = self.layout.data / "spark"
        workdir.mkdir(parents=True, exist_ok=True)
        log_config = workdir / "log4j2.properties"
        log_config.write_text(log4j2_properties())
        argv = [
            str(home / "bin" / "spark-submit"),
            "--class",
            CONNECT_SERVER,
            "--name",
            "autoloader-spark-connect",
            "--master",
            "local[*]",
            "--driver-memory",
            os.environ.get("AUTOLOADER_SPARK_DRIVER_MEMORY", "4g"),
            "--driver-java-options",
            f"-Dlog4j2.configurationFile=file:{log_config}",
        ]
        for key, value in self.conf().items():
            argv += ["--conf", f"{key}={value}"]
        argv.append("spark-internal")
        env = {"SPARK_HOME": str(home), "JAVA_HOME": str(java_home())}
        return proc.spawn(self.layout, self.name, argv, env=env, cwd=workdir)

    def session(self) -> Any:
        """A session that gives up within seconds: the client's default is ten minutes of
        retries, which would hang a health check against a server that is going away."""
        from pyspark.sql import SparkSession
        from pyspark.sql.connect.client.retries import DefaultPolicy

        spark = SparkSession.builder.remote(self.address).create()
        spark.client.set_retry_policies([DefaultPolicy(max_retries=3, max_backoff=1000)])
        spark.client.disable_reattachable_execute()  # see tests/conftest.py::spark
        return spark

    def stop(self) -> bool:
        """Stop the server and wait, up to a minute, until its port is free again."""
        stopped = super().stop()
        deadline = time.monotonic() + 60
        while proc.port_open(self.addresses.host, self.addresses.spark_connect_port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} still listens a minute after it was stopped")
            time.sleep(0.2)
        return stopped

    def healthy(self) -> bool:
        if not proc.port_open(self.addresses.host, self.addresses.spark_connect_port):
            return False
        try:
            spark = self.session()
            try:
                return bool(spark.sql("SELECT 1 AS ok").collect()[0]["ok"] == 1)
            finally:
                spark.stop()
        except Exception:
            return False

    def prepare(self) -> None:
        spark = self.session()
        try:
            spark.sql("CREATE NAMESPACE IF NOT EXISTS spark_catalog.default")
            self._warm_up(spark)
        finally:
            spark.stop()

    @staticmethod
    def _warm_up(spark: Any) -> None:
        """Create, append to and drop a scratch Iceberg table: a fresh JVM loads and compiles
        the write path on its first commit (about 6s here), which would otherwise land on the
        first batch ingested."""
        table = "spark_catalog.default.autoloader_warm_up"
        spark.sql(f"DROP TABLE IF EXISTS {table} PURGE")
        frame = spark.range(10).selectExpr("id", "to_json(named_struct('id', id)) AS value")
        frame.writeTo(table).using("iceberg").create()
        frame.writeTo(table).append()
        spark.sql(f"DROP TABLE {table} PURGE")
