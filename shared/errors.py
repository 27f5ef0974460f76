"""What a tenant is told about a failed run or file: a classified reason and a reference.

Raw exception text can name internal hosts, paths of other systems, or configuration, so it
never reaches `runs.error`, `file_state.error` or an event. `public_error` logs the full text
with a fresh short reference (`ref 7f3a2c1e`) and returns the tenant's text, for example
`discovery failed: access denied (ref 7f3a2c1e)`. An operator finds the full text by grepping
the service's log for the reference (see docs/errors.md).
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

ACCESS_DENIED = "access denied"
NOT_FOUND = "not found"
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
SCHEMA_MISMATCH = "schema mismatch"
UNREADABLE = "unreadable"
UNEXPECTED = "unexpected error"

# Tried in this order on the error's type names and message (lower case, `_` as a space): the
# first reason with a marker in the text wins. Connection failures come before timeouts, since
# "connect timeout" means the other side was not reached at all.
_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        ACCESS_DENIED,
        (
            "accessdenied",
            "access denied",
            "forbidden",
            "(403)",
            "invalidaccesskeyid",
            "signaturedoesnotmatch",
            "expiredtoken",
            "invalidtoken",
            "permission denied",
            "permissionerror",
            "not authorized",
            "unauthorized",
            "write refused",
        ),
    ),
    (
        NOT_FOUND,
        (
            "nosuchbucket",
            "nosuchkey",
            "not found",
            "notfound",
            "(404)",
            "does not exist",
            "no longer exists",
            "no file at this path",
        ),
    ),
    (
        UNREACHABLE,
        (
            "connectionerror",
            "connection refused",
            "connection reset",
            "could not connect",
            "unreachable",
            "name or service not known",
            "name resolution",
            "connect timeout",
            "unavailable",
            "went away",
        ),
    ),
    (TIMEOUT, ("timeouterror", "timed out", "timeout", "deadline exceeded", "took longer")),
    (
        UNREADABLE,
        (
            "unable to infer schema",
            "malformed",
            "corrupt",
            "failed read file",
            "cannot read",
            "could not read",
            "not a parquet file",
            "could be parsed",
            "parse",
            "decode",
            "unreadable",
            "skip names",
            "format.compression",
            "differs only in case",
            "autoloader writes itself",
        ),
    ),
    (
        SCHEMA_MISMATCH,
        (
            "incompatible",
            "mismatch",
            "cannot up cast",
            "cannot safely cast",
            "cannot change column type",
            "schema",
        ),
    ),
)
REASONS = (*(reason for reason, _ in _MARKERS), UNEXPECTED)

_REF = re.compile(r"\(ref [0-9a-f]{8}\)")
_SPARK_ERROR_CLASS = re.compile(r"\[([A-Z][A-Z0-9_]*(?:\.[A-Z][A-Z0-9_]*)*)\]")
_STACK_TRACE = "JVM stacktrace:"  # what follows in a Spark Connect error is the server's stack

Log = logging.Logger | logging.LoggerAdapter[Any]
log = logging.getLogger(__name__)


def classify(error: BaseException | str) -> str:
    """The reason words for ``error``: one of REASONS."""
    text = _haystack(error)
    for reason, markers in _MARKERS:
        if any(marker in text for marker in markers):
            return reason
    return UNEXPECTED


def _haystack(error: BaseException | str) -> str:
    """Type names and messages of the error and its causes, lower case, `_` read as a space."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | str | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, str):
            parts.append(current)
            break
        parts += [cls.__name__ for cls in type(current).__mro__]
        parts.append(str(current).split(_STACK_TRACE, 1)[0][:4000])
        current = current.__cause__ or current.__context__
    return " ".join(parts).lower().replace("_", " ")


def full_text(error: BaseException | str) -> str:
    """Everything the error says, for the log: type, message and causes, with the value of
    anything that looks like a credential masked."""
    return redact(_full_text(error))


def _full_text(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    cause = error.__cause__ or error.__context__
    return f"{text}; caused by {_full_text(cause)}" if cause is not None else text


# A setting or parameter whose name says it is secret, and its value: `fs.s3a.secret.key=…`,
# `aws_session_token: '…'`, `X-Amz-Security-Token=…` in a presigned URL.
_SECRET_SETTING = re.compile(
    r"(?i)((?:secret|token|password|passwd|credential|signature)[\w.\-]*"
    r"[\"']?\s*(?:=|:|->)\s*[\"']?)[^\s\"',;&)}\]]+"
)


_URL_PASSWORD = re.compile(r"(\b[a-z][\w+.\-]*://[^:/\s@]+:)[^@\s/]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the value of every secret-looking setting, and the password of every URL,
    replaced by `****`."""
    return _URL_PASSWORD.sub(r"\1****@", _SECRET_SETTING.sub(r"\1****", text))


def spark_error_class(error: BaseException | str) -> str | None:
    """Spark's error class (e.g. `MALFORMED_RECORD_IN_PARSING`): a fixed code that names the
    problem without quoting paths, hosts or data."""
    found = _SPARK_ERROR_CLASS.search(str(error).split(_STACK_TRACE, 1)[0])
    return found.group(1) if found else None


def has_ref(text: str) -> bool:
    return _REF.search(text) is not None


def new_ref() -> str:
    return secrets.token_hex(4)


def public_error(
    error: BaseException | str,
    logger: Log | None = None,
    *,
    where: str | None = None,
    reason: str | None = None,
    detail: str | None = None,
    about: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Log the full text of ``error`` under a fresh reference and return what the tenant sees:
    `[where: ]reason[: detail] (ref xxxxxxxx)`. ``reason`` defaults to classify(error);
    ``detail`` must be text the tenant may see (never the raw message of an exception).
    ``about`` (say, the file's path) goes in the log line only."""
    ref = new_ref()
    text = reason or classify(error)
    if where:
        text = f"{where}: {text}"
    if detail:
        text = f"{text}: {detail}"
    text = f"{text} (ref {ref})"
    (logger or log).warning(
        "%s%s; full error: %s",
        text,
        f"; {about}" if about else "",
        full_text(error),
        extra={"error_ref": ref, **(extra or {})},
    )
    return text


def public_file_error(
    text: str,
    logger: Log | None = None,
    about: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """A file's failure as its tenant sees it. Text that already carries a reference passes
    as it is; the reader's own verdicts (never raw exception text) get their reason in front,
    unless they start with it, and a reference."""
    if has_ref(text):
        return text
    reason = classify(text)
    shown = text if text.startswith(reason) else None
    return public_error(
        text,
        logger,
        reason=shown or reason,
        detail=None if shown else text,
        about=about,
        extra=extra,
    )
