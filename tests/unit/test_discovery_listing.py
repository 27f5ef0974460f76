"""Listing a source for discovery: pages in the store's order, one page fetched ahead at most,
errors in their place, keys of any shape decoded, timestamps parsed without dateutil.

The store is faked below botocore (its `before-send` event answers each ListObjectsV2 request),
so the client's own request building, response parsing and key decoding all run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit
from xml.sax.saxutils import escape

import pytest
from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError

from autoloader_discovery import listing
from autoloader_discovery.listing import ListedObject, _read_ahead, list_source
from shared.s3 import parse_timestamp, source_client
from shared.settings import S3Settings
from shared.spec import SourceSpec

pytestmark = pytest.mark.unit

STAMP = "2026-11-22T10:00:00.000Z"


class Body:
    def __init__(self, content: bytes) -> None:
        self.content = content

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.content


class FakeStore:
    """A bucket's keys, listed the way S3 answers ListObjectsV2 with `encoding-type=url`."""

    def __init__(self, keys: list[str], refuse_request: int | None = None) -> None:
        self.keys = sorted(keys)
        self.refuse_request = refuse_request  # answer this request (1-based) with AccessDenied
        self.requests = 0

    def answer(self, request: AWSPreparedRequest, **kwargs: Any) -> AWSResponse:
        self.requests += 1
        if self.requests == self.refuse_request:
            error = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            return AWSResponse(request.url, 403, HTTPHeaders(), Body(error))
        query = {name: values[0] for name, values in parse_qs(urlsplit(request.url).query).items()}
        assert query["encoding-type"] == "url"  # botocore asks for it, and decodes keys itself
        prefix, size = query.get("prefix", ""), int(query["max-keys"])
        start = int(query.get("continuation-token", "0"))
        matching = [key for key in self.keys if key.startswith(prefix)]
        page, rest = matching[start : start + size], matching[start + size :]
        contents = "".join(
            f"<Contents><Key>{escape(quote_plus(key, safe='/'))}</Key>"
            f"<LastModified>{STAMP}</LastModified><ETag>&quot;etag-{n}&quot;</ETag>"
            f"<Size>{len(key)}</Size><StorageClass>STANDARD</StorageClass></Contents>"
            for n, key in enumerate(page, start)
        )
        truncated = f"<NextContinuationToken>{start + size}</NextContinuationToken>" if rest else ""
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            f"<Name>landing</Name><Prefix>{escape(quote_plus(prefix, safe='/'))}</Prefix>"
            f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{size}</MaxKeys>"
            f"<EncodingType>url</EncodingType><IsTruncated>{str(bool(rest)).lower()}</IsTruncated>"
            f"{truncated}{contents}</ListBucketResult>"
        )
        return AWSResponse(request.url, 200, HTTPHeaders(), Body(body.encode()))


Lister = Callable[..., Iterator[list[ListedObject]]]


@pytest.fixture
def list_from(monkeypatch: pytest.MonkeyPatch) -> Lister:
    """list_source of s3://landing/in/, answered by the given store."""

    def lister(
        store: FakeStore, page_size: int, pattern: str = "*"
    ) -> Iterator[list[ListedObject]]:
        def client_of_the_store(settings: S3Settings, credentials: Any) -> Any:
            client = source_client(settings, credentials)
            # A before-send handler may answer the request itself (the stubs say it returns None).
            client.meta.events.register("before-send.s3.ListObjectsV2", store.answer)  # type: ignore[arg-type]
            return client

        monkeypatch.setattr(listing, "source_client", client_of_the_store)
        source = SourceSpec.model_validate(
            {"type": "s3", "path": "s3://landing/in/", "file_pattern": pattern}
        )
        settings = S3Settings(endpoint_url="http://store.test", region="us-east-1")
        return list_source(source, None, settings, page_size)

    return lister


def test_pages_come_in_the_stores_order_one_request_each(list_from: Lister) -> None:
    keys = [f"in/part-{n}.json" for n in range(5)] + ["other/part-9.json"]
    fake = FakeStore(keys)

    pages = [[item.path for item in page] for page in list_from(fake, page_size=2)]

    assert pages == [
        ["s3://landing/in/part-0.json", "s3://landing/in/part-1.json"],
        ["s3://landing/in/part-2.json", "s3://landing/in/part-3.json"],
        ["s3://landing/in/part-4.json"],
    ]
    assert fake.requests == 3


