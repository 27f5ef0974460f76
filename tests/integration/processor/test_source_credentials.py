"""Spark reads a source with the ingestion's own credentials, and with nothing else.

Each test makes store identities of its own (SeaweedFS `s3.configure`), each allowed one bucket,
and fresh buckets the service's keys can read. A read that succeeds with the wrong keys, or
falls back to the service's keys, or reuses the keys of an earlier read (Hadoop caches one
FileSystem per bucket), fails these tests.
"""

from __future__ import annotations

import functools
import html
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from pydantic import SecretStr
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from autoloader_processor import claims
from autoloader_processor.fetching import Fetcher
from autoloader_processor.pool import Processor
from autoloader_processor.reading import BatchReader, process_scheme_key, source_access
from devstack.components.seaweedfs import SOURCE_READER_ROLE, SeaweedFS
from devstack.components.spark import SparkConnect
from devstack.layout import Addresses, Layout, java_home
from shared.crypto import CredentialCipher, new_key
from shared.models import FileState, FileStatus, Ingestion, Tenant
from shared.s3 import source_client
from shared.settings import S3Settings
from shared.spec import IngestionSpec, S3Credentials
from shared.tenancy import own_database
from tests.integration.processor.conftest import fetched_batches

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

ROWS = 3


@dataclass(frozen=True)
class Keys:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def credentials(self) -> dict[str, str]:
        found = {"aws_access_key_id": self.access_key, "aws_secret_access_key": self.secret_key}
        if self.session_token:
            found["aws_session_token"] = self.session_token
        return found

    def without_token(self) -> Keys:
        return Keys(self.access_key, self.secret_key)


MakeKeys = Callable[[list[str]], Keys]


@pytest.fixture(scope="session")
def store(stack_env: dict[str, str]) -> SeaweedFS:
    return SeaweedFS(Layout.discover(), Addresses())


class Identities:
    """Store identities with just the given rights, e.g. ["Read:bucket", "List:bucket"], each
    usable once `make` returns."""

    def __init__(self, store: SeaweedFS, settings: S3Settings) -> None:
        self.store, self.settings, self.made = store, settings, list[str]()

    def make(self, actions: list[str]) -> Keys:
        user = f"it-{uuid.uuid4().hex[:10]}"
        keys = Keys(f"AK{uuid.uuid4().hex[:18].upper()}", uuid.uuid4().hex)
        self.store.configure_identity(user, keys.access_key, keys.secret_key, actions)
        self.made.append(user)
        _wait_until_known(self.settings, keys)
        return keys

    def remove(self) -> None:
        for user in self.made:
            self.store.remove_identity(user)


class Buckets:
    """Fresh buckets holding data/part-0.json ({ROWS} rows), that only the service's keys
    may read until an identity is given rights on them."""

    def __init__(self, s3: S3Client) -> None:
        self.s3, self.made = s3, list[str]()

    def make(self) -> str:
        name = f"iso-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=name)
        self.made.append(name)
        body = "\n".join(json.dumps({"bucket": name, "row": r}) for r in range(ROWS))
        self.s3.put_object(Bucket=name, Key="data/part-0.json", Body=body.encode())
        return name

    def remove(self) -> None:
        for name in self.made:
            for item in self.s3.list_objects_v2(Bucket=name).get("Contents", []):
                self.s3.delete_object(Bucket=name, Key=item["Key"])
            self.s3.delete_bucket(Bucket=name)


@pytest.fixture
def identity(store: SeaweedFS, s3_settings: S3Settings) -> Iterator[MakeKeys]:
    identities = Identities(store, s3_settings)
    yield identities.make
    identities.remove()


