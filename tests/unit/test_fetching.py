"""Which batches the processor fetches itself, and how it splits and names their files."""

from __future__ import annotations

import io

import pytest

from autoloader_processor.fetching import (
    Fetcher,
    OneFetch,
    lines_table,
    spark_name,
    split_lines,
)
from autoloader_processor.reading import spark_identity
from shared.settings import S3Settings
from shared.spec import FormatSpec

pytestmark = pytest.mark.unit

LINES = FormatSpec.model_validate({"type": "json"})
FETCHER = Fetcher(S3Settings(endpoint_url="http://127.0.0.1:1"), max_bytes=1000)


@pytest.mark.parametrize(
    "fmt",
    [
        {"type": "json", "multiline": True},  # Spark's JSON reader parses whole files
        {"type": "json", "schema": {"inference": "none"}},  # keeps each value's own text
        {"type": "csv"},
        {"type": "parquet"},
    ],
)
def test_only_typed_json_lines_are_fetched(fmt: dict[str, object]) -> None:
    assert FETCHER.takes(LINES, {"s3://b/a.json": 10})
    assert not FETCHER.takes(FormatSpec.model_validate(fmt), {"s3://b/a.json": 10})


def test_a_batch_above_the_limit_or_of_no_bytes_is_left_to_spark() -> None:
    assert FETCHER.takes(LINES, {"s3://b/a.json": 600, "s3://b/c.json": 400})
    assert not FETCHER.takes(LINES, {"s3://b/a.json": 600, "s3://b/c.json": 401})
    assert not FETCHER.takes(LINES, {"s3://b/a.json": 0})
    assert not Fetcher(S3Settings(), max_bytes=0).takes(LINES, {"s3://b/a.json": 1})


@pytest.mark.parametrize(
    "path",
    [
        "s3://b/a.json.gz",  # Spark decompresses by the name
        "s3://b/A.JSON.ZST",
        "s3://b/a//c.json",  # Arrow refuses an empty segment
        "s3://b/./c.json",
        "s3://b/x/../c.json",
        "s3://b/",
        "s3:///a.json",
        "file:///tmp/a.json",
    ],
)
def test_a_batch_with_a_file_arrow_would_not_take_as_it_is_is_left_to_spark(path: str) -> None:
    assert not FETCHER.takes(LINES, {"s3://b/a.json": 1, path: 1})


@pytest.mark.parametrize(
    ("body", "lines"),
    [
        (b"a\nb\n", [b"a", b"b"]),
        (b"a\r\nb", [b"a", b"b"]),
        (b"a\rb\r\n\r\nc", [b"a", b"b", b"", b"c"]),
        (b"\xef\xbb\xbfa\n\xef\xbb\xbfb", [b"a", b"\xef\xbb\xbfb"]),  # only the file's own
        (b"a\x0bb\x0cc\x1cd", [b"a\x0bb\x0cc\x1cd"]),  # Python's str would split these
        ("a\u2028b\u0085c".encode(), ["a\u2028b\u0085c".encode()]),
        (b"", []),
    ],
)
def test_files_split_into_lines_as_hadoops_line_reader_splits_them(
    body: bytes, lines: list[bytes]
) -> None:
    assert split_lines(body) == lines


@pytest.mark.parametrize(
    "path",
    ["s3://b/k=v/a b.json", "s3://b/100% #1 ?.json", "s3://b/🚀/a+b.json", "s3://b/a%20b.json"],
)
def test_a_fetched_file_is_named_as_spark_names_it(path: str) -> None:
    assert spark_identity(spark_name(path)) == path
    assert " " not in spark_name(path) and "#" not in spark_name(path)


def test_every_line_carries_its_own_files_name() -> None:
    table = lines_table({"s3://b/a.json": b"1\n2\n", "s3://b/c d.json": b"3"}, "file")
    assert table.column("value").to_pylist() == [b"1", b"2", b"3"]
    assert table.column("file").to_pylist() == ["s3://b/a.json"] * 2 + ["s3://b/c%20d.json"]


class Store:
    """A filesystem whose `bad` object cannot be read; it counts the objects asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def open_input_stream(self, path: str) -> io.BytesIO:
        self.asked.append(path)
        if path.endswith("bad"):
            raise OSError("When reading information for key 'bad': AWS Error NETWORK_CONNECTION")
        return io.BytesIO(b"x" * 10)


def test_the_first_file_that_fails_stops_every_share_of_the_fetch() -> None:
    """With the store away, every request waits out its retries: one file's, not all."""
    store = Store()
    fetch = OneFetch(store, limit=1000)
    with pytest.raises(OSError, match="NETWORK_CONNECTION"):
        fetch.share(["s3://b/bad", "s3://b/1", "s3://b/2"])
    with pytest.raises(ValueError, match="could not be fetched"):
        fetch.share(["s3://b/3", "s3://b/4"])  # another thread's share
    assert store.asked == ["b/bad"]
    assert isinstance(fetch.error, OSError)


def test_a_fetch_holds_no_more_bytes_than_its_limit() -> None:
    fetch = OneFetch(Store(), limit=25)
    assert fetch.share(["s3://b/1", "s3://b/2"]) == [b"x" * 10] * 2
    with pytest.raises(ValueError, match="more bytes than found"):
        fetch.share(["s3://b/3"])
    with pytest.raises(ValueError, match="could not be fetched"):
        fetch.share(["s3://b/4"])