def test_the_pattern_and_folder_markers_are_filtered_and_empty_pages_skipped(
    list_from: Lister,
) -> None:
    keys = ["in/a.csv", "in/b.csv", "in/dir/", "in/dir/c.json", "in/d.csv", "in/e.csv"]

    pages = [
        [item.path for item in page]
        for page in list_from(FakeStore(keys), page_size=2, pattern="*.json")
    ]

    assert pages == [["s3://landing/in/dir/c.json"]]


def test_keys_of_any_shape_come_back_as_they_were_written(list_from: Lister) -> None:
    awkward = ["in/orders 1+2.json", "in/ü & <ß>?.json", "in/100%/x#y.json", "in/a\x01b.json"]

    [page] = list(list_from(FakeStore(awkward), page_size=10))

    assert sorted(item.path for item in page) == sorted(f"s3://landing/{key}" for key in awkward)
    assert {item.etag for item in page} == {f"etag-{n}" for n in range(4)}


def test_last_modified_is_parsed_by_the_fast_parser(list_from: Lister) -> None:
    [page] = list(list_from(FakeStore(["in/a.json"]), page_size=10))

    [item] = page
    assert item.last_modified == datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert item.last_modified.tzinfo is UTC  # botocore's own parser gives dateutil's tzutc


def test_a_refused_page_raises_after_the_pages_before_it(list_from: Lister) -> None:
    keys = [f"in/part-{n}.json" for n in range(6)]
    pages = list_from(FakeStore(keys, refuse_request=2), page_size=2)

    assert [item.path for item in next(pages)] == [
        "s3://landing/in/part-0.json",
        "s3://landing/in/part-1.json",
    ]
    with pytest.raises(ClientError) as error:
        next(pages)
    assert error.value.response["Error"]["Code"] == "AccessDenied"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00.000Z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T12:00:00+02:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("2026-11-22T10:00:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("Sun, 22 Nov 2026 10:00:00 GMT", datetime(2026, 11, 22, 10, tzinfo=UTC)),
    ],
)
def test_timestamps_of_any_form_botocore_reads_are_read(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)

    assert parsed == expected
    assert parsed.utcoffset() is not None


def test_offsets_are_kept() -> None:
    parsed = parse_timestamp("2026-11-22T12:00:00+02:00")

    assert parsed.tzinfo == timezone(timedelta(hours=2))


class Pages:
    """Pages [0], [1], …, counting how many were produced; an error after `fail_after`."""

    def __init__(self, count: int | None, fail_after: int | None = None) -> None:
        self.count, self.fail_after = count, fail_after
        self.produced = 0
        self.lock = threading.Lock()

    def __iter__(self) -> Iterator[list[int]]:
        number = 0
        while self.count is None or number < self.count:
            if number == self.fail_after:
                raise RuntimeError("the store went away")
            with self.lock:
                self.produced += 1
            yield [number]
            number += 1

    def wait_for(self, produced: int) -> None:
        deadline = time.monotonic() + 5
        while self.produced < produced:
            assert time.monotonic() < deadline, f"only {self.produced} pages produced"
            time.sleep(0.001)


def test_read_ahead_keeps_the_order_and_fetches_one_page_ahead_at_most() -> None:
    source = Pages(count=4)
    pages = _read_ahead(iter(source))

    assert next(pages) == [0]
    source.wait_for(2)  # the next page is fetched while the caller works on this one
    time.sleep(0.05)
    assert source.produced == 2, "never more than one page waits unread"
    assert list(pages) == [[1], [2], [3]]


def test_read_ahead_raises_the_listings_error_after_the_pages_before_it() -> None:
    pages = _read_ahead(iter(Pages(count=None, fail_after=2)))

    assert [next(pages), next(pages)] == [[0], [1]]
    with pytest.raises(RuntimeError, match="went away"):
        next(pages)


def test_a_caller_that_stops_early_stops_the_listing() -> None:
    source = Pages(count=None)
    pages = _read_ahead(iter(source))

    assert next(pages) == [0]
    pages.close()
    time.sleep(0.05)
    assert source.produced <= 2
