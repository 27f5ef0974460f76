"""What every benchmark does with its figures: print them, and keep them as JSON so that runs
can be compared (`bench-results/<name>-<UTC time>.json`, plus `<name>-latest.json`)."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "bench-results"


def machine() -> dict[str, Any]:
    """The machine a run measured, so that a figure is never quoted without it."""
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(memory_gib, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in (0, 1]) of a non-empty sample."""
    if not values:
        raise ValueError("no values to take a percentile of")
    ordered = sorted(values)
    rank = min(max(1, math.ceil(fraction * len(ordered))), len(ordered))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("no rounds to take a median of")
    return statistics.median(values)


def save(name: str, figures: dict[str, Any], results: Path = RESULTS) -> Path:
    """Write ``figures`` with the machine and the time; return the timestamped file."""
    now = datetime.now(UTC)
    document = {"benchmark": name, "at": now.isoformat(), "machine": machine(), **figures}
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    text = json.dumps(document, indent=2, default=str) + "\n"
    path.write_text(text)
    (results / f"{name}-latest.json").write_text(text)
    print(f"figures saved to {path}")
    return path
