"""S3 event notifications, in the record format AWS sends (and MinIO emits), as pydantic
models, plus what Autoloader reads from them.

A message is `{"Records": [...]}`, optionally inside an SNS envelope (`{"Type":
"Notification", "Message": "<json>"}`). AWS's `s3:TestEvent`, sent when a bucket's
notifications are configured, holds no records and is ignored. Object keys arrive
URL-encoded, with `+` for a space; `S3EventRecord.key` decodes them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)


class S3Bucket(_Model):
    name: str = Field(min_length=1)


class S3Object(_Model):
    key: str = Field(min_length=1, description="URL-encoded, '+' for a space")
    size: int = Field(default=0, ge=0)
    etag: str | None = Field(default=None, alias="eTag")
    version_id: str | None = Field(default=None, alias="versionId")
    sequencer: str | None = None


class S3Entity(_Model):
    bucket: S3Bucket
    object: S3Object


class S3EventRecord(_Model):
    event_source: str = Field(default="aws:s3", alias="eventSource")
    event_name: str = Field(alias="eventName")
    event_time: datetime = Field(alias="eventTime")
    s3: S3Entity

    @property
    def created(self) -> bool:
        """ObjectCreated:* (AWS writes `ObjectCreated:Put`, MinIO `s3:ObjectCreated:Put`)."""
        return self.event_name.removeprefix("s3:").startswith("ObjectCreated:")

    @property
    def bucket(self) -> str:
        return self.s3.bucket.name

    @property
    def key(self) -> str:
        return unquote_plus(self.s3.object.key)

    @property
    def path(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def etag(self) -> str:
        return (self.s3.object.etag or "").strip('"')


class S3EventNotification(_Model):
    records: list[S3EventRecord] = Field(default_factory=list, alias="Records")


class NotAnS3Event(ValueError):
    """The message is neither an S3 event notification nor an SNS envelope of one."""


def parse_notification(raw: bytes | str) -> list[S3EventRecord]:
    """The records of one message; [] for AWS's test event. Raises NotAnS3Event."""
    try:
        body: Any = json.loads(raw)
    except ValueError as error:
        raise NotAnS3Event(f"not JSON: {error}") from error
    if isinstance(body, dict) and body.get("Type") == "Notification" and "Message" in body:
        return parse_notification(body["Message"])  # an SNS envelope
    if isinstance(body, dict) and body.get("Event") == "s3:TestEvent":
        return []
    if not isinstance(body, dict) or "Records" not in body:
        raise NotAnS3Event("no Records: not an S3 event notification")
    try:
        return S3EventNotification.model_validate(body).records
    except ValidationError as error:
        raise NotAnS3Event(f"malformed S3 event record: {error}") from error