def _wait_until_known(settings: S3Settings, keys: Keys) -> None:
    """The S3 server takes the new identity from the filer a moment later: until then it says
    the key does not exist (any other answer, a refusal included, means it is known)."""
    client = source_client(settings, keys.credentials())
    deadline = time.monotonic() + 30
    while True:
        try:
            client.list_buckets()
            return
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code != "InvalidAccessKeyId":
                return
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def temporary_keys(settings: S3Settings, caller: Keys, bucket: str) -> Keys:
    """STS credentials (key, secret, session token) that may read `bucket` and nothing else:
    the store's AssumeRole narrowed by a session policy."""
    sts = boto3.session.Session().client(
        "sts",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=caller.access_key,
        aws_secret_access_key=caller.secret_key,
        region_name=settings.region,
    )
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        ],
    }
    issued = sts.assume_role(
        RoleArn=SOURCE_READER_ROLE,
        RoleSessionName=f"it-{uuid.uuid4().hex[:8]}",
        DurationSeconds=900,
        Policy=json.dumps(policy),
    )["Credentials"]
    return Keys(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])


@pytest.fixture
def buckets(s3: S3Client) -> Iterator[Callable[[], str]]:
    made = Buckets(s3)
    yield made.make
    made.remove()


def spec_for(bucket: str, keys: Keys | None) -> IngestionSpec:
    source: dict[str, Any] = {"type": "s3", "path": f"s3://{bucket}/data/"}
    if keys is not None:
        source["credentials"] = keys.credentials()
    return IngestionSpec.model_validate(
        {
            "name": f"creds-{bucket}",
            "source": source,
            "format": {"type": "json"},
            "destination": {"table": f"creds_{bucket.replace('-', '_')}"},
        }
    )


def read(
    spark: Any,
    bucket: str,
    keys: Keys | None,
    warehouse: str | None = None,
    folders: bool = False,
    fetcher: Fetcher | None = None,
) -> Any:
    """The file's records and failure; with `folders`, its folder is listed whole, and the
    listing must be the way it was read whenever it was read. With `fetcher`, the file is
    fetched into the processor when the keys allow it, else Spark reads it."""
    path = f"s3://{bucket}/data/part-0.json"
    listed = [f"s3://{bucket}/data/"] if folders else []
    reader = BatchReader(
        spark, spec_for(bucket, keys), {path: 1}, warehouse, folders=listed, fetcher=fetcher
    )
    fetched = fetched_batches("fetched")
    try:
        result = reader.read()
        assert result.folders == (listed if path in result.records else [])
        if fetcher is not None and path in result.records:  # fetched, not read by Spark
            assert fetched_batches("fetched") == fetched + 1
        return result.records.get(path), result.failed.get(path)
    finally:
        reader.release()


@pytest.fixture(params=["by Spark", "fetched"])
def read_as(request: pytest.FixtureRequest, s3_settings: S3Settings) -> Callable[..., Any]:
    """`read`, by Spark alone, or fetched into the processor first."""
    fetcher = Fetcher(s3_settings, 1 << 20) if request.param == "fetched" else None
    return functools.partial(read, fetcher=fetcher)


def test_keys_of_another_bucket_are_refused(
    spark: Any,
    buckets: Callable[[], str],
    identity: MakeKeys,
    read_as: Callable[..., Any],
) -> None:
    mine, theirs = buckets(), buckets()
    a = identity([f"Read:{mine}", f"List:{mine}"])

    assert read_as(spark, mine, a) == (ROWS, None)
    records, reason = read_as(spark, theirs, a)

    assert records is None
    assert reason is not None and reason.startswith("access denied"), reason


def test_no_read_reuses_the_keys_of_an_earlier_read_of_the_bucket(
    spark: Any,
    buckets: Callable[[], str],
    identity: MakeKeys,
    read_as: Callable[..., Any],
) -> None:
    """Hadoop's FileSystem cache would hand the second read the first read's filesystem, and
    with it the first read's keys."""
    bucket = buckets()
    reader_keys = identity([f"Read:{bucket}", f"List:{bucket}"])
    outsider = identity(["List:nothing-here"])

    assert read_as(spark, bucket, reader_keys) == (ROWS, None)
    assert read_as(spark, bucket, outsider)[1] is not None  # not the reader's cached keys
    assert read_as(spark, bucket, reader_keys) == (ROWS, None)  # nor the outsider's
    assert read_as(spark, bucket, None)[1] is not None  # nor anyone's: no credentials, no access


