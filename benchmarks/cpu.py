"""CPU time by part of the stack during a benchmark round, read from /proc (Linux only).

A process is named by its command line (`PARTS`); processes of no part are left out. A
process that ends within the round is counted through its parent's children time, which is
right when the parent is of the same part and waits for it (PostgreSQL's backends, the flow
runs the fork server forks); one whose parent does not wait for it is missed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

# (part, words its command line holds), first match wins.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("spark", ("java", "spark")),
    ("kafka", ("java", "kafka")),
    ("seaweedfs", ("weed",)),
    ("postgres", ("postgres",)),
    ("flow runs", ("prefect", "worker")),  # the worker's fork server, and the runs it forks
    ("prefect server", ("prefect", "server")),
    ("processor", ("autoloader-processor",)),
    ("discovery", ("autoloader-discovery",)),
    ("api", ("autoloader-api",)),
    ("scheduler-sync", ("autoloader-sync",)),
    ("bench", ("benchmarks.",)),
)
PROC = Path("/proc")


def part_of(command_line: str) -> str | None:
    words = command_line.split()
    for part, needles in PARTS:
        if all(any(needle in word for word in words) for needle in needles):
            return part
    return None


def seconds_of(stat: str) -> float:
    """User and system time of a process and of its children it has waited for, from the
    text of /proc/PID/stat (the name field may hold spaces and parentheses)."""
    fields = stat.rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def snapshot(proc: Path = PROC) -> dict[int, tuple[str, float]]:
    """Every process of a part: pid -> (part, CPU seconds so far)."""
    found = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command_line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (entry / "stat").read_text()
        except OSError:  # it ended while being read
            continue
        if (part := part_of(command_line)) is not None:
            found[int(entry.name)] = (part, seconds_of(stat))
    return found


def used(
    before: Mapping[int, tuple[str, float]], after: Mapping[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds each part used between two snapshots, most first.

    A process that ended in between has all its CPU counted again in its parent's children
    time (PostgreSQL's backends, the fork server's flow runs): what it had used before is
    taken off its part, so that only the round's share is left."""
    by_part: dict[str, float] = {}
    for pid, (part, seconds) in after.items():
        start = before[pid][1] if pid in before and before[pid][0] == part else 0.0
        by_part[part] = by_part.get(part, 0.0) + seconds - start
    for pid, (part, seconds) in before.items():
        if after.get(pid, ("", 0.0))[0] != part:  # ended, or the pid names another process
            by_part[part] = by_part.get(part, 0.0) - seconds
    return dict(sorted(((p, s) for p, s in by_part.items() if s > 0), key=lambda i: -i[1]))


@contextmanager
def cpu_used() -> Iterator[dict[str, float]]:
    """CPU seconds by part used in the block; empty where there is no /proc."""
    found: dict[str, float] = {}
    if not PROC.is_dir():
        yield found
        return
    before = snapshot()
    try:
        yield found
    finally:
        found.update(used(before, snapshot()))


def format_cpu(cpu: Mapping[str, float], seconds: float) -> str:
    """`spark 6.1, seaweedfs 2.0, ... CPU s; 10.9 of 14.0 on 2 cores`."""
    parts = ", ".join(f"{part} {value:.1f}" for part, value in cpu.items() if value >= 0.05)
    cores = os.cpu_count() or 1
    total = sum(cpu.values())
    return f"{parts} CPU s; {total:.1f} of {cores * seconds:.1f} on {cores} cores"
