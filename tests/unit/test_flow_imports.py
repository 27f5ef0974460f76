"""Prefect's worker starts every flow run in a new interpreter, which imports the flow module
before the run is marked running: that import leaves out what only a later step needs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

# Imported by the step that needs them, not by the module.
LATER = ("aiokafka", "boto3", "autoloader_discovery.backfill", "autoloader_discovery.listing")


def test_importing_the_flow_module_leaves_the_later_steps_dependencies_out() -> None:
    probe = (
        "import json, sys; import autoloader_discovery.flows; "
        f"print(json.dumps([name for name in {LATER!r} if name in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )

    assert json.loads(result.stdout.splitlines()[-1]) == []
