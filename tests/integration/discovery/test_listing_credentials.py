"""Discovery lists a source with the ingestion's own credentials, or anonymously without any:
never with the service's keys, which can list every bucket of the dev store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from autoloader_discovery.listing import list_source
from devstack.components.seaweedfs import LANDING_BUCKET, SeaweedFS
from devstack.layout import Addresses, Layout
from shared.settings import S3Settings
from shared.spec import SourceSpec
from tests.integration.processor.test_source_credentials import (
    Buckets,
    Identities,
    Keys,
    temporary_keys,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration


@pytest.fixture
def identities(s3_settings: S3Settings) -> Iterator[Identities]:
    made = Identities(SeaweedFS(Layout.discover(), Addresses()), s3_settings)
    yield made
    made.remove()


@pytest.fixture
def fresh(s3: S3Client) -> Iterator[Buckets]:
    made = Buckets(s3)
    yield made
    made.remove()


def listed(bucket: str, keys: Keys | None, settings: S3Settings) -> list[str]:
    source = SourceSpec.model_validate({"type": "s3", "path": f"s3://{bucket}/data/"})
    credentials = keys.credentials() if keys else None
    return [o.path for page in list_source(source, credentials, settings, 100) for o in page]


def denied(error: pytest.ExceptionInfo[ClientError]) -> bool:
    return error.value.response["Error"]["Code"] in ("AccessDenied", "InvalidAccessKeyId")


def test_the_ingestions_keys_list_their_bucket_and_no_other(
    s3_settings: S3Settings, identities: Identities, fresh: Buckets
) -> None:
    mine, theirs = fresh.make(), fresh.make()
    keys = identities.make([f"Read:{mine}", f"List:{mine}"])

    assert listed(mine, keys, s3_settings) == [f"s3://{mine}/data/part-0.json"]
    with pytest.raises(ClientError) as error:
        listed(theirs, keys, s3_settings)
    assert denied(error), error.value


def test_a_source_without_credentials_is_listed_anonymously(
    s3: S3Client, s3_settings: S3Settings, fresh: Buckets, unique: str
) -> None:
    private = fresh.make()
    assert s3.list_objects_v2(Bucket=private)["KeyCount"] == 1  # the service's keys could

    with pytest.raises(ClientError) as error:
        listed(private, None, s3_settings)
    assert denied(error), error.value
    # ...while the dev stack's public landing bucket lists without credentials.
    s3.put_object(Bucket=LANDING_BUCKET, Key=f"{unique}/data/x.json", Body=b"{}")
    try:
        source = SourceSpec.model_validate(
            {"type": "s3", "path": f"s3://{LANDING_BUCKET}/{unique}/data/"}
        )
        pages = list(list_source(source, None, s3_settings, 100))
        assert [o.path for page in pages for o in page] == [
            f"s3://{LANDING_BUCKET}/{unique}/data/x.json"
        ]
    finally:
        s3.delete_object(Bucket=LANDING_BUCKET, Key=f"{unique}/data/x.json")


def test_temporary_credentials_list_with_their_session_token(
    s3_settings: S3Settings, identities: Identities, fresh: Buckets
) -> None:
    bucket, other = fresh.make(), fresh.make()
    temporary = temporary_keys(s3_settings, identities.make([f"List:{other}"]), bucket)

    assert listed(bucket, temporary, s3_settings) == [f"s3://{bucket}/data/part-0.json"]
    with pytest.raises(ClientError) as error:  # the token is what makes them valid
        listed(bucket, temporary.without_token(), s3_settings)
    assert denied(error), error.value
