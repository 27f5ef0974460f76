"""The pure parts of `make bench` (benchmarks/throughput.py): rounds, medians, ratios, phases
and the printed summary."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.throughput import (
    COLUMNS,
    Column,
    Commits,
    Measured,
    Round,
    brief,
    epoch,
    figures,
    file_body,
    format_round,
    format_summary,
    ingestion_body,
    judged,
    parse_args,
    phases,
    ratio,
    rotation,
    sampled_rss,
    summarize,
)

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0  # the trigger, in epoch seconds: 2027-01-15T08:00:00Z


def a_round(column: Column, seconds: float, files: int = 2000, **extra: object) -> Round:
    return Round(column, files, 0, seconds, files * 10, **extra)  # type: ignore[arg-type]


def test_every_column_takes_every_place_in_turn() -> None:
    orders = [rotation(n) for n in range(3)]
    assert orders[0] == COLUMNS
    for place in range(3):
        assert {order[place] for order in orders} == set(COLUMNS)
    assert rotation(3) == rotation(0)


def test_a_round_with_the_expected_rows_is_a_figure() -> None:
    done = judged("limit", 2000, 1, Measured(13.1, 20_000), expected=20_000)
    assert done.error is None
    assert done.files_per_second == pytest.approx(2000 / 13.1)


def test_a_round_with_missing_or_extra_rows_is_an_error() -> None:
    short = judged("autoloader", 2000, 0, Measured(28.6, 19_990), expected=20_000)
    doubled = judged("stream", 2000, 0, Measured(30.0, 40_000), expected=20_000)
    assert short.error == "19,990 rows, expected 20,000"
    assert doubled.error == "40,000 rows, expected 20,000"


def test_ratios_are_throughput_ratios() -> None:
    assert ratio(30.0, 20.0) == pytest.approx(1.5)  # the peer takes longer: Autoloader 1.5x
    assert ratio(13.0, 26.0) == pytest.approx(0.5)
    assert ratio(None, 20.0) is None
    assert ratio(30.0, None) is None


def test_api_timestamps_become_epoch_seconds() -> None:
    assert epoch("2027-01-15T08:00:00Z") == T0
    assert epoch("2027-01-15T09:00:01.5+01:00") == T0 + 1.5
    assert epoch("2027-01-15T08:00:02") == T0 + 2  # no offset: UTC
    assert epoch(None) is None


def test_phases_are_seconds_from_the_trigger() -> None:
    run = {
        "created_at": "2027-01-15T08:00:00.050000Z",
        "started_at": "2027-01-15T08:00:07.900000Z",
        "finished_at": "2027-01-15T08:00:28.400000Z",
    }
    moments = phases(T0, run, T0 + 9.0, Commits(T0 + 14.0, T0 + 28.0, 4))
    assert moments == pytest.approx(
        {
            "queued": 0.05,
            "flow_running": 7.9,
            "discovered": 9.0,
            "first_commit": 14.0,
            "last_commit": 28.0,
            "closed": 28.4,
        }
    )


def test_phases_a_run_did_not_reach_are_left_out() -> None:
    run = {"created_at": "2027-01-15T08:00:00Z", "started_at": None, "finished_at": None}
    assert phases(T0, run, None, None) == {"queued": 0.0}


def test_summary_takes_medians_of_valid_rounds_of_its_size_only() -> None:
    rounds = [
        a_round("limit", 13.0),
        a_round("limit", 14.0),
        a_round("limit", 99.0, error="19,990 rows, expected 20,000"),
        a_round("stream", 30.0),
        a_round("stream", 32.0),
        a_round("autoloader", 20.0, phases={"flow_running": 8.0}, commits=4),
        a_round("autoloader", 22.0, phases={"flow_running": 6.0}, commits=4),
        a_round("autoloader", 500.0, files=20000),
    ]
    summary = summarize(rounds, 2000)
    assert summary.seconds == {"limit": 13.5, "stream": 31.0, "autoloader": 21.0}
    assert summary.errors == {"limit": 1, "stream": 0, "autoloader": 0}
    assert summary.vs_stream == pytest.approx(31.0 / 21.0)
    assert summary.vs_limit == pytest.approx(13.5 / 21.0)
    assert summary.phases == {"flow_running": 7.0}
    assert summary.commits == 4


def test_summary_of_a_column_without_valid_rounds_has_no_ratio() -> None:
    summary = summarize([a_round("limit", 13.0), a_round("autoloader", 1.0, error="x")], 2000)
    assert summary.seconds == {"limit": 13.0}
    assert summary.vs_limit is None
    assert summary.vs_stream is None
    assert summary.phases == {}


def test_the_printed_summary_shows_medians_ratios_and_phases() -> None:
    moments = {"queued": 0.0, "flow_running": 8.0, "discovered": 9.0}
    rounds = [
        a_round("limit", 13.1),
        a_round("stream", 30.7),
        a_round("autoloader", 28.6, phases={**moments, "last_commit": 28.0}, commits=4),
        a_round("stream", 1.0, error="RuntimeError: gone"),
    ]
    text = format_summary(summarize(rounds, 2000), rows_per_file=10, repeat=3)
    lines = text.splitlines()
    assert lines[0] == "2,000 files x 10 rows, medians of 3 rounds:"
    assert "Spark batch, one commit (limit)" in lines[1]
    assert "13.1 s" in lines[1] and "152.7 files/s" in lines[1]
    assert "30.7 s" in lines[2] and "(1 error rounds left out)" in lines[2]
    assert "28.6 s" in lines[3] and "69.9 files/s" in lines[3]
    assert "vs file stream 1.07x" in lines[4] and "vs the one-batch limit 0.46x" in lines[4]
    assert lines[5] == (
        "  Autoloader phases: queued 0.0 -> flow running 8.0 -> discovered 9.0 -> "
        "last commit 28.0 s from the trigger; 4 commits"
    )


def test_the_printed_summary_says_when_a_column_has_no_figure() -> None:
    text = format_summary(summarize([a_round("autoloader", 28.6)], 2000), 10, 1)
    assert "no valid round" in text
    assert "vs file stream n/a" in text


def test_every_round_is_printed_with_its_rate_or_its_error() -> None:
    ours = a_round("autoloader", 20.0, phases={"flow_running": 7.5}, commits=4)
    assert "100.0 files/s" in format_round(ours, 3)
    assert "4 commits; flow running 7.5 s from the trigger" in format_round(ours, 3)
    failed = Round("stream", 20000, 2, error="TimeoutError: not done")
    line = format_round(failed, 3)
    assert line.startswith("round 3/3")
    assert "20,000 files  Spark file stream (AvailableNow)" in line
    assert line.endswith("ERROR: TimeoutError: not done")


def test_an_error_is_one_short_line() -> None:
    error = RuntimeError("first line " + "x" * 400 + "\n\tat org.apache.spark.Some(Frame)")
    assert brief(error).startswith("RuntimeError: first line")
    assert len(brief(error)) < 320
    assert "\n" not in brief(error)


def test_autoloader_keeps_its_default_batch_size_unless_asked() -> None:
    body = ingestion_body("bench_x", "s3://autoloader-landing/bench/2000/", None)
    assert "execution" not in body
    assert ingestion_body("bench_x", "s3://b/p/", 2000)["execution"] == {
        "max_files_per_batch": 2000
    }


def test_options_and_their_defaults() -> None:
    assert parse_args([]).sizes == [2000, 20000]
    assert parse_args([]).max_files_per_batch is None
    args = parse_args(["--sizes", "2000", "2000", "500", "--repeat", "5"])
    assert args.sizes == [2000, 500]
    assert args.repeat == 5


def test_files_hold_the_rows_with_unique_ids() -> None:
    rows = [json.loads(line) for n in (0, 1) for line in file_body(n, 10).splitlines()]
    assert len(rows) == 20
    assert len({row["id"] for row in rows}) == 20


def test_figures_are_json_with_every_round_and_the_ratios() -> None:
    rounds = [a_round("limit", 13.0), a_round("stream", 30.0), a_round("autoloader", 20.0)]
    saved = figures(parse_args(["--sizes", "2000"]), rounds, [summarize(rounds, 2000)])
    document = json.loads(json.dumps(saved))
    assert len(document["rounds"]) == 3
    assert document["parameters"]["batch_size_is_default"] is True
    assert document["sizes"][0]["vs_stream"] == pytest.approx(1.5)


# A child that touches 64 MiB when told to, then says so. A child, not the test's process: after
# the whole suite that process is large, and its allocator may hand the ballast memory that is
# already resident, freed by earlier tests, so its RSS need not grow (seen in CI).
BALLAST = """
import sys
sys.stdin.readline()
ballast = bytearray(64 * 1024 * 1024)
ballast[::4096] = b"x" * len(ballast[::4096])
print("touched", flush=True)
sys.stdin.readline()
"""


def test_the_rss_of_a_live_process_is_sampled_until_the_block_ends() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", BALLAST], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        with sampled_rss(child.pid, every=0.01) as memory:
            child.stdin.write("go\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "touched"
            assert memory == {}  # filled in when the block ends
    finally:
        child.kill()
        child.wait()

    assert set(memory) == {"start", "peak", "end"}
    assert memory["peak"] >= memory["start"] + 60


def test_no_process_no_memory_figure() -> None:
    with sampled_rss(None) as memory:
        pass
    with sampled_rss(2**22 + 12345) as gone:  # above Linux's largest pid
        pass
    assert memory == {} and gone == {}


def test_an_autoloader_round_shows_the_processor_memory() -> None:
    memory = {"start": 301.4, "peak": 352.6, "end": 310.0}
    text = format_round(a_round("autoloader", 20.0, commits=4, memory=memory), 3)
    assert text.splitlines()[1].strip() == "processor RSS start 301 -> peak 353 -> end 310 MiB"


def test_a_round_shows_the_cpu_each_part_used() -> None:
    text = format_round(a_round("limit", 4.0, cpu={"spark": 3.14, "seaweedfs": 1.4}), 3)
    line = text.splitlines()[1].strip()
    assert line.startswith("spark 3.1, seaweedfs 1.4 CPU s; 4.5 of ")
