"""boto3 S3 clients: the service's own, and one per source built from the ingestion's credentials.

The service's client (`s3_client`) reaches the warehouse and probes the store. Its keys come
from S3Settings; a key left unset is passed as None, so boto3's default chain (environment,
IAM role, instance profile) applies, never a hard-coded key.

A source is only ever read with its ingestion's own credentials (`source_client`): key and
secret, with a session token for STS credentials. A source without credentials is read
anonymously (unsigned requests), which reaches public buckets only. Neither falls back to the
service's keys or to the default chain, which would be the service's identity again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from shared.settings import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def s3_client(settings: S3Settings) -> S3Client:
    secret = settings.secret_access_key
    return boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        region_name=settings.region,
        config=Config(s3={"addressing_style": "path"}, retries={"mode": "standard"}),
    )


def parse_timestamp(value: str) -> datetime:
    """An S3 timestamp (ISO 8601, e.g. `2026-11-22T10:00:00.000Z`) as an aware datetime, with
    `datetime.fromisoformat` (botocore's dateutil parser costs ~75 ms per 1,000 keys); anything
    else the way botocore parses it."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return botocore_parse_timestamp(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def source_client(
    settings: S3Settings, credentials: Mapping[str, Any] | None, config: Config | None = None
) -> S3Client:
    """A client for the store at `settings.endpoint_url` that signs with `credentials` (the
    decrypted `aws_*` fields of a source), or sends unsigned requests when there are none.
    `config` adds to the client's own (timeouts, retries).

    A boto3 Session of its own keeps boto3 from looking anything up in the environment; its
    responses' timestamps are parsed with `parse_timestamp`, which listing a large prefix needs."""
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=parse_timestamp
    )
    session = boto3.session.Session(botocore_session=core)
    region = (credentials or {}).get("aws_region") or settings.region
    base = Config(s3={"addressing_style": "path"}, retries={"mode": "standard"})
    if config is not None:
        base = base.merge(config)
    if not credentials:
        return session.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=region,
            config=base.merge(Config(signature_version=UNSIGNED)),
        )
    return session.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        aws_access_key_id=credentials["aws_access_key_id"],
        aws_secret_access_key=credentials["aws_secret_access_key"],
        aws_session_token=credentials.get("aws_session_token") or None,
        region_name=region,
        config=base,
    )
