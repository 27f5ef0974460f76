"""Reading a batch of files with Spark Connect and appending it to Iceberg in one commit.

Each commit carries the batch id in its snapshot summary (`autoloader.batch-id`). Before it
writes, the writer looks for that batch in the table's snapshots, so a batch whose commit
landed but whose files were never marked (the process died in between) is not written twice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from autoloader_processor import json_lines
from shared.spec import FormatSpec, IngestionSpec

BATCH_PROPERTY = "autoloader.batch-id"
SOURCE_FILE = "_source_file"
INGESTED_AT = "_ingested_at"


def spark_path(path: str) -> str:
    """Spark reads S3 through the s3a filesystem."""
    return "s3a://" + path.removeprefix("s3://") if path.startswith("s3://") else path


def file_key(path: str) -> str:
    """One spelling for a file whether file state (s3://, file:///) or Spark (s3a://, file:/)
    wrote it."""
    parsed = urlparse(path)
    if parsed.scheme in ("s3", "s3a"):
        return f"s3://{parsed.netloc}{unquote(parsed.path)}"
    return f"file://{unquote(parsed.path)}"


@dataclass
class BatchOutcome:
    records: dict[str, int] = field(default_factory=dict)  # by file path, as recorded
    failed: dict[str, str] = field(default_factory=dict)  # path -> error
    already_committed: bool = False


def _reader(spark: SparkSession, fmt: FormatSpec) -> Any:
    reader = spark.read.format(fmt.type)
    if fmt.type == "json":
        reader = reader.option("multiLine", fmt.multiline).option("mode", "PERMISSIVE")
        reader = reader.option("columnNameOfCorruptRecord", fmt.schema_.rescued_data_column)
    elif fmt.type == "csv":
        reader = reader.option("header", fmt.header).option("sep", fmt.delimiter)
        reader = reader.option("inferSchema", True).option("mode", "PERMISSIVE")
        reader = reader.option("columnNameOfCorruptRecord", fmt.schema_.rescued_data_column)
    if fmt.compression == "gzip":
        reader = reader.option("compression", "gzip")
    return reader


class IcebergWriter:
    def __init__(self, spark: SparkSession, before_commit: Callable[[], None] = lambda: None):
        self.spark = spark
        self.before_commit = before_commit

    def committed(self, table: str, batch_id: str) -> bool:
        if not self.spark.catalog.tableExists(table):
            return False
        found = self.spark.sql(
            f"SELECT 1 FROM {table}.snapshots WHERE summary['{BATCH_PROPERTY}'] = '{batch_id}'"
        ).limit(1)
        return bool(found.collect())

    def records_in_table(self, table: str, paths: Sequence[str]) -> dict[str, int]:
        rows = (
            self.spark.table(table)
            .where(F.col(SOURCE_FILE).isin([spark_path(p) for p in paths]))
            .groupBy(SOURCE_FILE)
            .count()
            .collect()
        )
        counts = {file_key(row[SOURCE_FILE]): int(row["count"]) for row in rows}
        return {path: counts.get(file_key(path), 0) for path in paths}

    def write(
        self, spec: IngestionSpec, paths: Sequence[str], batch_id: str, table: str
    ) -> BatchOutcome:
        """Land the files in `table` (quoted) in one commit, unless the batch is there."""
        if self.committed(table, batch_id):
            return BatchOutcome(self.records_in_table(table, paths), already_committed=True)
        cached: list[DataFrame] = []
        try:
            return self._land(spec, table, paths, batch_id, cached)
        finally:
            for frame in cached:  # what this batch cached on the Spark server
                frame.unpersist()

    def _land(
        self,
        spec: IngestionSpec,
        table: str,
        paths: Sequence[str],
        batch_id: str,
        cached: list[DataFrame],
    ) -> BatchOutcome:
        outcome = BatchOutcome()
        readable = list(paths)
        try:
            frame, counts = self._read(spec, readable, cached)
        except Exception:
            outcome.failed = self._find_unreadable(spec, readable)
            readable = [p for p in readable if p not in outcome.failed]
            if not readable:
                return outcome
            frame, counts = self._read(spec, readable, cached)
        empty = {spark_file for spark_file, (_, parsed) in counts.items() if parsed == 0}
        by_key = {file_key(p): p for p in readable}
        for spark_file in empty:
            outcome.failed[by_key[file_key(spark_file)]] = (
                f"no {spec.format.type} record could be parsed in the file"
            )
        keep = [p for p in readable if p not in outcome.failed]
        if keep:
            landing = frame.where(~F.col(SOURCE_FILE).isin(sorted(empty))) if empty else frame
            self.before_commit()
            self._commit(spec, table, landing, batch_id)
        keyed = {file_key(spark_file): total for spark_file, (total, _) in counts.items()}
        outcome.records = {p: keyed.get(file_key(p), 0) for p in keep}
        return outcome

    def _read(
        self, spec: IngestionSpec, paths: Sequence[str], cached: list[DataFrame]
    ) -> tuple[DataFrame, dict[str, tuple[int, int]]]:
        """The batch as one cached frame with metadata columns, and per file (as Spark names
        it) its records and how many of them parsed, counted in one pass."""
        frame = self._frame(spec, paths, cached).withColumn(INGESTED_AT, F.current_timestamp())
        rows = (
            frame.groupBy(SOURCE_FILE)
            .agg(F.count(F.lit(1)).alias("total"), self._parsed(spec, frame).alias("parsed"))
            .collect()
        )
        return frame, {row[SOURCE_FILE]: (int(row["total"]), int(row["parsed"])) for row in rows}

    def _frame(
        self, spec: IngestionSpec, paths: Sequence[str], cached: list[DataFrame]
    ) -> DataFrame:
        fmt = spec.format
        rescued = fmt.schema_.rescued_data_column
        if fmt.type == "json" and not fmt.multiline:
            lines = json_lines.read_lines(self.spark, [spark_path(p) for p in paths], SOURCE_FILE)
            cached.append(lines)
            try:
                return json_lines.parse(lines, rescued, SOURCE_FILE)
            except json_lines.NotExpressible:
                pass  # Spark's own inference below
        frame: DataFrame = (
            _reader(self.spark, fmt)
            .load([spark_path(p) for p in paths])
            .withColumn(SOURCE_FILE, F.col("_metadata.file_path"))
            .cache()  # counted, then written: read the files from the store once
        )
        cached.append(frame)
        return frame

    @staticmethod
    def _parsed(spec: IngestionSpec, frame: DataFrame) -> Any:
        """Rows with a value in any data column: not only rescued text."""
        rescued = spec.format.schema_.rescued_data_column
        if spec.format.type == "parquet" or rescued not in frame.columns:
            return F.count(F.lit(1))
        data = [c for c in frame.columns if c not in (rescued, SOURCE_FILE, INGESTED_AT)]
        if not data:
            return F.lit(0)
        any_value = F.coalesce(*[F.col(c).cast("string") for c in data]).isNotNull()
        return F.count(F.when(any_value, 1))

    def _find_unreadable(self, spec: IngestionSpec, paths: Sequence[str]) -> dict[str, str]:
        failed = {}
        for path in paths:
            try:
                _reader(self.spark, spec.format).load(spark_path(path)).limit(1).collect()
            except Exception as error:
                failed[path] = f"unreadable as {spec.format.type}: {_first_line(error)}"
        return failed

    def _commit(self, spec: IngestionSpec, table: str, frame: DataFrame, batch_id: str) -> None:
        writer = frame.writeTo(table).option(f"snapshot-property.{BATCH_PROPERTY}", batch_id)
        if not self.spark.catalog.tableExists(table):
            try:
                writer.using("iceberg").tableProperty(
                    "write.spark.accept-any-schema", "true"
                ).create()
                return
            except Exception as error:
                if "already exists" not in str(error).lower():
                    raise
        if spec.format.schema_.evolution_enabled:
            # Inferred columns come in name order, not the table's: match them by name.
            writer = writer.option("merge-schema", "true").option("check-ordering", "false")
        writer.append()


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0][:500] if str(error).strip() else type(error).__name__
