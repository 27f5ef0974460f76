"""The struct form of the schema inferred from JSON lines."""

from __future__ import annotations

import pytest

from autoloader_processor.json_lines import NotExpressible, struct_schema

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


@pytest.mark.parametrize("inferred", ["ARRAY<BIGINT>", "OBJECT<a: VARIANT>", "BIGINT"])
def test_schemas_without_a_struct_form_are_refused(inferred: str) -> None:
    with pytest.raises(NotExpressible):
        struct_schema(inferred)
