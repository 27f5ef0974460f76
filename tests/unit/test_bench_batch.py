"""The pure part of `make bench-batch` (benchmarks/batch_profile.py): a step's Spark jobs, read
from Spark's monitoring API, count only the stages that ran."""

from __future__ import annotations

import httpx

from benchmarks.batch_profile import Job, SparkUi, Step

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
    assert Step("release", 0.01).line().endswith("jobs: -")
