"""An operator command whose database or Prefect does not answer says so in a line, not a
traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shared.service import reporting_unreachable

pytestmark = pytest.mark.unit

BIN = Path(sys.executable).parent
ZERO = "00000000-0000-0000-0000-000000000000"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


@pytest.mark.parametrize(
    ("command", "names"),
    [
        (["autoloader", "status", ZERO], "AUTOLOADER_DATABASE_URL"),
        (
            ["autoloader", "backfill", "--ingestion", ZERO, "--since", "2026-11-01T00:00Z"],
            "AUTOLOADER_DATABASE_URL",
        ),
        (["autoloader-sync", "reconcile", "--dry-run"], "AUTOLOADER_DATABASE_URL"),
    ],
)
def test_an_unreachable_component_is_one_message_with_what_to_check(
    command: list[str], names: str, tmp_path: Path
) -> None:
    url = f"postgresql+asyncpg://u:p@127.0.0.1:{closed_port()}/db"
    env = {**os.environ, "AUTOLOADER_DATABASE_URL": url}
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "could not reach a component it needs: ConnectionRefusedError" in result.stderr
    assert names in result.stderr


def test_an_unreachable_prefect_is_reported_too(capsys: pytest.CaptureFixture[str]) -> None:
    def reconcile() -> int:
        raise httpx.ConnectError("All connection attempts failed")

    assert reporting_unreachable("autoloader-sync reconcile", reconcile) == 3
    printed = capsys.readouterr().err
    assert printed.startswith(
        "autoloader-sync reconcile: could not reach a component it needs: ConnectError: All "
    )
    assert "PREFECT_API_URL" in printed
