"""A short `make chaos`: three fault trials on the running stack, each exact and within 90 s.
The full count (`make chaos TRIALS=30`) is for people; see docs/chaos.md.

The harness takes the stack lock exclusively itself: run this test without `flock`."""

from __future__ import annotations

import pytest

from devstack.components.api import ProcessorPool
from tests.chaos.__main__ import main
from tests.chaos.faults import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FAULTS = "kill-9 processor,restart postgres,restart spark-connect"


def test_three_fault_trials_land_every_row_once_within_90_seconds(
    stack_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    stack = Stack.discover()
    if ProcessorPool(stack.layout, stack.addresses).pid() is None:
        pytest.skip("needs the native stack (`make up`) to kill and restart its components")
    code = main(["--trials", "3", "--seed", "11", "--faults", FAULTS, "--in-turn"])
    output = capsys.readouterr().out
    print(output)
    assert output.strip().splitlines()[-1].startswith("3/3 exact"), output
    assert code == 0
