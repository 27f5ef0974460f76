"""Reading a batch of files with Spark Connect, each file keeping the one identity it has in
file state, whatever its key looks like.

Spark names a file by a URL-encoded Hadoop path, treats `{}[]*?\\` in a path as a glob and
infers partition columns from `key=value` folders. So the reader escapes glob characters,
turns partition inference off (`recursiveFileLookup`), and maps each file Spark names back to
the batch's own path before anything is counted or written; a file Spark names that is not in
the batch is an error, never a guess. Every file of the batch ends with records read from it,
an empty-file verdict checked on its own, or the reason it failed.

A JSON-lines batch may list some of its folders whole instead of naming their files (chosen
by `folders.FolderSizer`), with a filter on Spark's decoded name for each file that keeps the
folder's other files from being read. If that read fails, or misses a file that has bytes, the
batch is read again file by file.

Columns are typed from their values unless the ingestion's `schema.inference` is 'none': then
JSON goes through Spark's JSON reader with every inferred column a string, and CSV is read
without inferring. Spark picks a file's codec by its name, so a file named against the
ingestion's `format.compression` fails with the reason instead of being read as garbage.

Every read of a source carries the ingestion's own S3 credentials as read options, which
Spark merges into the Hadoop configuration of that read only. Hadoop caches one FileSystem per
scheme, bucket and user, built from the configuration of whoever asked first: a read of
`s3a://bucket/` would reuse a filesystem holding another ingestion's keys. So each set of
credentials reaches S3A through a URI scheme of its own (`SourceAccess`), named by a keyed
digest of those credentials: reads with the same keys share one cached filesystem, and no read
ever gets a filesystem built with other keys. The service's own keys are set on the Spark
server for the warehouse bucket alone; a file in that bucket is never read as a source. See
docs/storage-access.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, reduce
from posixpath import basename
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import unquote, urlparse

from prometheus_client import Counter
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    DataType,
    DecimalType,
    DoubleType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from autoloader_processor import json_lines, spellings
from autoloader_processor.engine import first_line, spark_unreachable
from shared import errors
from shared.spec import FormatSpec, IngestionSpec, S3Credentials

if TYPE_CHECKING:
    from autoloader_processor.fetching import Fetcher

log = logging.getLogger(__name__)
T = TypeVar("T")

FOLDER_READS = Counter(
    "autoloader_folder_reads_total",
    "Batches that listed folders whole instead of looking each file up: 'listed', or "
    "'fell_back' when the batch was read again file by file",
    ["outcome"],
)

SOURCE_FILE = "_source_file"
INGESTED_AT = "_ingested_at"
# Spark's name for the file, until it is mapped back: a column of the process's own naming,
# which no file's column can be.
SPARK_FILE = f"__spark_file_{secrets.token_hex(6)}"
GLOB = re.compile(r"([{}\[\]*?\\])")
S3A = "org.apache.hadoop.fs.s3a."
# A batch names its files, and Spark looks each one up before reading (a HEAD per file), above
# 32 paths in a job of this many tasks: Spark's default, a task per file, costs more than the
# lookups (500 files: 3 s, against 1 s in 16 tasks).
LISTING_TASKS = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
S3_SCHEME = re.compile(r"s3a?(-[0-9a-f]+)?://")
# The landing rows are written in one task per this many bytes of source files (Spark's own
# read split): a batch of small files makes a few data files, not one per read task.
WRITE_TASK_BYTES = 128 * 1024 * 1024
# What Hadoop's codec factory decompresses by (its default codecs' extensions).
CODEC_EXTENSIONS = (".gz", ".bz2", ".deflate", ".zst", ".lz4", ".snappy")
# Spark's errors when Parquet files type one column differently.
TYPES_DIFFER = ("CANNOT_MERGE_SCHEMAS", "PARQUET_COLUMN_DATA_TYPE_MISMATCH")
# Spark's errors when a CSV file's header names other columns than the read's schema.
HEADERS_DIFFER = (
    "CSV header does not conform to the schema",
    "Number of column in CSV header is not equal to number of fields in the schema",
)
ACCESS_DENIED = re.compile(r"AccessDenied|403 Forbidden|Status Code: 403|InvalidAccessKeyId")


@dataclass(frozen=True)
class SourceAccess:
    """How Spark reads the files of one set of source credentials: under a URI scheme of its
    own, with the read options that carry those credentials."""

    scheme: str
    options: dict[str, str]

    def path(self, path: str) -> str:
        """The file as Spark must be given it: under this scheme, glob characters escaped."""
        if path.startswith(("s3://", "s3a://")):
            path = f"{self.scheme}://{path.split('://', 1)[1]}"
        return GLOB.sub(r"\\\1", path)


def source_access(credentials: S3Credentials | None, scheme_key: bytes) -> SourceAccess:
    """Read options with the source's own credentials and nothing else, under a scheme named
    by their digest keyed with `scheme_key` (the scheme shows in Spark's plans and logs).

    Without credentials the read is anonymous (public buckets only): neither the service's
    keys nor the server's default chain (its IAM role) ever read a source. A session token
    selects S3A's provider for STS credentials."""
    provider = "fs.s3a.aws.credentials.provider"
    options: dict[str, str]
    if credentials is None:
        options = {provider: S3A + "AnonymousAWSCredentialsProvider"}
    else:
        options = {
            "fs.s3a.access.key": credentials.aws_access_key_id,
            "fs.s3a.secret.key": credentials.aws_secret_access_key.get_secret_value(),
            provider: S3A + "SimpleAWSCredentialsProvider",
        }
        if credentials.aws_region:
            options["fs.s3a.endpoint.region"] = credentials.aws_region
        if credentials.aws_session_token is not None:
            options[provider] = S3A + "TemporaryAWSCredentialsProvider"
            options["fs.s3a.session.token"] = credentials.aws_session_token.get_secret_value()
    canonical = json.dumps(options, sort_keys=True).encode()
    scheme = "s3a-" + hmac.new(scheme_key, canonical, hashlib.sha256).hexdigest()[:20]
    return SourceAccess(scheme, options | {f"fs.{scheme}.impl": S3A + "S3AFileSystem"})


@cache
def process_scheme_key() -> bytes:
    """A key of this process's own, for callers without the service's credentials key."""
    return secrets.token_bytes(32)


class PerCredentials(Generic[T]):
    """Clients of sources, one per set of credentials (keyed by `source_access`'s digest of
    them), the least recently used dropped beyond `size`; shared by the batches' threads."""

    def __init__(self, size: int):
        self.size = size
        self.clients: OrderedDict[str, T] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str, make: Callable[[], T]) -> T:
        with self.lock:
            client = self.clients.pop(key, None)
            if client is None:
                client = make()
            self.clients[key] = client
            while len(self.clients) > self.size:
                self.clients.popitem(last=False)
            return client


