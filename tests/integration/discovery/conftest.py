"""Fixtures for discovery tests: the run tests' sessions and throwaway ingestion."""

from tests.integration.runs.conftest import ingestion, sessions

__all__ = ["ingestion", "sessions"]
