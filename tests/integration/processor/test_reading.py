"""One Spark pass over a batch of awkwardly named files: every file keeps its identity and ends
with the rows read from it, an empty verdict, or its reason; none fails its neighbours. Each
test runs twice: with the files named one by one, and with every folder of the batch listed
whole (as `FolderSizer` may choose), beside files of other batches that must not be read."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autoloader_processor.fetching import Fetcher
from autoloader_processor.folders import by_folder
from autoloader_processor.reading import INGESTED_AT, SOURCE_FILE, BatchReader
from shared.settings import S3Settings
from shared.spec import IngestionSpec
from tests.integration.processor.conftest import BUCKET, Landing, fetched_batches

pytestmark = pytest.mark.integration

AWKWARD = [
    "file 3.json",
    "100% done.json",
    "hash#1.json",
    "what?.json",
    "emoji 🚀.json",
    "brackets [1] (3).json",
    "braces {a,b}.json",
    "star*.json",
    "quote'apos.json",
    'double"quote.json',
    "a+b.json",
    "a%20b.json",
    "semi;comma,amp&eq=tilde~.json",
    unicodedata.normalize("NFC", "Ärger.json"),
    unicodedata.normalize("NFD", "Ärger.json"),
    "dt=2026-11-22/part-0.json",
    "dt=2026-11-22/hour=01/part-0.json",
    "deep/er/still deeper/x.json",
    "colon:x.json",
]


READS = ["file by file", "through folders", "fetched"]


def folders_of(how: str, sizes: dict[str, int]) -> list[str]:
    return sorted(by_folder(list(sizes))) if how == "through folders" else []


def reader_for(
    how: str, spark: Any, spec: IngestionSpec, sizes: dict[str, int], s3_settings: S3Settings
) -> BatchReader:
    """The batch's reader as `how` reads it: fetched into the processor when it takes it."""
    fetcher = Fetcher(s3_settings, 1 << 20) if how == "fetched" else None
    return BatchReader(spark, spec, sizes, folders=folders_of(how, sizes), fetcher=fetcher)


def put_neighbours(s3: Any, landing: Landing, names: list[str]) -> None:
    """Files beside the batch's, in its folders, that are not the batch's: one that would fail
    the read if Spark read it, and one whose name decodes to a batch file's if `+` were a space."""
    for folder in {n.rpartition("/")[0] for n in names}:
        inside = f"{folder}/" if folder else ""
        put(s3, landing, f"{inside}not-gzip.json.gz", b"Spark fails to read this")
        put(s3, landing, f"{inside}a b.json", lines("not in the batch", 5))


def put(s3: Any, landing: Landing, name: str, body: bytes) -> tuple[str, int]:
    s3.put_object(Bucket=BUCKET, Key=f"{landing.prefix}/{name}", Body=body)
    return landing.path(name), len(body)


def lines(name: str, rows: int) -> bytes:
    return "\n".join(json.dumps({"name": name, "row": r}) for r in range(rows)).encode()


@pytest.mark.parametrize("how", READS)
def test_every_awkward_key_is_read_with_its_own_rows(
    s3: Any, spark: Any, landing: Landing, how: str, s3_settings: S3Settings
) -> None:
    sizes = dict(put(s3, landing, n, lines(n, i + 1)) for i, n in enumerate(AWKWARD))
    put_neighbours(s3, landing, AWKWARD)
    reader = reader_for(how, spark, landing.spec, sizes, s3_settings)
    fetched = fetched_batches("fetched")
    try:
        began = datetime.now(UTC)
        read = reader.read()
        assert read.failed == {}
        assert read.folders == folders_of(how, sizes)  # not read again file by file
        assert read.records == {landing.path(n): i + 1 for i, n in enumerate(AWKWARD)}
        assert read.frame is not None
        rows = read.frame.groupBy(SOURCE_FILE, INGESTED_AT).count().collect()
        assert {row[SOURCE_FILE]: row["count"] for row in rows} == read.records
        ingested_at = {row[INGESTED_AT].astimezone(UTC) for row in rows}
        assert len(ingested_at) == 1  # one time for the whole batch
        assert began <= ingested_at.pop() <= datetime.now(UTC)
        assert "dt" not in read.frame.columns and "hour" not in read.frame.columns
        assert fetched_batches("fetched") - fetched == (how == "fetched")
    finally:
        reader.release()


