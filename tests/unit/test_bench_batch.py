"""The pure part of `make bench-batch` (benchmarks/batch_profile.py): a step's Spark jobs, read
from Spark's monitoring API, count only the stages that ran."""

from __future__ import annotations

import httpx

from benchmarks.batch_profile import Job, SparkUi, Step, slices

JOBS = [
    {"jobId": 7, "stageIds": [10]},
    {"jobId": 8, "stageIds": [11, 12]},  # 11 was skipped: its shuffle output was reused
    {"jobId": 9, "stageIds": [13]},
]
STAGES = [
    {"stageId": 10, "status": "COMPLETE", "numTasks": 16, "executorRunTime": 2500},
    {"stageId": 11, "status": "SKIPPED", "numTasks": 16, "executorRunTime": 0},
    {"stageId": 12, "status": "COMPLETE", "numTasks": 1, "executorRunTime": 20},
    {"stageId": 13, "status": "COMPLETE", "numTasks": 4, "executorRunTime": 300},
]


def spark_ui() -> SparkUi:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v1/applications":
            return httpx.Response(200, json=[{"id": "app-1"}])
        if path == "/api/v1/applications/app-1/jobs":
            return httpx.Response(200, json=JOBS)
        if path == "/api/v1/applications/app-1/stages":
            return httpx.Response(200, json=STAGES)
        return httpx.Response(404)

    return SparkUi("http://spark-ui", httpx.MockTransport(answer))


def test_jobs_after_a_job_count_the_stages_that_ran() -> None:
    ui = spark_ui()
    assert ui.last_job() == 9
    assert ui.jobs_after(7) == [Job(1, 0.02), Job(4, 0.3)]


def test_a_step_line_names_each_job_or_none() -> None:
    assert "16t/2.50s 1t/0.02s" in Step("batch read", 1.2, [Job(16, 2.5), Job(1, 0.02)]).line()
    assert "jobs: -  CPU s: spark 0.00, seaweedfs 0.00" in Step("release", 0.01).line()
    assert (
        Step("read", 1.0, cpu={"spark": 1.234, "kafka": 9.0})
        .line()
        .endswith("CPU s: spark 1.23, seaweedfs 0.00")
    )


def test_folder_batches_are_slices_in_key_order_never_read_twice() -> None:
    sizes = {f"s3://b/f/{n:02d}.json": n for n in range(10, 0, -1)}
    first, second = slices(sizes, 3, 2, 2)
    assert list(first) == ["s3://b/f/07.json", "s3://b/f/08.json", "s3://b/f/09.json"]
    assert first["s3://b/f/07.json"] == 7
    assert list(second) == ["s3://b/f/10.json"]  # the folder's last
