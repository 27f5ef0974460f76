"""The struct form of the schema inferred from JSON lines."""

from __future__ import annotations

import pytest
from pyspark.sql.types import ArrayType, LongType, StructField, StructType

from autoloader_processor.json_lines import NotExpressible, as_spark_infers, struct_schema

pytestmark = pytest.mark.unit


def test_objects_become_structs_and_decimals_doubles() -> None:
    inferred = "OBJECT<amount: DECIMAL(3,1), tags: ARRAY<STRING>, where: OBJECT<lat: DECIMAL(8,6)>>"
    assert struct_schema(inferred) == (
        "STRUCT<`amount`: DOUBLE, `tags`: ARRAY<STRING>, `where`: STRUCT<`lat`: DOUBLE>>"
    )


def test_whole_numbers_too_large_for_a_bigint_keep_every_digit() -> None:
    """As Spark's JSON inference types them: a double would round 12345678901234567890."""
    inferred = "OBJECT<id: DECIMAL(20,0), mixed: DECIMAL(21,1)>"
    assert struct_schema(inferred) == "STRUCT<`id`: DECIMAL(20,0), `mixed`: DOUBLE>"


def test_keys_only_ever_null_are_strings_as_spark_infers_them() -> None:
    """An Iceberg table has no VOID column: the batch's table could not be made."""
    inferred = "OBJECT<gone: VOID, empty: ARRAY<VOID>, o: OBJECT<x: VOID>>"
    assert struct_schema(inferred) == (
        "STRUCT<`gone`: STRING, `empty`: ARRAY<STRING>, `o`: STRUCT<`x`: STRING>>"
    )


def test_names_spark_quoted_are_left_as_they_are() -> None:
    """Keys that look like the schema's own words are names, not types."""
    inferred = "OBJECT<`OBJECT<x`: BIGINT, `a``b`: DECIMAL(3,1), VARIANT: VOID, `VOID, y`: BIGINT>"
    assert struct_schema(inferred) == (
        "STRUCT<`OBJECT<x`: BIGINT, `a``b`: DOUBLE, `VARIANT`: STRING, `VOID, y`: BIGINT>"
    )


def test_objects_that_are_always_empty_are_left_out_as_spark_infers_them() -> None:
    """An Iceberg table cannot hold a struct without fields; the lines lose no value."""
    empty = StructType()
    schema = StructType(
        [
            StructField("n", LongType()),
            StructField("e", empty),
            StructField("l", ArrayType(empty)),
            StructField("o", StructType([StructField("e", empty), StructField("x", LongType())])),
        ]
    )
    assert as_spark_infers(schema) == StructType(
        [StructField("n", LongType()), StructField("o", StructType([StructField("x", LongType())]))]
    )
    assert as_spark_infers(StructType([StructField("e", empty)])) == StructType()


@pytest.mark.parametrize("inferred", ["ARRAY<BIGINT>", "OBJECT<a: VARIANT>", "BIGINT"])
def test_schemas_without_a_struct_form_are_refused(inferred: str) -> None:
    with pytest.raises(NotExpressible):
        struct_schema(inferred)
