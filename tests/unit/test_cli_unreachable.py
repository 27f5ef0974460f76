"""An operator command whose database does not answer says so in a line, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

BIN = Path(sys.executable).parent
ZERO = "00000000-0000-0000-0000-000000000000"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again when the block ends


@pytest.mark.parametrize(
    "command",
    [
        ["autoloader", "status", ZERO],
        ["autoloader", "backfill", "--ingestion", ZERO, "--since", "2026-11-01T00:00Z"],
    ],
)
def test_an_unreachable_database_is_one_message_with_what_to_check(
    command: list[str], tmp_path: Path
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
    assert "AUTOLOADER_DATABASE_URL" in result.stderr
