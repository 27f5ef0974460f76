"""A file named against the ingestion's `format.compression` is refused before Spark reads it:
Spark picks the codec by the name's extension, in any case, and nothing else."""

from __future__ import annotations

import pytest

from autoloader_processor.reading import compression_refusal
from shared.spec import FormatSpec

pytestmark = pytest.mark.unit


def fmt(kind: str, compression: str) -> FormatSpec:
    return FormatSpec.model_validate({"type": kind, "compression": compression})


@pytest.mark.parametrize(
    ("compression", "name", "refused"),
    [
        ("gzip", "x.json.gz", False),
        ("gzip", "x.json.GZ", False),  # Hadoop's codec lookup ignores case
        ("gzip", "x.json", True),
        ("gzip", "d.gz/x.json", True),  # the folder's name decides nothing
        ("gzip", "x.gz?v=1", True),  # a key, not a URL: the name ends '?v=1'
        ("none", "x.json", False),
        ("none", "d.gz/x.json", False),
        ("none", "x.json.gz", True),
        ("none", "x.json.BZ2", True),
        ("none", "x.zst", True),
        ("auto", "x.json", False),
        ("auto", "x.json.gz", False),
    ],
)
def test_a_name_against_the_compression_is_refused(
    compression: str, name: str, refused: bool
) -> None:
    reason = compression_refusal(f"s3://b/in/{name}", fmt("csv", compression))
    assert (reason is not None) == refused
    if refused:
        assert f"format.compression is '{compression}'" in str(reason)


def test_parquet_keeps_its_compression_inside_the_file() -> None:
    for compression in ("gzip", "none"):
        assert compression_refusal("s3://b/in/x.parquet", fmt("parquet", compression)) is None
