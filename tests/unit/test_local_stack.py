"""Console scripts take the checkout's `.local/stack.env` only in a shell configured for nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.local_stack import load_stack_env

pytestmark = pytest.mark.unit


@pytest.fixture
def stack_env(tmp_path: Path) -> Path:
    path = tmp_path / "stack.env"
    path.write_text("AUTOLOADER_DATABASE_URL=postgresql+asyncpg://local/db\nPREFECT_API_URL=x\n")
    return path


def _without_autoloader(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AUTOLOADER_* variable, each restored (or removed again) after the test."""
    monkeypatch.setenv("AUTOLOADER_DATABASE_URL", "recorded")  # the file's, set by the test
    for name in list(os.environ):
        if name.startswith("AUTOLOADER_"):
            monkeypatch.delenv(name)


def test_a_new_shell_gets_the_local_stack(stack_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_autoloader(monkeypatch)
    monkeypatch.setenv("PREFECT_API_URL", "http://mine/api")

    assert load_stack_env(stack_env)

    assert os.environ["AUTOLOADER_DATABASE_URL"] == "postgresql+asyncpg://local/db"
    assert os.environ["PREFECT_API_URL"] == "http://mine/api"  # what is set wins


def test_a_configured_shell_is_left_alone(stack_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _without_autoloader(monkeypatch)
    monkeypatch.setenv("AUTOLOADER_ENV", "production")

    assert not load_stack_env(stack_env)
    assert not load_stack_env(stack_env.parent / "missing.env")

    assert "AUTOLOADER_DATABASE_URL" not in os.environ
