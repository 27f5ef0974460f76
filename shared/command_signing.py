"""Signing upstream commands, and checking their signatures.

Each tenant has its own signing key, derived from the service's secret
(AUTOLOADER_COMMANDS_SIGNING_SECRET):

    tenant_key = HMAC-SHA256(secret, "autoloader-commands:" + tenant name)

Operators hand each tenant its key (`autoloader commands signing-key --tenant T`). A producer
signs the exact bytes of the message value, together with the time it signs at, and puts both
in the message's Kafka headers; the value stays the command itself:

    autoloader-timestamp: <unix seconds>
    autoloader-signature: v1=<hex HMAC-SHA256(tenant_key, "<unix seconds>." + value)>

scheduler-sync derives the key of the tenant the command names, so a command signed with one
tenant's key cannot speak for another, and refuses a signature made longer ago than its window.
See docs/commands.md.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

SIGNATURE_HEADER = "autoloader-signature"
TIMESTAMP_HEADER = "autoloader-timestamp"
VERSION = "v1"
_KEY_CONTEXT = b"autoloader-commands:"

Headers = list[tuple[str, bytes]]


class Unverified(ValueError):
    """Why a command's signature is not accepted. The text never holds a key."""


def tenant_key(secret: str, tenant: str) -> bytes:
    """The tenant's signing key, derived from the service's secret."""
    return hmac.new(secret.encode(), _KEY_CONTEXT + tenant.encode(), hashlib.sha256).digest()


def signature(key: bytes, timestamp: int, value: bytes) -> str:
    """The hex HMAC-SHA256 of "<timestamp>." followed by the value's bytes."""
    return hmac.new(key, f"{timestamp}.".encode() + value, hashlib.sha256).hexdigest()


def sign(value: bytes, key: bytes | str, timestamp: int | None = None) -> Headers:
    """The Kafka headers that sign `value` (the command's JSON bytes, exactly as produced) with
    a tenant's key (bytes, or the hex text the operator's CLI prints), at `timestamp` (unix
    seconds, now by default). They suit aiokafka's and confluent-kafka's `headers=`."""
    raw_key = bytes.fromhex(key) if isinstance(key, str) else key
    at = int(time.time()) if timestamp is None else timestamp
    mac = signature(raw_key, at, value)
    return [(TIMESTAMP_HEADER, str(at).encode()), (SIGNATURE_HEADER, f"{VERSION}={mac}".encode())]


def verify(
    value: bytes,
    headers: Iterable[tuple[str, bytes]],
    key: bytes,
    *,
    now: float,
    max_age_seconds: float,
) -> None:
    """Raise Unverified unless the headers sign `value` with `key` within the window: a
    timestamp at most max_age_seconds from `now`, in either direction."""
    found = {name.lower(): content for name, content in headers}
    given = found.get(SIGNATURE_HEADER)
    if given is None:
        raise Unverified(f"unsigned: no {SIGNATURE_HEADER} header")
    timestamp = _timestamp(found.get(TIMESTAMP_HEADER))
    age = now - timestamp
    if abs(age) > max_age_seconds:
        raise Unverified(
            f"signed at {timestamp}, {age:.0f}s from the service's clock, outside the "
            f"{max_age_seconds:.0f}s window: sign it again"
        )
    version, _, mac = given.decode("ascii", "replace").strip().partition("=")
    if version != VERSION or not mac:
        raise Unverified(f"{SIGNATURE_HEADER} must be {VERSION}=<hex>")
    if not hmac.compare_digest(mac.encode(), signature(key, timestamp, value).encode()):
        raise Unverified("the signature does not match the value with the tenant's key")


def _timestamp(raw: bytes | None) -> int:
    if raw is None:
        raise Unverified(f"no {TIMESTAMP_HEADER} header")
    try:
        return int(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise Unverified(f"{TIMESTAMP_HEADER} is not unix seconds") from None
