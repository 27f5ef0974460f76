"""One spelling of each JSON key for the columns, and the paths to the others."""

from __future__ import annotations

import pytest
from pyspark.sql.types import (
    ArrayType,
    LongType,
    NullType,
    StringType,
    StructField,
    StructType,
)

from autoloader_processor.spellings import dotted, split

pytestmark = pytest.mark.unit


def struct(**fields: object) -> StructType:
    return StructType([StructField(name, t) for name, t in fields.items()])  # type: ignore[arg-type]


def test_one_spelling_is_kept_at_every_depth_and_the_others_named() -> None:
    schema = struct(
        A=LongType(),
        a=LongType(),
        o=struct(X=LongType(), x=StringType()),
        l=ArrayType(struct(Q=LongType(), q=LongType())),
    )
    spellings = split(schema)
    assert spellings.kept == struct(
        A=LongType(), o=struct(X=LongType()), l=ArrayType(struct(Q=LongType()))
    )
    assert [dotted(path) for path in spellings.others] == ["a", "o.x", "l[].q"]
    assert spellings.others[2] == struct(l=ArrayType(struct(q=StringType())))


def test_a_spelling_that_only_ever_held_null_gives_way() -> None:
    spellings = split(struct(B=NullType(), b=StringType(), c=LongType()))
    assert spellings.kept == struct(b=StringType(), c=LongType())
    assert [dotted(path) for path in spellings.others] == ["B"]


def test_a_schema_without_twins_is_kept_whole() -> None:
    schema = struct(a=LongType(), o=struct(a=LongType()), l=ArrayType(LongType()))
    assert split(schema).kept == schema and split(schema).others == []