@pytest.mark.parametrize("how", READS)
def test_bad_empty_and_hidden_files_are_judged_alone_and_the_rest_land(
    s3: Any, spark: Any, landing: Landing, how: str, s3_settings: S3Settings
) -> None:
    gzip_spec = IngestionSpec.model_validate(
        {**landing.spec.model_dump(mode="json", by_alias=True), "format": {"type": "json"}}
    )
    sizes = dict(
        [
            put(s3, landing, "good.json", lines("good", 4)),
            put(s3, landing, "k=v/good.json", lines("kv", 2)),
            put(s3, landing, "empty.json", b""),
            put(s3, landing, "blank.json", b"\n  \n\t\n"),
            put(s3, landing, "garbage.json", b"\x00\x01 not json at all\nnor this\n"),
            put(s3, landing, "broken.json.gz", b"this is not gzip"),
            put(s3, landing, "_hidden.json", lines("hidden", 2)),
            put(s3, landing, "fine.json.gz", gzip.compress(lines("gz", 3))),
        ]
    )
    reader = reader_for(how, spark, gzip_spec, sizes, s3_settings)
    try:
        read = reader.read()
    finally:
        reader.release()
    path = landing.path
    assert read.folders == []  # a blank file with bytes, and a broken one: read file by file
    assert read.records == {
        path("good.json"): 4,
        path("k=v/good.json"): 2,
        path("fine.json.gz"): 3,
        path("empty.json"): 0,
        path("blank.json"): 0,
    }
    assert set(read.failed) == {path("garbage.json"), path("broken.json.gz"), path("_hidden.json")}
    assert "parsed" in read.failed[path("garbage.json")]
    assert "unreadable" in read.failed[path("broken.json.gz")]
    assert "rename" in read.failed[path("_hidden.json")]


def generated_code(frame: Any) -> list[str]:
    """The Java code Spark generates for the frame's stages, without the plans it prints."""
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        frame.explain("codegen")
    return [line for line in shown.getvalue().splitlines() if re.match(r"/\* *\d+ \*/", line)]


def test_batches_of_one_shape_share_their_generated_code(
    s3: Any, spark: Any, landing: Landing
) -> None:
    """Spark compiles generated code once per text. A batch's own value written into the code
    (a timestamp literal is) would compile every batch's write again, on a busy server."""
    codes = []
    for batch in ("one", "two"):
        sizes = dict(put(s3, landing, f"{batch}/{i}.json", lines(batch, 3)) for i in range(3))
        reader = BatchReader(spark, landing.spec, sizes)
        try:
            read = reader.read()
            assert read.frame is not None and read.failed == {}
            codes.append(generated_code(read.frame))
        finally:
            reader.release()
    assert codes[0], "no generated code found in the plan's explanation"
    assert codes[0] == codes[1]


OBJECT = '{"x": 1.50, "y": [1e2]}'
UNTYPED = {  # format -> the file, each value spelt as a typed read (or a rewrite) would change it
    "json": f'{{"zip": "007", "n": 1.50, "e": 1e2, "ok": true, "o": {OBJECT}}}\n{{"zip": "010"}}\n'
    "not json at all\n",
    "json multiline": f'[{{"zip": "007", "n": 1.50, "e": 1e2, "ok": true, "o": {OBJECT}}},\n'
    ' {"zip": "010"}]\n',
    "csv": "zip,n,e,ok\n007,1.50,1e2,true\n010,,,\n",
}