class BatchIdentityError(RuntimeError):
    """Spark returned rows for a file that is not in the batch."""


def _identity(path: str) -> str:
    """What a batch path and Spark's name for the same file have in common."""
    if S3_SCHEME.match(path):
        return "s3://" + path.split("://", 1)[1]
    return "file://" + path.split(":", 1)[1].lstrip("/")


def spark_identity(spark_file: str) -> str:
    """Spark's `_metadata.file_path` percent-encodes what a URI may not hold; `+` is literal."""
    return _identity(unquote(spark_file))


def _bucket(path: str) -> str | None:
    return urlparse(path).netloc if path.startswith(("s3://", "s3a://")) else None


def hidden_by_spark(path: str) -> bool:
    """Spark's file sources silently skip names starting with `_` or `.`."""
    return basename(path).startswith(("_", "."))


def compression_refusal(path: str, fmt: FormatSpec) -> str | None:
    """Why a file cannot be read as `format.compression` says, if it cannot: Spark's text
    readers pick the codec by the name's extension (in any case), whatever the ingestion says.
    Parquet's compression is inside the file."""
    name = basename(path)
    if fmt.type == "parquet" or fmt.compression == "auto":
        return None
    if fmt.compression == "gzip" and not name.lower().endswith(".gz"):
        return (
            "format.compression is 'gzip', but Spark decompresses only names ending '.gz': "
            "rename the object, or set compression to 'auto'"
        )
    if fmt.compression == "none" and name.lower().endswith(CODEC_EXTENSIONS):
        return (
            f"format.compression is 'none', but Spark decompresses names ending "
            f"'.{name.rpartition('.')[2]}': rename the object, or set compression to 'auto'"
        )
    return None