def test_a_source_without_credentials_is_not_read_with_the_service_keys(
    spark: Any,
    s3: S3Client,
    buckets: Callable[[], str],
    read_as: Callable[..., Any],
) -> None:
    bucket = buckets()
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 1  # the service's keys could

    records, reason = read_as(spark, bucket, None)

    assert records is None
    assert reason is not None and reason.startswith("access denied"), reason


def test_temporary_credentials_read_with_their_session_token(
    spark: Any,
    s3_settings: S3Settings,
    buckets: Callable[[], str],
    identity: MakeKeys,
    read_as: Callable[..., Any],
) -> None:
    bucket, other = buckets(), buckets()
    caller = identity([f"List:{other}"])  # may not read `bucket` by itself
    temporary = temporary_keys(s3_settings, caller, bucket)

    assert read_as(spark, bucket, temporary) == (ROWS, None)
    # The store checks the token: the same key and secret without it are refused, so the
    # read above went out with the token.
    assert read_as(spark, bucket, temporary.without_token())[1] is not None
    assert read_as(spark, other, temporary)[1] is not None  # the session policy holds


def test_a_file_in_the_warehouse_bucket_is_never_read(
    spark: Any,
    buckets: Callable[[], str],
    identity: MakeKeys,
    read_as: Callable[..., Any],
) -> None:
    """The Spark server reads the warehouse with the service's keys, whatever the read's own."""
    bucket = buckets()
    keys = identity([f"Read:{bucket}", f"List:{bucket}"])

    records, reason = read_as(spark, bucket, keys, warehouse=bucket)

    assert records is None
    assert reason == "the warehouse bucket is not a source: access denied"


def test_a_folder_listed_whole_is_listed_with_the_reads_own_keys(
    spark: Any, buckets: Callable[[], str], identity: MakeKeys
) -> None:
    bucket = buckets()
    reader_keys = identity([f"Read:{bucket}", f"List:{bucket}"])
    outsider = identity(["List:nothing-here"])

    assert read(spark, bucket, reader_keys, folders=True) == (ROWS, None)
    assert read(spark, bucket, outsider, folders=True)[1] is not None
    assert read(spark, bucket, None, folders=True)[1] is not None
    records, reason = read(spark, bucket, reader_keys, warehouse=bucket, folders=True)
    assert (records, reason) == (None, "the warehouse bucket is not a source: access denied")


def sdk_timer_threads() -> int:
    """The AWS SDK's timer threads in the Spark Connect server: each S3 client (one per S3A
    filesystem) that sets a request timeout starts some."""
    pid = SparkConnect(Layout.discover(), Addresses()).pid()
    if pid is None:
        pytest.skip("Spark Connect does not run on this machine")
    dump = subprocess.run(
        [str(java_home() / "bin" / "jstack"), str(pid)], capture_output=True, text=True, check=True
    ).stdout
    return sum(1 for line in dump.splitlines() if line.startswith('"sdk-ScheduledExecutor'))


def test_reads_with_the_same_keys_share_one_filesystem(
    spark: Any, buckets: Callable[[], str], identity: MakeKeys
) -> None:
    """Hadoop builds and caches one filesystem per scheme, so per set of keys: a new one per
    read would cost a new S3 client each time (plan analysis alone took 7 s for 500 files)."""
    bucket = buckets()
    keys = identity([f"Read:{bucket}", f"List:{bucket}"])
    assert read(spark, bucket, keys) == (ROWS, None)
    after_first = sdk_timer_threads()

    for _ in range(5):
        assert read(spark, bucket, keys) == (ROWS, None)

    assert sdk_timer_threads() == after_first


