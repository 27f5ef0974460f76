"""JSON keys that differ only in case, which Spark's columns cannot tell apart.

Spark matches column names ignoring case, and so does an Iceberg table written through it,
but its JSON parsers match keys exactly. Inferred case-insensitively, `{"A": 1}` and
`{"a": 2}` give one column `A`, and the parser then leaves the second record's value null:
the 2 is lost, with nothing said. So a batch's schema is inferred case-sensitively
(`case_sensitive`), which keeps both spellings at every depth, and `split` keeps one spelling
of each name and names the paths to the others. A record
that holds a value under one of those is rescued (JSON lines) or fails its file (the other
JSON readers), never landed without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DataType,
    NullType,
    StringType,
    StructField,
    StructType,
)

CASE_SENSITIVE = "spark.sql.caseSensitive"


@contextmanager
def case_sensitive(spark: SparkSession) -> Iterator[None]:
    """Spark's analysis tells `A` from `a` inside the block (a schema inferred in it keeps
    both); only for inferring: a write with both would make a table Spark cannot query."""
    spark.conf.set(CASE_SENSITIVE, "true")
    try:
        yield
    finally:
        spark.conf.unset(CASE_SENSITIVE)


@dataclass(frozen=True)
class Spellings:
    """A schema with one spelling of each name, and a schema of the path to each other
    spelling left out: one field at each level, the spelling itself a string at the end."""

    kept: StructType
    others: list[StructType]


def split(schema: StructType) -> Spellings:
    kept = cast(StructType, _kept(schema))
    return Spellings(kept, [cast(StructType, path) for path in _others(schema)])


def _kept(data_type: DataType) -> DataType:
    if isinstance(data_type, ArrayType):
        return ArrayType(_kept(data_type.elementType), data_type.containsNull)
    if not isinstance(data_type, StructType):
        return data_type
    keepers = _keepers(data_type)
    return StructType(
        [StructField(f.name, _kept(f.dataType), f.nullable) for f in data_type if f in keepers]
    )


def _others(data_type: DataType) -> Iterator[DataType]:
    """Each path to a spelling `_kept` leaves out, as a type of that path alone."""
    if isinstance(data_type, ArrayType):
        yield from (ArrayType(path) for path in _others(data_type.elementType))
    if not isinstance(data_type, StructType):
        return
    keepers = _keepers(data_type)
    for f in data_type:
        if f not in keepers:
            yield StructType([StructField(f.name, StringType())])
        else:
            yield from (StructType([StructField(f.name, path)]) for path in _others(f.dataType))


def _keepers(struct: StructType) -> list[StructField]:
    """One field of each name, case aside: the first that ever held a value (a key only
    ever null is typed VOID, and a column of it would keep nothing), else the first."""
    by_name: dict[str, StructField] = {}
    for f in struct:
        kept = by_name.get(f.name.lower())
        if kept is None or (
            isinstance(kept.dataType, NullType) and not isinstance(f.dataType, NullType)
        ):
            by_name[f.name.lower()] = f
    return list(by_name.values())


def holds_value(column: Column, path: DataType) -> Column:
    """Whether a record parsed with the path's schema has a value (not JSON null) at its
    end; any element of an array on the way will do."""
    if isinstance(path, ArrayType):
        element = path.elementType
        return F.coalesce(F.exists(column, lambda e: holds_value(e, element)), F.lit(False))
    if isinstance(path, StructType):
        (only,) = path.fields
        return holds_value(column[only.name], only.dataType)
    return column.isNotNull()


def dotted(path: DataType) -> str:
    """The path as people write it: `o.x`, `items[].id`."""
    if isinstance(path, ArrayType):
        rest = dotted(path.elementType)
        return "[]" + ("." + rest if rest and not rest.startswith("[") else rest)
    if isinstance(path, StructType):
        (only,) = path.fields
        rest = dotted(only.dataType)
        return only.name + ("." + rest if rest and not rest.startswith("[") else rest)
    return ""
