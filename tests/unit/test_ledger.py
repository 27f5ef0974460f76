"""The end-of-test ledger check (tests/e2e/ledger.py) can fail: each way the tables and
`file_state` can disagree is reported, and files in flight are left out."""

from __future__ import annotations

from tests.e2e.ledger import disagreements, expected_per_table

OWN = {"table": "orders"}
TABLE = "spark_catalog.default.orders"


def test_agreeing_history_and_table_report_nothing() -> None:
    files = [(OWN, None, "s3://b/a.json", "SUCCESS", 3), (OWN, None, "s3://b/e.json", "SUCCESS", 0)]
    expected, in_flight, problems = expected_per_table(files)
    assert disagreements(expected, in_flight, {TABLE: {"s3://b/a.json": 3}}) == problems == []


def test_every_kind_of_disagreement_is_reported() -> None:
    files = [
        (OWN, None, "s3://b/twice.json", "SUCCESS", 2),
        (OWN, None, "s3://b/failed.json", "FAILED", None),
        (OWN, None, "s3://b/uncounted.json", "SUCCESS", None),
        (OWN, "spark_catalog.default.rebuilt", "s3://b/moved.json", "SUCCESS", 1),
    ]
    expected, in_flight, problems = expected_per_table(files)
    landed = {
        TABLE: {"s3://b/twice.json": 4, "s3://b/failed.json": 1, "s3://b/stray.json": 5},
        "spark_catalog.default.rebuilt": None,
    }
    found = problems + disagreements(expected, in_flight, landed)
    assert len(found) == 5, found
    for word in ("twice", "failed", "uncounted", "stray", "moved"):
        assert any(word in problem for problem in found), (word, found)


def test_files_in_flight_are_left_out() -> None:
    files = [
        (OWN, None, "s3://b/a.json", "CLAIMED", None),
        (OWN, None, "s3://b/b.json", "PENDING", None),
    ]
    expected, in_flight, problems = expected_per_table(files)
    assert disagreements(expected, in_flight, {TABLE: {"s3://b/a.json": 7}}) == problems == []
