"""JSON keys that differ only in case, which Spark's columns cannot tell apart.

Spark matches column names ignoring case, and so does an Iceberg table written through it,
but its JSON parsers match keys exactly. Inferred case-insensitively, `{"A": 1}` and
`{"a": 2}` give one column `A`, and the parser then leaves the second record's value null:
the 2 is lost, with nothing said. So a batch's schema is inferred case-sensitively
(`case_sensitive`), which keeps both spellings at every depth. The records holding a value
under each spelling (`twins`) are counted, and `split` keeps the spelling most of them use
and names the paths to the others. A record that holds a value under one of those is
rescued (JSON lines) or fails its file (Spark's JSON reader), never landed without it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
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
    before = spark.conf.get(CASE_SENSITIVE, "false") or "false"
    spark.conf.set(CASE_SENSITIVE, "true")
    try:
        yield
    finally:
        spark.conf.set(CASE_SENSITIVE, before)


Wrap = Callable[[DataType], DataType]  # a type, inside the path that leads to it


@dataclass(frozen=True)
class Spellings:
    """A schema with one spelling of each name, and a schema of the path to each other
    spelling left out: one field at each level, the spelling itself a string at the end."""

    kept: StructType
    others: list[StructType]


def twins(schema: StructType) -> list[StructType]:
    """The path to each spelling of a name that has more than one, at any depth: what
    `split` needs counted."""
    return [cast(StructType, path) for path in _twins(schema, _top)]


def key(path: StructType) -> str:
    return path.json()


def split(schema: StructType, values: Mapping[str, int]) -> Spellings:
    """Keep, of each name's spellings, the one with the most records holding a value under
    it (`values`, by `key` of its path), then one whose type is not VOID (a key only ever
    null), then the first."""
    kept, others = _split(schema, _top, values)
    return Spellings(cast(StructType, kept), [cast(StructType, path) for path in others])


def without(spellings: Spellings, names: Collection[str]) -> Spellings:
    """The top-level columns named `names` (in any case) moved to the others."""
    taken = {name.lower() for name in names}
    left = [f for f in spellings.kept if f.name.lower() not in taken]
    gone = [cast(StructType, _path(_top, f.name)) for f in spellings.kept if f not in left]
    return Spellings(StructType(left), spellings.others + gone)


def _top(data_type: DataType) -> DataType:
    return data_type


def _into(wrap: Wrap, name: str) -> Wrap:
    return lambda inner: wrap(StructType([StructField(name, inner)]))


def _element(wrap: Wrap) -> Wrap:
    return lambda inner: wrap(ArrayType(inner))


def _path(wrap: Wrap, name: str) -> DataType:
    return _into(wrap, name)(StringType())


def _twins(data_type: DataType, wrap: Wrap) -> Iterator[DataType]:
    if isinstance(data_type, ArrayType):
        yield from _twins(data_type.elementType, _element(wrap))
    if not isinstance(data_type, StructType):
        return
    spellings = Counter(f.name.lower() for f in data_type)
    for f in data_type:
        if spellings[f.name.lower()] > 1:
            yield _path(wrap, f.name)
        yield from _twins(f.dataType, _into(wrap, f.name))


def _split(
    data_type: DataType, wrap: Wrap, values: Mapping[str, int]
) -> tuple[DataType, list[DataType]]:
    if isinstance(data_type, ArrayType):
        element, below = _split(data_type.elementType, _element(wrap), values)
        return ArrayType(element, data_type.containsNull), below
    if not isinstance(data_type, StructType):
        return data_type, []
    keepers = _keepers(data_type, wrap, values)
    fields: list[StructField] = []
    others: list[DataType] = []
    for f in data_type:
        if f.name not in keepers:
            others.append(_path(wrap, f.name))
            continue
        kept, below = _split(f.dataType, _into(wrap, f.name), values)
        fields.append(StructField(f.name, kept, f.nullable))
        others += below
    return StructType(fields), others


def _keepers(struct: StructType, wrap: Wrap, values: Mapping[str, int]) -> set[str]:
    best: dict[str, tuple[tuple[int, bool], str]] = {}
    for f in struct:
        path = cast(StructType, _path(wrap, f.name))
        score = (values.get(key(path), 0), not isinstance(f.dataType, NullType))
        if f.name.lower() not in best or score > best[f.name.lower()][0]:
            best[f.name.lower()] = (score, f.name)
    return {name for _, name in best.values()}


def column(name: str) -> Column:
    """The column named `name` as it is: `a.b` is not field `b` of `a`, and a backtick is
    part of the name."""
    return F.col("`" + name.replace("`", "``") + "`")


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
