"""The process handling `make up` and `make down` rely on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from devstack import proc
from devstack.components.kafka import _cluster_id
from devstack.layout import Layout

pytestmark = pytest.mark.unit


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    layout = Layout(root=tmp_path, cache=tmp_path / "cache")
    layout.make_dirs()
    return layout


def test_stop_ends_the_whole_process_group(layout: Layout) -> None:
    # A parent with a background child, as Spark's launcher or Prefect's server have.
    pid = proc.spawn(layout, "family", ["sh", "-c", "sleep 300 & sleep 300"])
    proc.wait_until(lambda: proc._group_alive(pid), "family", timeout=5)
    assert proc.read_pid(layout, "family") == pid

    assert proc.stop(layout, "family", grace=5) is True

    assert not proc._group_alive(pid)
    assert proc.read_pid(layout, "family") is None
    assert not proc.pid_file(layout, "family").exists()


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(layout: Layout) -> None:
    pid = proc.spawn(layout, "stubborn", ["sh", "-c", "trap '' TERM; sleep 300"])
    time.sleep(0.3)
    began = time.monotonic()
    assert proc.stop(layout, "stubborn", grace=1) is True
    assert not proc._group_alive(pid)
    assert time.monotonic() - began < 5


def test_a_stale_pid_file_reads_as_not_running(layout: Layout) -> None:
    pid = proc.spawn(layout, "short", ["true"])
    proc.wait_until(lambda: not proc.alive(pid), "short exits", timeout=5)
    assert proc.read_pid(layout, "short") is None
    assert proc.stop(layout, "short") is False


def test_wait_until_names_the_component_and_its_log(layout: Layout) -> None:
    pid = proc.spawn(layout, "crasher", ["sh", "-c", "echo 'bind: address in use'; exit 3"])
    with pytest.raises(proc.StackError) as failure:
        proc.wait_until(lambda: False, "crasher", timeout=10, log=layout.log("crasher"), pid=pid)
    message = str(failure.value)
    assert "crasher: the process exited during start-up" in message
    assert "bind: address in use" in message


def test_kraft_cluster_id_is_22_characters_of_url_safe_base64() -> None:
    ids = {_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert set(cluster_id) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )


def test_a_components_output_is_logged_as_json_lines(layout: Layout) -> None:
    script = (
        'echo \'{"level": "INFO", "message": "ours"}\'; '
        "printf '\\033[32mINFO\\033[0m  coloured\\n\\n'; "
        "echo 'W1123 18:00:00.000 glog warning'; echo 'plain text'; echo 'x ERROR y' >&2"
    )
    pid = proc.spawn(layout, "mixed", ["sh", "-c", script])
    proc.wait_until(lambda: not proc.alive(pid), "mixed exits", timeout=5)
    log = layout.log("mixed")
    proc.wait_until(
        lambda: log.exists() and len(log.read_text().splitlines()) == 5, "relay", timeout=5
    )

    lines = [json.loads(line) for line in log.read_text().splitlines()]

    assert lines[0] == {"level": "INFO", "message": "ours"}
    assert [(line["level"], line["message"]) for line in lines[1:]] == [
        ("INFO", "INFO  coloured"),
        ("WARNING", "W1123 18:00:00.000 glog warning"),
        ("INFO", "plain text"),
        ("ERROR", "x ERROR y"),
    ]
    assert {line["logger"] for line in lines[1:]} == {"mixed"}
