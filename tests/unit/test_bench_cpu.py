"""The CPU accounting of `make bench` (benchmarks/cpu.py), on a /proc tree of files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks import cpu

TICK = os.sysconf("SC_CLK_TCK")
SPARK = "/usr/lib/jvm/java-17/bin/java -cp /cache/jars/spark-iceberg-1.12.0/* SparkSubmit"
KAFKA = "/usr/lib/jvm/java-17/bin/java -Xmx1g -cp /cache/jars/kafka-3.9.1/* kafka.Kafka"
FORKSERVER = "python -m autoloader_discovery.forkserver /venv/bin/prefect worker start --pool x"


def stat(name: str, user: int, system: int, children: int = 0) -> str:
    """/proc/PID/stat: pid, (name), state, 10 fields, then utime stime cutime cstime."""
    return f"42 ({name}) S {' '.join(['0'] * 10)} {user} {system} {children} 0 20 0 1"


def process(proc: Path, pid: int, command_line: str, ticks: tuple[int, int, int]) -> None:
    entry = proc / str(pid)
    entry.mkdir(exist_ok=True)
    (entry / "cmdline").write_bytes(command_line.replace(" ", "\0").encode() + b"\0")
    (entry / "stat").write_text(stat("a) (b", *ticks))


@pytest.mark.parametrize(
    ("command_line", "part"),
    [
        (SPARK, "spark"),
        (KAFKA, "kafka"),
        ("/venv/bin/weed server -dir=/data", "seaweedfs"),
        ("postgres: autoloader autoloader 127.0.0.1(33634) idle", "postgres"),
        ("/venv/bin/python /venv/bin/prefect server start", "prefect server"),
        (FORKSERVER, "flow runs"),
        ("/venv/bin/python /venv/bin/autoloader-processor run", "processor"),
        ("/venv/bin/python /venv/bin/autoloader-discovery run", "discovery"),
        ("/venv/bin/python -m benchmarks.throughput --sizes 2000", "bench"),
        ("/usr/bin/python3 /tmp/other.py", None),
    ],
)
def test_each_process_is_named_by_its_part(command_line: str, part: str | None) -> None:
    assert cpu.part_of(command_line) == part


def test_seconds_count_the_process_and_its_waited_for_children() -> None:
    assert cpu.seconds_of(stat("weird ) name", 3 * TICK, TICK, 2 * TICK)) == pytest.approx(6.0)


def test_a_part_uses_what_its_processes_used_between_snapshots(tmp_path: Path) -> None:
    process(tmp_path, 10, SPARK, (TICK, 0, 0))
    process(tmp_path, 11, "/venv/bin/weed server", (TICK, 0, 0))
    process(tmp_path, 14, "postgres: main", (TICK, 0, 0))
    process(tmp_path, 15, "postgres: autoloader autoloader 127.0.0.1(1) idle", (9 * TICK, 0, 0))
    process(tmp_path, 12, "/usr/bin/python3 /tmp/other.py", (TICK, 0, 0))
    before = cpu.snapshot(tmp_path)
    process(tmp_path, 10, SPARK, (5 * TICK, TICK, 0))  # 5 s more
    process(tmp_path, 11, KAFKA, (3 * TICK, 0, 0))  # the pid now names another process
    process(tmp_path, 13, FORKSERVER, (TICK, 0, TICK))  # new in the round: all of it counts
    # The backend used 1 s more, then ended: its 10 s are now the postmaster's children time.
    shutil.rmtree(tmp_path / "15")
    process(tmp_path, 14, "postgres: main", (TICK, 0, 10 * TICK))
    assert cpu.used(before, cpu.snapshot(tmp_path)) == {
        "spark": pytest.approx(5.0),
        "kafka": pytest.approx(3.0),
        "flow runs": pytest.approx(2.0),
        "postgres": pytest.approx(1.0),
    }


def test_the_figures_read_with_the_cores_they_had() -> None:
    line = cpu.format_cpu({"spark": 6.04, "seaweedfs": 2.0, "api": 0.03}, 7.0)
    cores = os.cpu_count() or 1
    assert line == f"spark 6.0, seaweedfs 2.0 CPU s; 8.1 of {cores * 7.0:.1f} on {cores} cores"
