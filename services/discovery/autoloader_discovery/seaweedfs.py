"""SeaweedFS filer events, as S3 event notifications in AWS's record format.

SeaweedFS does not emit S3 bucket notifications itself: its filer publishes every metadata
change to Kafka as a protobuf `filer_pb.EventNotification` (see SeaweedFS's filer.proto).
`file_written` reads the creation or rewrite of a file under `/buckets/<bucket>/` from one,
and `notification` makes it the `{"Records": [...]}` message AWS would send, for
`autoloader.s3-events`. Between the two, a multipart upload (which has no MD5) needs its ETag
from the store: the bridge in `consumer.py` asks for it. Only the fields needed are declared
below; the protobuf parser skips the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import quote_plus

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

BUCKETS_DIR = "/buckets/"
_F = descriptor_pb2.FieldDescriptorProto


def _message(name: str, fields: list[tuple[str, int, int, str]]) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=name)
    for field_name, number, kind, type_name in fields:
        added = message.field.add(name=field_name, number=number, type=kind)
        added.label = _F.LABEL_OPTIONAL
        if type_name:
            added.type_name = type_name
    return message


@cache
def _event_notification_class() -> Any:
    """filer_pb.EventNotification, reduced to the fields a notification needs."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="autoloader_filer_subset.proto", package="filer_pb", syntax="proto3"
    )
    proto.message_type.extend(
        [
            _message(
                "FuseAttributes",
                [
                    ("file_size", 1, _F.TYPE_UINT64, ""),
                    ("mtime", 2, _F.TYPE_INT64, ""),
                    ("md5", 14, _F.TYPE_BYTES, ""),
                ],
            ),
            _message(
                "Entry",
                [
                    ("name", 1, _F.TYPE_STRING, ""),
                    ("is_directory", 2, _F.TYPE_BOOL, ""),
                    ("attributes", 4, _F.TYPE_MESSAGE, ".filer_pb.FuseAttributes"),
                ],
            ),
            _message(
                "EventNotification",
                [
                    ("old_entry", 1, _F.TYPE_MESSAGE, ".filer_pb.Entry"),
                    ("new_entry", 2, _F.TYPE_MESSAGE, ".filer_pb.Entry"),
                    ("new_parent_path", 4, _F.TYPE_STRING, ""),
                ],
            ),
        ]
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("filer_pb.EventNotification"))


def _file_changed(event: Any) -> bool:
    """A file written: created, or rewritten with other content; not a directory, a
    deletion or a metadata-only update."""
    if not event.HasField("new_entry") or event.new_entry.is_directory:
        return False
    if not event.HasField("old_entry"):
        return True
    old, new = event.old_entry.attributes, event.new_entry.attributes
    return (old.md5, old.file_size) != (new.md5, new.file_size) or not old.md5


@dataclass(frozen=True)
class FileWritten:
    """A file written under /buckets/<bucket>/, as one filer event tells it."""

    bucket: str
    key: str
    size: int
    mtime: int
    md5: str  # hex; '' for a multipart upload, whose ETag only the store knows


def file_written(raw: bytes, key: bytes | None) -> FileWritten | None:
    """The file one filer event writes, or None when it is not a file written under /buckets/
    (a directory, a deletion, a metadata-only update). Raises
    google.protobuf.message.DecodeError on bytes that do not parse."""
    event = _event_notification_class().FromString(raw)
    if not _file_changed(event):
        return None
    directory = event.new_parent_path or (key or b"").decode().rsplit("/", 1)[0]
    full_path = f"{directory.rstrip('/')}/{event.new_entry.name}"
    if not full_path.startswith(BUCKETS_DIR):
        return None
    bucket, _, object_key = full_path.removeprefix(BUCKETS_DIR).partition("/")
    if not object_key:
        return None
    attributes = event.new_entry.attributes
    return FileWritten(
        bucket, object_key, attributes.file_size, attributes.mtime, attributes.md5.hex()
    )


def notification(written: FileWritten, etag: str) -> bytes:
    """The `{"Records": [...]}` message AWS would send for the file, with its ETag."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventTime": datetime.fromtimestamp(written.mtime, UTC).isoformat(),
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": written.bucket, "arn": f"arn:aws:s3:::{written.bucket}"},
            "object": {
                "key": quote_plus(written.key, safe="/"),
                "size": written.size,
                "eTag": etag,
            },
        },
    }
    return json.dumps({"Records": [record]}).encode()


def to_notification(
    raw: bytes, key: bytes | None, etag_of: Callable[[str, str], str] | None = None
) -> bytes | None:
    """The AWS-format notification of one filer event, or None when it is not a file written
    under /buckets/. etag_of(bucket, key) supplies the ETag of a file without an MD5 (a
    multipart upload). Raises google.protobuf.message.DecodeError on bytes that do not parse."""
    written = file_written(raw, key)
    if written is None:
        return None
    etag = written.md5 or (etag_of(written.bucket, written.key) if etag_of else "")
    return notification(written, etag)
