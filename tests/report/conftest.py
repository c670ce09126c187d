"""Fixtures of the report tests: a SQLite ledger to summarise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.ledger.sqlite import Ledger


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A SQLite ledger in tmp_path, closed after the test."""
    with Ledger.open(tmp_path / "job.ledger.db", synchronous="normal") as opened:
        yield opened
