"""Committing a batch to Iceberg exactly once, through write-audit-publish.

A batch is first staged: written as a snapshot that is not yet part of the table, with the
batch id as its WAP id (`spark.wap.id`) and the claim's token in its summary. Publishing it is
a cherry-pick, and Iceberg refuses to publish a WAP id twice (DuplicateWAPCommitException),
also when two holders of one batch race. So a holder that lost its claim, was paused past it or
does not know whether its commit landed can never add the batch's rows a second time; the
table, not the holder, says whether the batch is in.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from autoloader_processor.reading import SOURCE_FILE
from shared.spec import IngestionSpec

CLAIM_PROPERTY = "autoloader.claim"
WAP_ENABLED = "write.wap.enabled"


def _parts(table: str) -> list[str]:
    return [part.strip("`") for part in table.split(".")]


class IcebergTables:
    def __init__(self, spark: SparkSession, ready: set[str]):
        self.spark = spark
        self.ready = ready  # tables known to exist with WAP on, shared across sessions

    def published(self, table: str, batch_id: str) -> int | None:
        """The snapshot that published the batch into the table's current history, if any."""
        if not self.spark.catalog.tableExists(table):
            return None
        found = self.spark.sql(
            f"SELECT s.snapshot_id FROM {table}.snapshots s "
            f"JOIN {table}.history h ON s.snapshot_id = h.snapshot_id "
            f"WHERE h.is_current_ancestor AND (s.summary['wap.id'] = :batch "
            f"OR s.summary['published-wap-id'] = :batch)",
            args={"batch": batch_id},
        ).collect()
        return int(found[0][0]) if found else None

    def records_in_commit(
        self, table: str, snapshot_id: int, paths: Sequence[str]
    ) -> dict[str, int]:
        """Rows per file that this one snapshot added: the landed counts of a replayed batch."""
        parent = self.spark.sql(
            f"SELECT parent_id FROM {table}.snapshots WHERE snapshot_id = {snapshot_id}"
        ).collect()[0][0]
        scan = self.spark.read
        if parent is None:
            scan = scan.option("snapshot-id", snapshot_id)
        else:
            scan = scan.option("start-snapshot-id", parent).option("end-snapshot-id", snapshot_id)
        rows = (
            scan.table(table)
            .where(F.col(SOURCE_FILE).isin(list(paths)))
            .groupBy(SOURCE_FILE)
            .count()
            .collect()
        )
        counts = {row[SOURCE_FILE]: int(row["count"]) for row in rows}
        return {path: counts.get(path, 0) for path in paths}

    def ensure_table(self, table: str, frame: DataFrame) -> None:
        """Create the table empty, with the frame's columns and WAP on, unless it exists."""
        if table in self.ready:
            return
        if not self.spark.catalog.tableExists(table):
            try:
                (
                    frame.limit(0)
                    .writeTo(table)
                    .using("iceberg")
                    .tableProperty("write.spark.accept-any-schema", "true")
                    .tableProperty(WAP_ENABLED, "true")
                    .create()
                )
            except Exception as error:
                if "already exists" not in str(error).lower():
                    raise
        else:
            self.spark.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('{WAP_ENABLED}' = 'true')")
        self.ready.add(table)

    def stage(
        self, spec: IngestionSpec, table: str, frame: DataFrame, batch_id: str, token: str
    ) -> int:
        """Write the batch as a staged snapshot; return its id."""
        writer = frame.writeTo(table).option(f"snapshot-property.{CLAIM_PROPERTY}", token)
        if spec.format.schema_.evolution_enabled:
            # Inferred columns come in name order, not the table's: match them by name.
            writer = writer.option("merge-schema", "true").option("check-ordering", "false")
        self.spark.conf.set("spark.wap.id", batch_id)
        try:
            writer.append()
        finally:
            self.spark.conf.unset("spark.wap.id")
        staged = self.spark.sql(
            f"SELECT snapshot_id FROM {table}.snapshots WHERE summary['{CLAIM_PROPERTY}'] = :token",
            args={"token": token},
        ).collect()
        return int(staged[0][0])

    def publish(self, table: str, snapshot_id: int) -> int | None:
        """Cherry-pick the staged snapshot; return the table's snapshot that holds it now (the
        staged one, or a new one if another commit came first), or None if its batch was
        already published."""
        catalog, *name = _parts(table)
        name_literal = ".".join(f"`{part}`" for part in name)  # validated identifiers
        try:
            picked = self.spark.sql(
                f"CALL `{catalog}`.system.cherrypick_snapshot('{name_literal}', {snapshot_id})"
            ).collect()
        except Exception as error:
            if "DuplicateWAPCommitException" in str(error):
                return None
            raise
        return int(picked[0]["current_snapshot_id"])
