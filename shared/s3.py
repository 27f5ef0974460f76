"""The boto3 S3 client every service builds from S3Settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

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
