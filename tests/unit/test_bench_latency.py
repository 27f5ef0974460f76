"""The pure parts of `make bench-latency` (benchmarks/latency.py): which commit made each
upload visible, the rows check, and the figures."""

from __future__ import annotations

import json

import pytest

from benchmarks.latency import (
    Commit,
    Upload,
    burst_figures,
    check_rows,
    file_body,
    notified_ingestion,
    parse_args,
    samples,
    trickle_figures,
)

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0


def path(name: str) -> str:
    return f"s3://autoloader-landing/bench-latency/x/{name}"


def test_an_upload_is_visible_from_the_first_commit_that_holds_its_rows() -> None:
    uploads = [Upload(path("a.json"), T0), Upload(path("b.json"), T0 + 1)]
    found = [
        Commit(1, T0 + 1.2, frozenset({path("a.json")})),
        Commit(2, T0 + 2.5, frozenset({path("b.json"), path("a.json")})),  # a replay, say
    ]

    taken = samples(uploads, found)

    assert [sample.seconds for sample in taken] == pytest.approx([1.2, 1.5])
    assert [sample.files_in_commit for sample in taken] == [1, 2]
    with pytest.raises(RuntimeError, match="in no commit"):
        samples([Upload(path("c.json"), T0)], found)


def test_the_rows_check_names_missing_extra_and_short_files() -> None:
    uploads = [Upload(path(name), T0) for name in ("a.json", "b.json", "c.json")]
    check_rows({path("a.json"): 10, path("b.json"): 10, path("c.json"): 10}, uploads, 10)
    counted = {path("a.json"): 10, path("b.json"): 20, path("z.json"): 10}
    with pytest.raises(RuntimeError) as refused:
        check_rows(counted, uploads, 10)
    message = str(refused.value)
    assert "c.json: missing" in message
    assert "z.json: not uploaded here" in message
    assert "b.json: 20 rows, not 10" in message


def test_trickle_and_burst_figures(capsys: pytest.CaptureFixture[str]) -> None:
    trickled = [Upload(path(f"t{n}.json"), T0 + n) for n in range(20)]
    found = [Commit(n, T0 + n + 1 + n / 100, frozenset({u.path})) for n, u in enumerate(trickled)]
    trickle = trickle_figures(samples(trickled, found))
    assert [trickle["p50_s"], trickle["p95_s"]] == pytest.approx([1.09, 1.18])
    assert len(trickle["samples"]) == 20

    began = T0 + 100
    burst = [Upload(path(f"b{n}.json"), began + n / 100) for n in range(10)]
    commits = [
        Commit(100, began + 3, frozenset(u.path for u in burst[:6])),
        Commit(101, began + 5, frozenset(u.path for u in burst[6:])),
    ]
    figures = burst_figures(burst, samples(burst, found + commits), began, found + commits)
    assert (figures["first_rows_s"], figures["last_rows_s"]) == (3, 5)
    assert figures["files_per_commit"] == [6, 4]
    printed = capsys.readouterr().out
    assert "p50 1.09 s" in printed and "2 commits of 6, 4 files" in printed
    json.dumps(trickle | figures)  # what report.save writes


def test_the_ingestion_takes_notifications_and_each_upload_its_rows() -> None:
    body = notified_ingestion("bench_latency_x", "bench-latency/bench_latency_x/")
    assert body["source"]["notifications"]["enabled"] is True
    assert body["source"]["path"] == "s3://autoloader-landing/bench-latency/bench_latency_x/"
    lines = file_body("burst", 7, 3).decode().splitlines()
    assert [json.loads(line)["row"] for line in lines] == [0, 1, 2]
    args = parse_args(["--trickle-seconds", "5", "--burst", "0"])
    assert (args.trickle_seconds, args.burst, args.rows) == (5, 0, 10)
