"""Fixtures of the run's tests: a small job of one command per device, its ledger beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.runs import Setup, timed_job


@pytest.fixture
def small_job(tmp_path: Path) -> Setup:
    """A CSV job of one command to each of 20 devices, not yet run."""
    return timed_job(tmp_path, 20)