async def test_the_processor_reads_with_the_credentials_stored_for_the_ingestion(
    sessions: async_sessionmaker[AsyncSession],
    processor: Processor,
    spark: Any,
    s3_settings: S3Settings,
    buckets: Callable[[], str],
    identity: MakeKeys,
    unique: str,
) -> None:
    """As the service keeps them: encrypted beside the spec, decrypted by the processor for
    the batch (here STS credentials, which the store refuses without their token)."""
    bucket, other = buckets(), buckets()
    temporary = temporary_keys(s3_settings, identity([f"List:{other}"]), bucket)
    processor.cipher = CredentialCipher(SecretStr(new_key()))
    stored = S3Credentials.model_validate(temporary.credentials()).revealed()
    spec = spec_for(bucket, None)
    table = f"creds_{unique}"
    destination = {"database": own_database(f"it-{unique}"), "table": table}
    spec = spec.model_copy(update={"destination": spec.destination.model_copy(update=destination)})
    path = f"s3://{bucket}/data/part-0.json"
    async with sessions() as session, session.begin():
        tenant = Tenant(name=f"it-{unique}")
        session.add(tenant)
        await session.flush()
        ingestion = Ingestion(
            tenant_id=tenant.id,
            name=table,
            spec=spec.model_dump(mode="json", by_alias=True),
            credentials=processor.cipher.encrypt(stored),
            source_type="s3",
            source_bucket=bucket,
            deleted_at=datetime.now(UTC),  # the stack's own processors leave it alone
        )
        session.add(ingestion)
        await session.flush()
        session.add(FileState(ingestion_id=ingestion.id, path=path, etag=unique, size=1))
    try:
        async with sessions() as session:
            claim = await claims.claim_batch(session, ingestion.id, "it-creds", 10, 10**9, 20)
        assert claim is not None

        assert await processor.process(
            ingestion, processor._with_credentials(ingestion, spec), claim
        )

        async with sessions() as session:
            state = (
                await session.execute(select(FileState).where(FileState.path == path))
            ).scalar_one()
        assert (state.status, state.records) == (FileStatus.SUCCESS, ROWS), state.error
        assert spark.table(spec.destination.qualified).count() == ROWS
    finally:
        spark.sql(f"DROP TABLE IF EXISTS {spec.destination.qualified} PURGE")
        async with sessions() as session, session.begin():
            await session.execute(delete(FileState).where(FileState.ingestion_id == ingestion.id))
            await session.execute(delete(Ingestion).where(Ingestion.id == ingestion.id))
            await session.execute(delete(Tenant).where(Tenant.id == tenant.id))


def test_spark_shows_a_read_without_its_credentials(
    spark: Any, s3_settings: S3Settings, buckets: Callable[[], str], identity: MakeKeys
) -> None:
    """Spark Connect's UI and logs show each statement's plan; a plan shallow enough (the
    processor's look at a file read alone is one) shows the read's options."""
    bucket, other = buckets(), buckets()
    temporary = temporary_keys(s3_settings, identity([f"List:{other}"]), bucket)
    access = source_access(
        S3Credentials.model_validate(temporary.credentials()), process_scheme_key()
    )
    path = access.path(f"s3://{bucket}/data/part-0.json")
    assert spark.read.format("text").options(**access.options).load(path).count() == ROWS

    a = Addresses()
    url = f"http://{a.host}:{a.spark_ui_port}/connect/session/?id={spark.session_id}"
    page, deadline = "", time.monotonic() + 20
    while path not in page:  # the UI learns of the statement a moment later
        assert time.monotonic() < deadline, "Spark's UI never showed the session's read"
        time.sleep(0.5)
        page = html.unescape(httpx.get(url, timeout=10).text)

    assert "redacted" in page
    for secret in (temporary.access_key, temporary.secret_key, temporary.session_token):
        assert secret and secret not in page
