"""Reading JSON-lines files in one pass over the object store.

Spark's JSON reader reads every file twice, once to infer the schema and once to parse. Here
the batch's files are read as text into the cache once, and the schema is inferred from the
cached lines with `schema_of_variant_agg`. Lines that are not JSON, and lines with a key spelt
in another case than its column, go to the rescued-data column. When the inferred
schema cannot be expressed as a struct, the caller falls back to Spark's JSON reader.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import cast

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    DataType,
    StringType,
    StructField,
    StructType,
)

from autoloader_processor import spellings
from shared.spec import FormatSpec

QUOTED = re.compile(r"(`(?:[^`]|``)*`)")
DECIMAL = re.compile(r"DECIMAL\(\d+,\s*(\d+)\)")
VARIANT = re.compile(r"VARIANT(?=[,>])")  # the type; a key named so is followed by `:`
VOID = re.compile(r"VOID(?=[,>])")
PLAIN_FIELD = re.compile(r"(?<=[<,]\s)([^:<>,`\s]+):|(?<=<)([^:<>,`\s]+):")


def not_blank() -> Column:
    """A line with more than whitespace in it."""
    return F.regexp_replace("value", r"\s+", "") != ""


def readable(fmt: FormatSpec) -> bool:
    """JSON, one record a line, typed from its values: what this module reads. Untyped JSON
    goes to Spark's JSON reader, which alone keeps a value's own text (`1.50`, `1e2`, an
    object as written); `from_json` writes values out anew."""
    return fmt.type == "json" and not fmt.multiline and fmt.typed


class NotExpressible(ValueError):
    """The lines' schema has no struct form (a top-level array, odd field names...)."""


def read_lines(
    spark: SparkSession,
    paths: Sequence[str],
    source_column: str,
    options: Mapping[str, str] | None = None,
    only: Column | None = None,
) -> DataFrame:
    """The batch's non-blank lines, with the file each came from (as Spark names it), cached.
    The paths are given as Spark must read them; folders never become partition columns.
    `options` are the read's own (the source's credentials); `only`, a filter on the file's
    name, keeps a folder's other files from being read at all (Spark prunes files by it)."""
    lines = (
        spark.read.format("text")
        .options(**(options or {}))
        .option("recursiveFileLookup", True)
        .load(list(paths))
        .select("value", F.col("_metadata.file_path").alias(source_column))
    )
    if only is not None:
        lines = lines.where(only)
    return lines.where(not_blank()).cache()


def fetched_lines(spark: SparkSession, table: pa.Table, source_column: str) -> DataFrame:
    """The lines of fetched files (`fetching.lines_table`) as `read_lines` gives them: bytes
    made strings as Spark's text reader makes them (invalid UTF-8 kept as it is), non-blank,
    cached."""
    schema = StructType(
        [StructField("value", BinaryType()), StructField(source_column, StringType())]
    )
    lines = spark.createDataFrame(table, schema=schema)
    lines = lines.select(F.col("value").cast("string").alias("value"), source_column)
    return lines.where(not_blank()).cache()


def struct_schema(variant_schema: str) -> str:
    """Spark DDL for the variant schema, numbers typed as Spark's JSON inference types them
    (so a table it made widens nothing): fractions as doubles, whole numbers too large for a
    BIGINT as the decimal that holds every digit (a double would round them), and a key only
    ever null as a string. Objects are structs, field names quoted. Names Spark quoted
    already (`OBJECT<x` is a key) are left as they are."""
    parts = QUOTED.split(variant_schema)
    if not variant_schema.startswith("OBJECT<") or any(VARIANT.search(p) for p in parts[::2]):
        raise NotExpressible(f"no struct form for {variant_schema[:200]}")
    return "".join(part if i % 2 else _typed(part) for i, part in enumerate(parts))


def _typed(unquoted: str) -> str:
    ddl = DECIMAL.sub(_whole_or_double, unquoted.replace("OBJECT<", "STRUCT<"))
    ddl = VOID.sub("STRING", ddl)
    return PLAIN_FIELD.sub(lambda m: f"`{m.group(1) or m.group(2)}`:", ddl)


def as_spark_infers(struct: StructType) -> StructType:
    """Without fields of empty objects or arrays of them, which Spark's JSON inference
    leaves out too (and an Iceberg table cannot hold)."""
    return cast(StructType, _non_empty(struct) or StructType([]))


def _non_empty(data_type: DataType) -> DataType | None:
    if isinstance(data_type, ArrayType):
        element = _non_empty(data_type.elementType)
        return None if element is None else ArrayType(element, data_type.containsNull)
    if not isinstance(data_type, StructType):
        return data_type
    fields = [(f, _non_empty(f.dataType)) for f in data_type]
    kept = [StructField(f.name, t, f.nullable) for f, t in fields if t is not None]
    return StructType(kept) if kept else None


def _values_under(lines: DataFrame, paths: Sequence[StructType]) -> dict[str, int]:
    """How many lines hold a value at the end of each path, in one pass over the cache."""
    if not paths:
        return {}
    holding = [F.count_if(spellings.holds_value(F.from_json("value", p), p)) for p in paths]
    counts = lines.select(*holding).first()
    assert counts is not None  # an aggregate without grouping has one row
    return {spellings.key(p): int(n) for p, n in zip(paths, counts, strict=True)}


def _whole_or_double(decimal: re.Match[str]) -> str:
    return decimal.group(0) if decimal.group(1) == "0" else "DOUBLE"


def parse(
    lines: DataFrame, rescued_column: str, source_column: str, taken: Collection[str]
) -> DataFrame:
    """Typed columns from the cached lines. A line that is not JSON lands in the rescued
    column whole, and so does a line with a value under a key spelt otherwise than its
    column, at any depth (`spellings`), or under a top-level key `taken` by a column
    Autoloader writes itself (the rescued column among them)."""
    with spellings.case_sensitive(lines.sparkSession):
        row = lines.select(F.expr("schema_of_variant_agg(try_parse_json(value))")).first()
    if row is None or row[0] is None:
        raise NotExpressible("no line of the batch is JSON")
    ddl = struct_schema(row[0])
    schema = cast(StructType, lines.select(F.from_json("value", ddl).alias("p")).schema[0].dataType)
    split = spellings.split(schema, _values_under(lines, spellings.twins(schema)))
    split = spellings.without(split, taken)
    # One flat array, not a chain of ORs: a plan nested once per path fails past ~50 paths.
    spelt = [spellings.holds_value(F.from_json("value", path), path) for path in split.others]
    unfit = F.expr("try_parse_json(value)").isNull()
    if spelt:
        unfit = unfit | F.array_contains(F.array(*spelt), True)
    rescued = F.when(unfit, F.col("value"))
    return lines.select(
        F.from_json("value", as_spark_infers(split.kept)).alias("_parsed"),
        rescued.alias(rescued_column),
        source_column,
    ).select("_parsed.*", rescued_column, source_column)