@dataclass
class BatchRead:
    frame: DataFrame | None = None  # the rows to land, `_source_file` as in file state
    records: dict[str, int] = field(default_factory=dict)  # by batch path
    failed: dict[str, str] = field(default_factory=dict)  # by batch path: the reason
    folders: list[str] = field(default_factory=list)  # listed whole (else file by file)


def reader(spark: SparkSession, fmt: FormatSpec, options: Mapping[str, str]) -> Any:
    reader = spark.read.format(fmt.type).options(**options).option("recursiveFileLookup", True)
    if fmt.type == "json":
        reader = reader.option("multiLine", fmt.multiline).option("mode", "PERMISSIVE")
        reader = reader.option("columnNameOfCorruptRecord", fmt.schema_.rescued_data_column)
    elif fmt.type == "csv":
        reader = reader.option("header", fmt.header).option("sep", fmt.delimiter)
        reader = reader.option("inferSchema", fmt.typed).option("mode", "PERMISSIVE")
        reader = reader.option("columnNameOfCorruptRecord", fmt.schema_.rescued_data_column)
    elif fmt.type == "parquet":
        reader = reader.option("mergeSchema", True)  # else one file's columns, the rest dropped
    return reader


def _with_file(frame: DataFrame) -> DataFrame:
    """The frame with Spark's name for each row's file, even beside a column of the files'
    own named `_metadata`."""
    return frame.withColumn(SPARK_FILE, frame.metadataColumn("_metadata").getField("file_path"))


def _common_types(schemas: Sequence[StructType]) -> dict[str, DataType]:
    """By name (case aside), the type of each column the schemas type differently: as
    Spark's CSV inference would type the values of every file together. Left to a union,
    `1` beside `X1` would fail the cast."""
    types: dict[str, set[DataType]] = {}
    for schema in schemas:
        for f in schema:
            types.setdefault(f.name.lower(), set()).add(f.dataType)
    return {name: _widest(found) for name, found in types.items() if len(found) > 1}


def _retyped(schema: StructType, common: Mapping[str, DataType]) -> StructType:
    """The group's own columns, in its header's order, each of its common type: Spark then
    parses the text as that type (a column that must be text keeps the file's spelling)."""
    return StructType(
        [StructField(f.name, common.get(f.name.lower(), f.dataType), f.nullable) for f in schema]
    )


def _cast(frame: DataFrame, schema: StructType, common: Mapping[str, DataType]) -> DataFrame:
    """The frame's columns of `schema` that `common` types otherwise, cast to that type."""
    casts = {
        f.name: _as(spellings.column(f.name), f.dataType, common[f.name.lower()])
        for f in schema
        if f.name.lower() in common
    }
    return frame.withColumns(casts) if casts else frame


def _as(column: Column, found: DataType, wanted: DataType) -> Column:
    if isinstance(wanted, StringType) and isinstance(found, StructType | ArrayType | MapType):
        return F.to_json(column)
    return column.cast(wanted)


def _widest(types: set[DataType]) -> DataType:
    """Whole numbers as the narrowest type that holds them all, other numbers as doubles,
    anything else as text."""
    if all(isinstance(t, IntegerType | LongType) for t in types):
        return LongType()
    digits = [_digits(t) for t in types]
    if all(d is not None for d in digits):
        return DecimalType(min(38, max(d for d in digits if d is not None)), 0)
    if all(isinstance(t, IntegerType | LongType | DecimalType | DoubleType) for t in types):
        return DoubleType()
    return StringType()


