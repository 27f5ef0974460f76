"""Signing upstream commands with a tenant's key, checking the signature, and the operator's
command that prints a tenant's key."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.command_signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Unverified,
    sign,
    tenant_key,
    verify,
)

pytestmark = pytest.mark.unit

SECRET = "unit-test-signing-secret"
VALUE = json.dumps(
    {
        "command_type": "TriggerIngestion",
        "tenant": "acme",
        "ingestion_name": "orders",
        "idempotency_key": "k1",
        "requested_by": "orders-pipeline",
    }
).encode()
WINDOW = 900.0


def test_a_tenants_key_is_the_hmac_of_its_name_under_the_service_secret() -> None:
    expected = hmac.new(SECRET.encode(), b"autoloader-commands:acme", hashlib.sha256).digest()
    assert tenant_key(SECRET, "acme") == expected
    assert tenant_key(SECRET, "acme") != tenant_key(SECRET, "acme2")
    assert tenant_key(SECRET, "acme") != tenant_key(SECRET + "x", "acme")


def test_the_signature_covers_the_timestamp_and_the_exact_value() -> None:
    key = tenant_key(SECRET, "acme")
    headers = dict(sign(VALUE, key, timestamp=1_700_000_000))
    assert headers[TIMESTAMP_HEADER] == b"1700000000"
    mac = hmac.new(key, b"1700000000." + VALUE, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"v1={mac}".encode()
    assert sign(VALUE, key.hex(), timestamp=1_700_000_000) == list(headers.items())


def test_a_fresh_signature_with_the_tenants_key_is_accepted() -> None:
    key = tenant_key(SECRET, "acme")
    now = time.time()
    verify(VALUE, sign(VALUE, key), key, now=now, max_age_seconds=WINDOW)
    upper = [(name.upper(), content) for name, content in sign(VALUE, key)]
    verify(VALUE, upper, key, now=now, max_age_seconds=WINDOW)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unsigned", "unsigned"),
        ("no timestamp", "no autoloader-timestamp"),
        ("timestamp not a number", "not unix seconds"),
        ("another key", "does not match"),
        ("another tenant's key", "does not match"),
        ("tampered value", "does not match"),
        ("timestamp changed", "does not match"),
        ("expired", "outside the 900s window"),
        ("from the future", "outside the 900s window"),
        ("unknown version", "must be v1=<hex>"),
    ],
)
def test_a_signature_that_does_not_hold_is_refused_with_the_reason(case: str, reason: str) -> None:
    key = tenant_key(SECRET, "acme")
    now = time.time()
    value, headers = _case(case, key, int(now))
    with pytest.raises(Unverified, match=reason) as refused:
        verify(value, headers, key, now=now, max_age_seconds=WINDOW)
    assert key.hex() not in str(refused.value)


def _case(case: str, key: bytes, now: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    signed = dict(sign(VALUE, key, timestamp=now))
    if case == "unsigned":
        return VALUE, []
    if case == "no timestamp":
        return VALUE, [(SIGNATURE_HEADER, signed[SIGNATURE_HEADER])]
    if case == "timestamp not a number":
        return VALUE, [*signed.items(), (TIMESTAMP_HEADER, b"yesterday")]
    if case == "another key":
        return VALUE, sign(VALUE, os.urandom(32), timestamp=now)
    if case == "another tenant's key":
        return VALUE, sign(VALUE, tenant_key(SECRET, "other"), timestamp=now)
    if case == "tampered value":
        return VALUE.replace(b'"k1"', b'"k2"'), list(signed.items())
    if case == "timestamp changed":
        return VALUE, [*signed.items(), (TIMESTAMP_HEADER, str(now - 1).encode())]
    if case == "expired":
        return VALUE, sign(VALUE, key, timestamp=now - 901)
    if case == "from the future":
        return VALUE, sign(VALUE, key, timestamp=now + 901)
    assert case == "unknown version"
    return VALUE, [*signed.items(), (SIGNATURE_HEADER, signed[SIGNATURE_HEADER][1:])]


def _autoloader(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    executable = str(Path(sys.executable).parent / "autoloader")
    return subprocess.run([executable, *args], capture_output=True, text=True, env=env)


def test_the_operator_cli_prints_the_tenants_key_derived_from_the_secret() -> None:
    env = {**os.environ, "AUTOLOADER_COMMANDS_SIGNING_SECRET": SECRET}
    printed = _autoloader(env, "commands", "signing-key", "--tenant", "acme")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == tenant_key(SECRET, "acme").hex()
    headers = sign(VALUE, printed.stdout.strip())
    verify(VALUE, headers, tenant_key(SECRET, "acme"), now=time.time(), max_age_seconds=WINDOW)


def test_the_operator_cli_without_a_secret_names_the_setting() -> None:
    env = {k: v for k, v in os.environ.items() if k != "AUTOLOADER_COMMANDS_SIGNING_SECRET"}
    # An AUTOLOADER_* variable keeps the CLI from loading the checkout's .local/stack.env,
    # which holds the local stack's secret.
    env.setdefault("AUTOLOADER_ENV", "development")
    printed = _autoloader(env, "commands", "signing-key", "--tenant", "acme")
    assert printed.returncode == 2
    assert "AUTOLOADER_COMMANDS_SIGNING_SECRET is not set" in printed.stderr
    assert printed.stdout == ""
