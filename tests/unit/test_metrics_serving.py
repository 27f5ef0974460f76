"""A consumer's /metrics address, and what a process prints when it cannot start."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

import pytest

from shared.metrics import serve_metrics

pytestmark = pytest.mark.unit


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_metrics_are_served_until_stopped_and_port_0_serves_none() -> None:
    port = free_port()
    stop = serve_metrics("127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert b"python_info" in response.read()
    finally:
        stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    serve_metrics("127.0.0.1", 0)()  # nothing to stop


def test_a_port_in_use_names_the_setting_to_change() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"127.0.0.1:{port}.*METRICS_PORT"):
            serve_metrics("127.0.0.1", port)


def test_an_exception_that_ends_a_service_is_one_json_line() -> None:
    script = (
        "from shared.logs import configure_logging\n"
        "configure_logging()\n"
        "raise RuntimeError('no luck\\nat all')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    logged = json.loads(line)
    assert logged["level"] == "CRITICAL"
    assert "RuntimeError: no luck" in logged["message"]
    assert "Traceback" in logged["exception"]
