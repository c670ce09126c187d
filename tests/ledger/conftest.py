"""Fixtures of the ledger's tests: where a ledger file goes, an open SQLite ledger, and each
LedgerStore implementation in turn (``store``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import (
    LedgerStore,
)
from tests.support.stores import (
    NOW,
    OPENERS,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the test's ledger file goes."""
    return tmp_path / "job.ledger.db"


@pytest.fixture
def ledger(path: Path) -> Iterator[Ledger]:
    """A SQLite ledger open at ``path``, closed after the test."""
    with Ledger.open(path) as opened:
        yield opened


@pytest.fixture(params=sorted(OPENERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerStore]:
    """Each LedgerStore implementation in turn, open in tmp_path."""
    with OPENERS[request.param](tmp_path, lambda: NOW) as opened:
        yield opened
