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


@pytest.mark.parametrize("inferred", ["ARRAY<BIGINT>", "OBJECT<a: VARIANT>", "BIGINT"])
def test_schemas_without_a_struct_form_are_refused(inferred: str) -> None:
    with pytest.raises(NotExpressible):
        struct_schema(inferred)
