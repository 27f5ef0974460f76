"""One spelling of each JSON key for the columns, and the paths to the others."""

from __future__ import annotations

import pytest
from pyspark.sql.types import (
    ArrayType,
    DataType,
    LongType,
    NullType,
    StringType,
    StructField,
    StructType,
)

from autoloader_processor.spellings import dotted, key, split, twins

pytestmark = pytest.mark.unit


def struct(**fields: DataType) -> StructType:
    return StructType([StructField(name, t) for name, t in fields.items()])


NESTED = struct(
    A=LongType(),
    a=LongType(),
    o=struct(X=LongType(), x=StringType()),
    l=ArrayType(struct(Q=LongType(), q=LongType())),
)


def test_every_spelling_of_a_twin_name_is_a_path_to_count() -> None:
    assert [dotted(path) for path in twins(NESTED)] == ["A", "a", "o.X", "o.x", "l[].Q", "l[].q"]
    assert twins(NESTED)[5] == struct(l=ArrayType(struct(q=StringType())))


def test_without_counts_the_first_spelling_is_kept_at_every_depth() -> None:
    spellings = split(NESTED, {})
    assert spellings.kept == struct(
        A=LongType(), o=struct(X=LongType()), l=ArrayType(struct(Q=LongType()))
    )
    assert [dotted(path) for path in spellings.others] == ["a", "o.x", "l[].q"]


def test_the_spelling_most_records_hold_a_value_under_is_kept() -> None:
    """One stray `ID` must not push a thousand `id` records out of their column."""
    counts = {key(path): n for path, n in zip(twins(NESTED), [1, 1000, 0, 5, 3, 2], strict=True)}
    spellings = split(NESTED, counts)
    assert spellings.kept == struct(
        a=LongType(), o=struct(x=StringType()), l=ArrayType(struct(Q=LongType()))
    )
    assert [dotted(path) for path in spellings.others] == ["A", "o.X", "l[].q"]


def test_a_spelling_that_only_ever_held_null_gives_way() -> None:
    spellings = split(struct(B=NullType(), b=StringType(), c=LongType()), {})
    assert spellings.kept == struct(b=StringType(), c=LongType())
    assert [dotted(path) for path in spellings.others] == ["B"]


def test_a_schema_without_twins_is_kept_whole() -> None:
    schema = struct(a=LongType(), o=struct(a=LongType()), l=ArrayType(LongType()))
    assert twins(schema) == [] and split(schema, {}).kept == schema
