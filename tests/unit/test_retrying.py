"""shared.consumers.retrying: transient failures are retried with a doubling, capped wait;
any other failure is raised at once."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import DBAPIError

from shared.consumers import is_transient, retrying

pytestmark = pytest.mark.unit


class Flaky:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


async def test_transient_failures_are_retried_with_doubling_waits_up_to_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    action = Flaky([OSError("down")] * 4)
    with caplog.at_level(logging.WARNING, logger="shared.consumers"):
        result = await retrying(action, "the thing", initial_seconds=0.01, max_seconds=0.03)

    assert (result, action.calls) == ("done", 5)
    waits = [record.args[-1] for record in caplog.records]  # type: ignore[index]
    assert waits == pytest.approx([0.01, 0.02, 0.03, 0.03])
    assert caplog.records[0].getMessage().startswith("the thing: OSError: down; retrying in")


async def test_a_failure_that_is_not_transient_is_raised_at_once() -> None:
    action = Flaky([OSError("down"), ValueError("bad input")])
    with pytest.raises(ValueError, match="bad input"):
        await retrying(action, "the thing", initial_seconds=0.01)
    assert action.calls == 2


class DriverError(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [
        ("57P03", True),  # the database system is shutting down / starting up
        ("57P01", True),  # terminating connection due to administrator command
        ("08006", True),  # connection failure
        ("53300", True),  # too many connections
        ("23505", False),  # a unique violation is the statement's own fault
        ("42P01", False),  # undefined table
    ],
)
def test_a_database_restarting_is_transient_whatever_the_driver_wraps_it_in(
    sqlstate: str, transient: bool
) -> None:
    error = DBAPIError("SELECT 1", None, DriverError("the database says no", sqlstate))
    assert is_transient(error) is transient