@pytest.mark.parametrize("kind", UNTYPED)
def test_without_inference_every_column_is_the_text_the_file_holds(
    s3: Any, spark: Any, landing: Landing, kind: str
) -> None:
    """`schema.inference: none` keeps ZIP codes' zeros and numbers' spelling: each column is a
    string as the file writes it, an object its JSON as written; a line that is not JSON is
    rescued."""
    name = f"untyped.{kind.split()[0]}"
    fmt = {"type": kind.split()[0], "multiline": "multiline" in kind}
    spec = IngestionSpec.model_validate(
        {
            **landing.spec.model_dump(mode="json", by_alias=True),
            "format": fmt | {"schema": {"inference": "none"}},
        }
    )
    rescued = spec.format.schema_.rescued_data_column
    sizes = dict([put(s3, landing, name, UNTYPED[kind].encode())])
    reader = BatchReader(spark, spec, sizes)
    try:
        read = reader.read()
        assert read.failed == {}
        assert read.records == {landing.path(name): 3 if kind == "json" else 2}
        assert read.frame is not None
        data = {f.name: f.dataType.simpleString() for f in read.frame.schema.fields}
        assert data.pop(SOURCE_FILE) == "string" and data.pop(INGESTED_AT) == "timestamp"
        assert set(data.values()) == {"string"}, data
        rows = [r.asDict() for r in read.frame.drop(SOURCE_FILE, INGESTED_AT).collect()]
    finally:
        reader.release()
    by_zip = {r["zip"]: r for r in rows}
    assert (by_zip["007"]["n"], by_zip["007"]["e"], by_zip["007"]["ok"]) == ("1.50", "1e2", "true")
    assert (by_zip["010"]["n"], by_zip["010"]["e"], by_zip["010"]["ok"]) == (None, None, None)
    if kind != "csv":
        assert by_zip["007"]["o"] == OBJECT
    if kind == "json":
        assert by_zip[None][rescued] == "not json at all"


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_a_file_named_against_the_compression_fails_instead_of_landing_garbage(
    s3: Any, spark: Any, landing: Landing, compression: str
) -> None:
    """Spark picks the codec by the name's extension: read as CSV, a gzip file not named .gz
    would land its compressed bytes as a row. The ingestion's compression is checked first."""
    spec = IngestionSpec.model_validate(
        {
            **landing.spec.model_dump(mode="json", by_alias=True),
            "format": {"type": "csv", "compression": compression},
        }
    )
    table = b"id,name\n1,a\n2,b\n"
    body = gzip.compress(table) if compression == "gzip" else table
    fits, clashes = ("x.csv.gz", "y.csv") if compression == "gzip" else ("x.csv", "y.csv.gz")
    sizes = dict([put(s3, landing, fits, body), put(s3, landing, clashes, gzip.compress(table))])
    reader = BatchReader(spark, spec, sizes)
    try:
        read = reader.read()
    finally:
        reader.release()
    assert read.records == {landing.path(fits): 2}
    assert list(read.failed) == [landing.path(clashes)]
    assert f"format.compression is '{compression}'" in read.failed[landing.path(clashes)]


def with_format(landing: Landing, fmt: dict[str, Any]) -> IngestionSpec:
    return IngestionSpec.model_validate(
        {**landing.spec.model_dump(mode="json", by_alias=True), "format": fmt}
    )