def _digits(data_type: DataType) -> int | None:
    """The digits a whole-number type holds, or None for any other type."""
    if isinstance(data_type, DecimalType):
        return data_type.precision if data_type.scale == 0 else None
    whole: dict[type[DataType], int] = {IntegerType: 10, LongType: 19}
    return whole.get(type(data_type))


class BatchReader:
    """One Spark pass over the batch, then a look at each file that yielded nothing."""

    def __init__(
        self,
        spark: SparkSession,
        spec: IngestionSpec,
        sizes: dict[str, int],
        warehouse_bucket: str | None = None,
        scheme_key: bytes | None = None,
        folders: Sequence[str] = (),
        fetcher: Fetcher | None = None,
    ):
        self.spark = spark
        self.spec = spec
        self.sizes = sizes  # batch path -> bytes
        self.folders = list(folders)  # `s3://bucket/a/`: listed whole, see `folders.py`
        self.fetcher = fetcher  # fetches small batches into the processor, see `fetching.py`
        self.access = source_access(spec.source.credentials, scheme_key or process_scheme_key())
        self.options = self.access.options
        self.warehouse_bucket = warehouse_bucket
        self.cached: list[DataFrame] = []
        self.spark_names: dict[str, str] = {}  # batch path -> Spark's name for it
        self.refused: dict[str, str] = {}  # file identity -> why it cannot land

    def read(self) -> BatchRead:
        result = BatchRead()
        paths = [p for p in self.sizes if not self._refused(p, result)]
        try:
            folders = [f for f in self.folders if any(p.startswith(f) for p in paths)]
            if through_folders := self._through_folders(paths, folders):
                result.folders = folders
            frame, counts = through_folders or self._count(paths)
        except BatchIdentityError:
            raise
        except Exception as error:
            if spark_unreachable(error):
                raise
            result.failed.update(self._unreadable(paths))
            paths = [p for p in paths if p not in result.failed]
            if not paths:
                return result
            frame, counts = self._count(paths)
        for path in paths:
            total, parsed = counts.get(path, (0, 0))
            if reason := self.refused.get(_identity(path)):
                result.failed[path] = reason
            elif total and not parsed:
                result.failed[path] = f"no {self.spec.format.type} record could be parsed"
            elif total:
                result.records[path] = total
            else:
                self._judge_empty(path, result)
        landing = [p for p in paths if result.records.get(p)]
        if landing:
            result.frame = self._with_source_file(frame, landing)
        return result

    def _refused(self, path: str, result: BatchRead) -> bool:
        if hidden_by_spark(path):
            result.failed[path] = (
                "Spark's file sources skip names that start with '_' or '.': rename the object"
            )
            return True
        if refusal := compression_refusal(path, self.spec.format):
            result.failed[path] = refusal
            return True
        if self.warehouse_bucket and _bucket(path) == self.warehouse_bucket:
            # The server reads this bucket with the service's own keys, whatever the options.
            result.failed[path] = "the warehouse bucket is not a source: access denied"
            return True
        return False

    def _through_folders(
        self, paths: Sequence[str], folders: Sequence[str]
    ) -> tuple[DataFrame, dict[str, tuple[int, int]]] | None:
        """The batch counted with `folders` (each holding some of `paths`, never a refused
        file's alone) listed whole, or None when it must be read file by file: no folders, or
        the read failed, or it missed a file that has bytes (a name Spark spells differently
        from the filter; a file of blanks only, too)."""
        if not folders or not json_lines.readable(self.spec.format):
            return None
        try:
            frame, counts = self._count(paths, folders)
        except BatchIdentityError:
            raise
        except Exception as error:
            if spark_unreachable(error):
                raise
            log.info("the folder read failed, reading file by file: %s", first_line(error))
        else:
            missed = [p for p in paths if p not in counts and self.sizes[p] > 0]
            if not missed:
                FOLDER_READS.labels("listed").inc()
                return frame, counts
            log.info(
                "the folder read missed %d files, e.g. %s: reading file by file",
                len(missed),
                missed[0],
            )
        FOLDER_READS.labels("fell_back").inc()
        self.release()
        self.spark_names.clear()
        return None

    def _count(
        self, paths: Sequence[str], folders: Sequence[str] = ()
    ) -> tuple[DataFrame, dict[str, tuple[int, int]]]:
        """The batch as one frame, and per batch path its rows and how many of them parsed,
        counted in one pass."""
        self.refused.clear()  # what this read of these files finds
        try:
            frame = self._frame(paths, folders)
            rows = self._per_file(frame)
        except Exception as error:
            regroup = self._regrouping(error)
            if regroup is None:
                raise
            self.release()
            frame = regroup(paths)
            rows = self._per_file(frame)
        by_identity = {_identity(p): p for p in paths}
        counts: dict[str, tuple[int, int]] = {}
        for row in rows:
            path = by_identity.get(spark_identity(row[SPARK_FILE]))
            if path is None:
                raise BatchIdentityError(f"Spark read rows from {row[SPARK_FILE]!r}, not in batch")
            counts[path] = (int(row["total"]), int(row["parsed"]))
            self.spark_names[path] = row[SPARK_FILE]
        return frame, counts

    def _per_file(self, frame: DataFrame) -> list[Any]:
        """Per Spark file name, its rows and how many of them parsed. A file with a value in
        a column Autoloader writes itself is refused: it would be overwritten."""
        ours = {SOURCE_FILE, INGESTED_AT}
        if self.spec.format.type == "csv":  # Spark fills a header's column of this name
            ours.add(self.spec.format.schema_.rescued_data_column.lower())
        taken = [c for c in frame.columns if c.lower() in ours]
        holding = F.lit(False)
        if taken:
            holding = F.coalesce(*[spellings.column(c).cast("string") for c in taken]).isNotNull()
        rows = (
            frame.groupBy(SPARK_FILE)
            .agg(
                F.count(F.lit(1)).alias("total"),
                self._parsed(frame).alias("parsed"),
                F.count_if(holding).alias("taken"),
            )
            .collect()
        )
        for row in rows:
            if row["taken"]:
                self.refused[spark_identity(row[SPARK_FILE])] = (
                    f"a record has a value under {' or '.join(map(repr, taken))}, which "
                    f"Autoloader writes itself: rename the key in the file"
                )
        return rows

    def _regrouping(self, error: Exception) -> Callable[[Sequence[str]], DataFrame] | None:
        """How to read files that `error` says do not agree, in groups that each do."""
        if any(marker in str(error) for marker in HEADERS_DIFFER):
            return self._frame_by_header
        if self.spec.format.type == "parquet" and any(m in str(error) for m in TYPES_DIFFER):
            return self._frame_by_schema
        return None

    def _frame_by_schema(self, paths: Sequence[str]) -> DataFrame:
        """Parquet files whose columns' types differ (an int32 beside an int64, a long
        beside a double), each group of one schema read on its own, each column then cast
        to the type all of them hold (`_widest`; an object or array that must become text is
        its JSON). Spark would fail the batch, and every file of it."""
        read = reader(self.spark, self.spec.format, self.options)
        by_schema: dict[str, list[str]] = {}
        schemas: dict[str, StructType] = {}
        for target in (self.access.path(p) for p in paths):
            schema = read.load(target).schema  # its footer
            by_schema.setdefault(schema.json(), []).append(target)
            schemas[schema.json()] = schema
        common = _common_types(list(schemas.values()))
        frames = [
            _cast(_with_file(read.load(targets)), schemas[key], common)
            for key, targets in by_schema.items()
        ]
        return self._union(frames)

    def _union(self, frames: Sequence[DataFrame]) -> DataFrame:
        """The groups' rows as one frame, their columns matched by name, cached."""
        frame = reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames).cache()
        self.cached.append(frame)
        return frame

    def _frame_by_header(self, paths: Sequence[str]) -> DataFrame:
        """CSV files whose headers differ, each group of one header read on its own and the
        groups matched by column name: Spark takes one file's header for the whole read and
        would give the others' values by position (`name,id` landing a name as the id).

        Within a group the header's text is the same in every file, so its columns may be
        taken by position: Spark's names for a header it cannot use as it is (`A,a` becomes
        `A0,a1`, a blank name `_c0`) would not pass its own check of the header."""
        groups = [
            (t, self._spark_reader(t, one_header=True)) for t in self._headers(paths).values()
        ]
        loaded = [(targets, read, read.load(targets)) for targets, read in groups]
        # A file of only a header types every column as text: its group adds no rows (its
        # files are judged empty on their own) and types nothing.
        loaded = [group for group in loaded if not group[2].isEmpty()] or loaded[:1]
        schemas: list[StructType] = [frame.schema for _, _, frame in loaded]
        common = _common_types(schemas)
        frames = [
            _with_file(read.schema(_retyped(schema, common)).load(targets) if common else frame)
            for (targets, read, frame), schema in zip(loaded, schemas, strict=True)
        ]
        return self._union(frames)

    def _headers(self, paths: Sequence[str]) -> dict[str, list[str]]:
        """The files, as Spark must be given them, by their header: each file's first line
        that is not blank (as Spark's CSV reader skips blank lines before the header)."""
        by_identity = {_identity(p): self.access.path(p) for p in paths}
        targets = list(by_identity.values())
        firsts = (
            self.spark.read.format("text")
            .options(**self.options)
            .load(targets)
            .where((F.col("_metadata.file_block_start") == 0) & json_lines.not_blank())
            .select(
                "value",
                F.col("_metadata.file_path").alias("file"),
                F.monotonically_increasing_id().alias("at"),
            )
            .groupBy("file")
            .agg(F.min_by("value", "at").alias("header"))
            .collect()
        )
        grouped: dict[str, list[str]] = {}
        for row in firsts:
            target = by_identity.get(spark_identity(row["file"]))
            if target is None:
                raise BatchIdentityError(f"Spark read a header from {row['file']!r}, not in batch")
            grouped.setdefault(row["header"], []).append(target)
        return grouped

    def _frame(
        self, paths: Sequence[str], folders: Sequence[str] = (), fetch: bool = True
    ) -> DataFrame:
        """The files' rows. `folders` (JSON lines only) are listed whole and their rows kept
        only for `paths`: Spark's other readers would infer a schema from every file listed.
        Without `fetch`, Spark reads the files even when the batch could be fetched."""
        fmt = self.spec.format
        targets = [self.access.path(p) for p in paths]
        if json_lines.readable(self.spec.format):
            lines = None if folders or not fetch else self._fetched(paths)
            if lines is None:
                roots, only = targets, None
                if folders:
                    roots, only = self._folder_roots(paths, folders), self._only(paths)
                lines = json_lines.read_lines(self.spark, roots, SPARK_FILE, self.options, only)
            self.cached.append(lines)
            try:
                rescued = fmt.schema_.rescued_data_column
                taken = (rescued, SOURCE_FILE, INGESTED_AT)
                return json_lines.parse(lines, rescued, SPARK_FILE, taken)
            except json_lines.NotExpressible:
                if folders:
                    raise  # Spark's reader takes the files, not the folders: read file by file
                # Spark's own inference below
        frame = _with_file(self._spark_reader(targets, one_header=len(targets) == 1).load(targets))
        frame = frame.cache()  # counted, then written: read the files from the store once
        self.cached.append(frame)
        return frame

    def _fetched(self, paths: Sequence[str]) -> DataFrame | None:
        """The files' lines fetched into the processor, or None when Spark must read them."""
        sizes = {p: self.sizes[p] for p in paths}
        if self.fetcher is None or not self.fetcher.takes(self.spec.format, sizes):
            return None
        table = self.fetcher.lines(paths, self.spec.source.credentials, SPARK_FILE)
        return None if table is None else json_lines.fetched_lines(self.spark, table, SPARK_FILE)

    def _spark_reader(self, targets: Sequence[str], one_header: bool) -> Any:
        """Spark's reader for the format. Untyped JSON is given a schema of the names Spark
        infers, each a string: Spark's JSON reader then keeps a value's own text (`1.50`, an
        object or array as written). Untyped CSV is read without inferring. CSV files that
        may not share `one_header` have each header checked against the read's columns
        (`_frame_by_header`)."""
        fmt = self.spec.format
        spark_reader = reader(self.spark, fmt, self.options).option("enforceSchema", one_header)
        if fmt.type != "json":
            return spark_reader
        with spellings.case_sensitive(self.spark):
            inferred: StructType = spark_reader.load(targets).schema  # Spark's inference pass
        if not fmt.typed:  # a nested object is its text as written: only its own name counts
            inferred = StructType([StructField(f.name, StringType()) for f in inferred])
        return spark_reader.schema(self._one_spelling_each(inferred, targets))

    def _one_spelling_each(self, inferred: StructType, targets: Sequence[str]) -> StructType:
        """The inferred schema with one spelling of each key that differs only in case (the
        one most records use). A file with a record that has a value under another
        spelling fails: Spark's JSON reader would leave it out of the row."""
        by_file = {
            spellings.key(path): self._files_under(path, targets)
            for path in spellings.twins(inferred)
        }
        split = spellings.split(inferred, {k: sum(files.values()) for k, files in by_file.items()})
        for path in split.others:
            reason = (
                f"a record has a value under the key '{spellings.dotted(path)}', which differs "
                f"only in case from a column of its batch: Spark's columns ignore case, so "
                f"the value would be lost. Spell each key one way"
            )
            self.refused.update(dict.fromkeys(by_file[spellings.key(path)], reason))
        return split.kept

    def _files_under(self, path: StructType, targets: Sequence[str]) -> dict[str, int]:
        """By file identity, its records that have a value at the end of `path`."""
        (top,) = path.fields
        rows = (
            reader(self.spark, self.spec.format, self.options)
            .schema(path)
            .load(list(targets))
            .transform(_with_file)
            .where(spellings.holds_value(spellings.column(top.name), top.dataType))
            .groupBy(F.col(SPARK_FILE).alias("file"))
            .count()
            .collect()
        )
        return {spark_identity(row["file"]): int(row["count"]) for row in rows}

    def _folder_roots(self, paths: Sequence[str], folders: Sequence[str]) -> list[str]:
        """The folders, and the files that are in none of them. A folder inside another is
        left out: the outer one's listing holds it, and a file listed twice is read twice."""
        outer = [f for f in folders if not any(f != o and f.startswith(o) for o in folders)]
        alone = [p for p in paths if not p.startswith(tuple(outer))]
        return [self.access.path(f) for f in outer] + [self.access.path(p) for p in alone]

    def _only(self, paths: Sequence[str]) -> Column:
        """Rows of these files only, by Spark's name for each, decoded (`+` stays literal)."""
        names = [f"{self.access.scheme}://{p.split('://', 1)[1]}" for p in paths]
        decoded = F.url_decode(F.replace(F.col(SPARK_FILE), F.lit("+"), F.lit("%2B")))
        return decoded.isin(names)

    def _parsed(self, frame: DataFrame) -> Column:
        """Rows that are records, not only text that is none: in JSON any row whose rescued
        text, if it has any, is JSON (`{}`, a record rescued whole); in CSV a row with a
        value in any data column."""
        rescued = self.spec.format.schema_.rescued_data_column
        if self.spec.format.type == "parquet" or rescued not in frame.columns:
            return F.count(F.lit(1))
        if self.spec.format.type == "json":  # a record, even `{}`, or one rescued whole
            kept = spellings.column(rescued)
            return F.count(F.when(kept.isNull() | F.try_parse_json(kept).isNotNull(), 1))
        data = [spellings.column(c) for c in frame.columns if c not in (rescued, SPARK_FILE)]
        parsed = F.coalesce(*[c.cast("string") for c in data]).isNotNull() if data else F.lit(False)
        return F.count(F.when(parsed, 1))

    def _unreadable(self, paths: Sequence[str]) -> dict[str, str]:
        """Each file read alone by Spark: the ones it cannot read, with the reason. Never
        fetched: with the store away, each fetch would wait out its retries first."""
        failed = {}
        for path in paths:
            try:
                self._frame([path], fetch=False).limit(1).collect()  # as the batch reads it
            except Exception as error:
                if spark_unreachable(error):
                    raise  # not the file's fault: the batch is released for the outage
                failed[path] = self._reason(error, path)
        return failed

    def _reason(self, error: Exception, path: str) -> str:
        """The tenant's text: a reason, and Spark's error class, with a ref; never Spark's
        message, which names hosts and internal paths. The full text is logged under the ref."""
        kind = self.spec.format.type
        if "QUERY_ONLY_CORRUPT_RECORD_COLUMN" in str(error):  # every line went to the rescue
            return f"no {kind} record could be parsed"
        reason, spark_class = errors.classify(error), errors.spark_error_class(error)
        detail = f"Spark error {spark_class}" if spark_class else None
        if ACCESS_DENIED.search(str(error)) or reason == errors.ACCESS_DENIED:
            reason = errors.ACCESS_DENIED
            detail = f"the ingestion's credentials cannot read the file ({kind})"
        elif reason != errors.NOT_FOUND:
            reason = f"unreadable as {kind}"  # Spark answered: the file's own fault
        return errors.public_error(error, reason=reason, detail=detail, about=f"file {path}")

    def _judge_empty(self, path: str, result: BatchRead) -> None:
        """A file the batch read no row from is empty only if, read alone, Spark sees the file
        and finds no row in it; otherwise it fails with what was seen."""
        if self.sizes[path] == 0:
            result.records[path] = 0
            return
        alone = reader(self.spark, self.spec.format, self.options).load(self.access.path(path))
        if not alone.inputFiles():
            result.failed[path] = "Spark found no file at this path"
        elif alone.limit(1).count() == 0 or self._blank(path):
            result.records[path] = 0  # blank, or a header without rows
        else:
            result.failed[path] = "rows read from the file alone did not match it in the batch"

    def _blank(self, path: str) -> bool:
        """Only whitespace in the file (a text format's empty)."""
        if self.spec.format.type == "parquet":
            return False
        text_reader = self.spark.read.format("text").options(**self.options)
        text = text_reader.load(self.access.path(path))
        return text.where(json_lines.not_blank()).limit(1).count() == 0

    def _with_source_file(self, frame: DataFrame, landing: Sequence[str]) -> DataFrame:
        """Only the landing files' rows, with the batch's time as `_ingested_at` and each file's
        own path as `_source_file`, in one write task per `WRITE_TASK_BYTES` of them.

        Both come from maps keyed by Spark's name for the file, each built from two array
        literals: a few hundred files make two literals, not a thousand expressions to build
        and analyse on every call. A map literal reaches the generated code as one object
        it refers to, while a timestamp literal such as `current_timestamp()` is written into
        the code: every batch would compile its write stage anew (Janino, then the JVM's JIT).

        The time is given in epoch microseconds: pyspark types a datetime literal by asking
        the thread's active session, which in this pool may be another batch's session, or
        one the Spark server no longer has after a restart."""
        names = F.lit([self.spark_names[p] for p in landing])
        path = F.map_from_arrays(names, F.lit(list(landing)))[F.col(SPARK_FILE)]
        micros = F.lit([time.time_ns() // 1_000] * len(landing))
        at = F.timestamp_micros(F.map_from_arrays(names, micros)[F.col(SPARK_FILE)])
        tasks = math.ceil(sum(self.sizes[p] for p in landing) / WRITE_TASK_BYTES)
        return (
            frame.where(path.isNotNull())  # a file that failed has no entry
            .withColumn(INGESTED_AT, at)
            .withColumn(SOURCE_FILE, path)
            .drop(SPARK_FILE)
            .coalesce(max(1, tasks))
        )

    def release(self) -> None:
        """Drop what this batch cached on the Spark server."""
        for frame in self.cached:
            frame.unpersist()
        self.cached.clear()