def rows_by_file(
    spark: Any, spec: IngestionSpec, sizes: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """The batch read, which must land every file, as each file's one row."""
    reader = BatchReader(spark, spec, sizes)
    try:
        read = reader.read()
        assert read.failed == {} and read.records == dict.fromkeys(sizes, 1)
        assert read.frame is not None
        return {r[SOURCE_FILE]: r.asDict() for r in read.frame.collect()}
    finally:
        reader.release()


def test_csv_files_with_other_headers_land_by_column_name(
    s3: Any, spark: Any, landing: Landing
) -> None:
    """Spark takes one file's header for a whole read and the others' values by position:
    `name,id` would land the name as the id. Files are matched by their own headers (in any
    case), each column typed across the files (`1` beside `X2` is text as written, a 20-digit
    id a decimal), a file of only a header adds no rows and types nothing, and a header
    Spark must rename (`A,a`) still lands."""
    files = {
        "one.csv": b"id,name,code,price\n1,alice,1,1.50\n",
        "two.csv": b"name,ID,code,price\nbob,18446744073709551615,X2,n/a\n",
        "three.csv": b"id,name,extra,code\n3,carol,x,3\n",
        "twin.csv": b"A,a\n4,5\n",
    }
    sizes = dict(put(s3, landing, name, body) for name, body in files.items())
    sizes.update([put(s3, landing, "only a header.csv", b"code,name,id\n")])
    spec = with_format(landing, {"type": "csv", "header": True})
    reader = BatchReader(spark, spec, sizes)
    try:
        read = reader.read()
        assert read.failed == {} and read.frame is not None
        types = {f.name: f.dataType.simpleString() for f in read.frame.schema.fields}
        rows = {r[SOURCE_FILE]: r.asDict() for r in read.frame.collect()}
    finally:
        reader.release()
    assert read.records == {p: 0 if "header" in p else 1 for p in sizes}
    got = {name: rows[landing.path(name)] for name in files}
    assert [(got[n]["id"], got[n]["name"], got[n]["code"], got[n]["price"]) for n in files][:3] == [
        (1, "alice", "1", "1.50"),
        (18446744073709551615, "bob", "X2", "n/a"),
        (3, "carol", "3", None),
    ]
    # typed across the files: every digit kept, text as the file spells it
    assert (types["id"], types["code"], types["price"]) == ("decimal(20,0)", "string", "string")
    assert (got["three.csv"]["extra"], got["one.csv"]["extra"]) == ("x", None)
    assert (got["twin.csv"]["A0"], got["twin.csv"]["a1"]) == (4, 5)


def test_parquet_files_with_other_columns_keep_every_column(
    s3: Any, spark: Any, landing: Landing
) -> None:
    """Spark reads Parquet with one file's columns unless told to merge them: a column only
    some files have would be dropped, and those files still counted as landed."""
    tables: dict[str, dict[str, Any]] = {
        "one.parquet": {"id": 1},
        "two.parquet": {"extra": "x", "id": 2},
    }
    sizes = dict(put(s3, landing, name, parquet([row])) for name, row in tables.items())
    rows = rows_by_file(spark, with_format(landing, {"type": "parquet"}), sizes)
    got = [(rows[landing.path(n)]["id"], rows[landing.path(n)]["extra"]) for n in tables]
    assert got == [(1, None), (2, "x")]


def parquet(rows: list[dict[str, Any]]) -> bytes:
    return parquet_table(pa.Table.from_pylist(rows))


def test_a_key_spelt_in_another_case_is_rescued_not_lost(
    s3: Any, spark: Any, landing: Landing
) -> None:
    """Spark's columns ignore case and its JSON parser does not: a value under `a` beside a
    column `A`, at any depth, would be left null. The spelling most lines use is the
    column; a line with a value under another keeps its whole text in the rescued column
    (and its file lands, even when that is all it has); a key spelt otherwise whose value
    is null loses nothing."""
    spelt_otherwise = {
        "top": '{"a": 2, "b": "top"}',
        "nested": '{"o": {"x": 2}, "b": "nested"}',
        "in an array": '{"l": [{"Q": 1}, {"q": 2}], "b": "in an array"}',
    }
    fits = ['{"A": 1, "o": {"X": 1}, "l": [{"Q": 1}], "b": "fits"}', '{"B": null, "b": "null"}']
    fits.append('{"A": 3, "o": {"X": 3}, "l": [{"Q": 3}], "b": "most"}')
    stray = '{"B": 4}'
    sizes = dict(
        [
            put(s3, landing, "case.json", "\n".join([*fits, *spelt_otherwise.values()]).encode()),
            put(s3, landing, "stray.json", stray.encode()),
        ]
    )
    reader = BatchReader(spark, landing.spec, sizes)
    try:
        read = reader.read()
        assert read.failed == {}
        assert read.records == {landing.path("case.json"): 6, landing.path("stray.json"): 1}
        assert read.frame is not None
        rows = {r["b"]: r.asDict() for r in read.frame.collect()}
    finally:
        reader.release()
    rescued = landing.spec.format.schema_.rescued_data_column
    assert {b: rows[b][rescued] for b in spelt_otherwise} == spelt_otherwise
    assert (rows["fits"]["A"], rows["fits"][rescued], rows["null"][rescued]) == (1, None, None)
    assert rows[None][rescued] == stray


@pytest.mark.parametrize("kind", ["multiline", "untyped lines"])
def test_spark_json_reader_fails_the_file_that_spells_a_key_otherwise(
    s3: Any, spark: Any, landing: Landing, kind: str
) -> None:
    """Spark's JSON reader has no line to rescue: the spelling most records use is the
    column, a file with a record under another fails with the key named, the others land.
    Untyped, a nested object is its own text as written, so only top-level names count."""
    fmt: dict[str, Any] = {"type": "json", "multiline": kind == "multiline"}
    if kind == "untyped lines":
        fmt["schema"] = {"inference": "none"}
    records = {
        "fits.json": {"o": {"x": 1}, "n": 1},
        "also fits.json": {"o": {"x": 2}, "n": 2},
        "nested otherwise.json": {"o": {"X": 3}, "n": 3},
        "otherwise.json": {"O": {"x": 4}, "n": 4},
    }
    sizes = dict(
        put(s3, landing, name, json.dumps([record] if kind == "multiline" else record).encode())
        for name, record in records.items()
    )
    reader = BatchReader(spark, with_format(landing, fmt), sizes)
    try:
        read = reader.read()
        assert read.frame is not None
        landed = {r[SOURCE_FILE]: r["o"] for r in read.frame.collect()}
    finally:
        reader.release()
    failing = (
        ["otherwise.json"]
        if kind == "untyped lines"
        else ["nested otherwise.json", "otherwise.json"]
    )
    assert sorted(read.failed) == sorted(landing.path(n) for n in failing)
    assert "the key 'O', which differs only in case" in read.failed[landing.path("otherwise.json")]
    if kind == "untyped lines":
        assert json.loads(landed[landing.path("nested otherwise.json")]) == {"X": 3}
    else:
        reason = read.failed[landing.path("nested otherwise.json")]
        assert "the key 'o.X', which differs only in case" in reason


def test_many_keys_spelt_two_ways_in_one_batch_do_not_fail_it(
    s3: Any, spark: Any, landing: Landing
) -> None:
    """Sixty twins made one condition per twin, nested in a plan too deep to send."""
    lower = {f"k{i}": i for i in range(60)}
    upper = {f"K{i}": i for i in range(60)}
    sizes = dict(
        put(s3, landing, name, json.dumps(record).encode())
        for name, record in {"lower.json": lower, "upper.json": upper, "n.json": {"n": 1}}.items()
    )
    reader = BatchReader(spark, landing.spec, sizes)
    try:
        read = reader.read()
        assert read.frame is not None
        rescued = landing.spec.format.schema_.rescued_data_column
        kept = [r[SOURCE_FILE] for r in read.frame.collect() if r[rescued] is not None]
    finally:
        reader.release()
    assert read.failed == {} and read.records == dict.fromkeys(sizes, 1)
    assert len(kept) == 1 and kept[0] in (landing.path("lower.json"), landing.path("upper.json"))


def test_columns_named_like_spark_internals_are_data(s3: Any, spark: Any, landing: Landing) -> None:
    """A Parquet column `_metadata` hid Spark's own: rows were credited to the file its
    `file_path` named. Each file keeps its own rows, and the column lands as data."""
    paths = [landing.path("a.parquet"), landing.path("b.parquet")]
    rows = [
        {"_metadata": {"file_path": paths[1]}, "n": 1},
        {"_metadata": {"file_path": "x"}, "n": 2},
    ]
    sizes = dict(
        put(s3, landing, p.rsplit("/", 1)[1], parquet([r]))
        for p, r in zip(paths, rows, strict=True)
    )
    landed = rows_by_file(spark, with_format(landing, {"type": "parquet"}), sizes)
    assert [(landed[p]["n"], landed[p]["_metadata"]["file_path"]) for p in paths] == [
        (1, paths[1]),
        (2, "x"),
    ]


@pytest.mark.parametrize("multiline", [False, True])
def test_keys_with_dots_and_backticks_are_columns_of_their_own(
    s3: Any, spark: Any, landing: Landing, multiline: bool
) -> None:
    """`a.b` is one column, not field `b` of `a`, and a backtick is part of a name: read by
    name as they are, they land beside their twins' verdicts instead of failing the batch."""
    records = {
        "dots.json": {"a.b": 1, "c`d": 2, "n": 1},
        "more.json": {"a.b": 3, "c`d": 4, "n": 2},
        "twin.json": {"A.b": 5, "n": 3},
    }
    sizes = dict(
        put(s3, landing, name, json.dumps([record] if multiline else record).encode())
        for name, record in records.items()
    )
    reader = BatchReader(
        spark, with_format(landing, {"type": "json", "multiline": multiline}), sizes
    )
    try:
        read = reader.read()
        assert read.frame is not None
        rows = sorted((r["n"], r["a.b"], r["c`d"]) for r in read.frame.collect())
    finally:
        reader.release()
    twin = landing.path("twin.json")
    if multiline:  # Spark's JSON reader: the twin's file fails
        assert list(read.failed) == [twin] and "the key 'A.b'" in read.failed[twin]
        assert rows == [(1, 1, 2), (2, 3, 4)]
    else:  # one pass: the twin's line is rescued
        assert read.failed == {} and read.records[twin] == 1
        assert rows == [(1, 1, 2), (2, 3, 4), (3, None, None)]


@pytest.mark.parametrize("how", READS)
def test_lines_without_a_struct_form_go_to_spark_json_reader_file_by_file(
    s3: Any, spark: Any, landing: Landing, how: str, s3_settings: S3Settings
) -> None:
    """Lines that are arrays of objects have no struct form for the one-pass read: Spark's
    JSON reader takes them, and it is given the files, never their folders, so a batch
    that was to list its folders says it did not."""
    sizes = dict([put(s3, landing, "arrays.json", b'[{"a": 1}, {"a": 2}]\n[{"a": 3}]\n')])
    reader = reader_for(how, spark, landing.spec, sizes, s3_settings)
    try:
        read = reader.read()
        assert read.frame is not None
        values = sorted(r["a"] for r in read.frame.collect())
    finally:
        reader.release()
    assert (read.failed, read.records, read.folders) == ({}, {landing.path("arrays.json"): 3}, [])
    assert values == [1, 2, 3]


@pytest.mark.parametrize("multiline", [False, True])
def test_a_whole_number_beyond_bigint_keeps_every_digit(
    s3: Any, spark: Any, landing: Landing, multiline: bool
) -> None:
    """An unsigned 64-bit id is typed as the decimal that holds it, by the one-pass read as
    by Spark's JSON reader; a double would land 18446744073709551615 as ...551616."""
    records = [{"id": 18446744073709551615, "n": 1.5}, {"id": 1, "n": 2}]
    body = json.dumps(records) if multiline else "\n".join(map(json.dumps, records))
    sizes = dict([put(s3, landing, "ids.json", body.encode())])
    spec = with_format(landing, {"type": "json", "multiline": multiline})
    reader = BatchReader(spark, spec, sizes)
    try:
        read = reader.read()
        assert read.frame is not None
        types = {f.name: f.dataType.simpleString() for f in read.frame.schema.fields}
        rows = sorted((r["id"], r["n"]) for r in read.frame.collect())
    finally:
        reader.release()
    assert (types["id"], types["n"]) == ("decimal(20,0)", "double")
    assert rows == [(Decimal(1), 2.0), (Decimal("18446744073709551615"), 1.5)]


@pytest.mark.parametrize("kind", ["json", "multiline", "csv", "parquet"])
def test_a_column_autoloader_writes_itself_is_never_overwritten(
    s3: Any, spark: Any, landing: Landing, kind: str
) -> None:
    """Data exported from an Autoloader table carries `_source_file` and `_ingested_at`:
    overwritten, their values would be lost, and a key named as the rescued column made
    the one-pass read ambiguous. A JSON line holding one is rescued whole; another
    format's file fails with the column named, beside files that land."""
    record = {"_source_file": "s3://elsewhere/x.json", "_rescued_data": "r", "a": 1}
    plain = {"a": 2}

    def encode(r: dict[str, Any]) -> bytes:
        if kind == "parquet":
            return parquet([r])
        if kind == "csv":
            return (",".join(r) + "\n" + ",".join(map(str, r.values())) + "\n").encode()
        return json.dumps([r] if kind == "multiline" else r).encode()

    fmt = {"type": "json" if kind == "multiline" else kind, "multiline": kind == "multiline"}
    fmt |= {"header": True} if kind == "csv" else {}
    sizes = dict(
        [put(s3, landing, "exported", encode(record)), put(s3, landing, "plain", encode(plain))]
    )
    reader = BatchReader(spark, with_format(landing, fmt), sizes)
    try:
        read = reader.read()
        assert read.frame is not None
        rows = {r[SOURCE_FILE]: r.asDict() for r in read.frame.collect()}
    finally:
        reader.release()
    exported, rescued = landing.path("exported"), landing.spec.format.schema_.rescued_data_column
    assert rows[landing.path("plain")]["a"] == 2
    if kind == "json":
        assert read.failed == {} and rows[exported][rescued] == json.dumps(record)
    else:
        assert list(read.failed) == [exported] and exported not in rows
        assert "'_source_file'" in read.failed[exported]
        assert "which Autoloader writes itself" in read.failed[exported]


def test_parquet_files_that_type_a_column_differently_land_in_its_widest_type(
    s3: Any, spark: Any, landing: Landing
) -> None:
    """pandas writes int64, and float64 once a column has a gap; other writers int32. Spark
    fails a read of such files, however its schemas are merged, and with it every file of
    the batch. Each schema is read on its own, and each column cast to the type that holds
    all of them."""
    tables = {
        "long.parquet": pa.table({"v": pa.array([1], pa.int64()), "s": pa.array([7], pa.int64())}),
        "double.parquet": pa.table({"v": pa.array([1.5], pa.float64())}),
        "int.parquet": pa.table({"v": pa.array([3], pa.int32()), "s": pa.array(["x"])}),
    }
    sizes = dict(put(s3, landing, name, parquet_table(table)) for name, table in tables.items())
    reader = BatchReader(spark, with_format(landing, {"type": "parquet"}), sizes)
    try:
        read = reader.read()
        assert read.frame is not None
        types = {f.name: f.dataType.simpleString() for f in read.frame.schema.fields}
        rows = {r[SOURCE_FILE]: (r["v"], r["s"]) for r in read.frame.collect()}
    finally:
        reader.release()
    assert read.failed == {} and read.records == dict.fromkeys(sizes, 1)
    assert (types["v"], types["s"]) == ("double", "string")
    assert [rows[landing.path(n)] for n in tables] == [(1.0, "7"), (1.5, None), (3.0, "x")]


def parquet_table(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()
