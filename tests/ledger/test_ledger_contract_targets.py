"""The LedgerStore contract for the frozen fleet (ledger/targets.py): every implementation keeps
the devices a targets_query found, in order, each once, never removing one; the SQLite ledger
keeps them in its file.

The ``store`` fixture (conftest.py) gives each implementation in turn.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from dispatcher.errors import LedgerError
from dispatcher.ledger.memory import MemoryLedger
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import FrozenTarget, LedgerStore

A, B, C = (
    FrozenTarget("490154203237518", "101"),
    FrozenTarget("356938035643809", "102"),
    (FrozenTarget("353918051234563", "dev-3")),
)


def test_a_ledger_without_a_query_has_no_frozen_list(store: LedgerStore) -> None:
    assert store.frozen_targets() == []


def test_frozen_devices_come_back_in_the_order_found_with_their_ids(store: LedgerStore) -> None:
    assert store.freeze_targets([B, A]) == 2
    assert store.frozen_targets() == [B, A]


def test_freezing_again_adds_only_new_devices_and_removes_none(store: LedgerStore) -> None:
    store.freeze_targets([A, B])
    assert store.freeze_targets([C, A]) == 1  # B is not in today's list: kept all the same
    assert store.frozen_targets() == [A, B, C]


def test_a_device_listed_twice_is_frozen_once_with_its_first_id(store: LedgerStore) -> None:
    assert store.freeze_targets([A, FrozenTarget(A.imei, "999"), B]) == 2
    assert store.frozen_targets() == [A, B]


def test_a_closed_ledger_refuses_the_frozen_list(store: LedgerStore) -> None:
    store.close()
    with pytest.raises(LedgerError):
        store.frozen_targets()
    with pytest.raises(LedgerError):
        store.freeze_targets([A])


def test_the_sqlite_ledger_keeps_the_frozen_list_in_its_file(tmp_path: Path) -> None:
    path = tmp_path / "job.ledger.db"
    with Ledger.open(path) as ledger:
        ledger.freeze_targets([A, B])
    with Ledger.open(path, read_only=True) as ledger:
        assert ledger.frozen_targets() == [A, B]


def test_a_read_only_ledger_without_a_frozen_list_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "job.ledger.db"
    Ledger.open(path).close()
    with Ledger.open(path, read_only=True) as ledger:
        assert ledger.frozen_targets() == []


imeis = st.lists(st.sampled_from([A, B, C, FrozenTarget(A.imei, "x")]), max_size=6)


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(imeis, max_size=4))
def test_both_ledgers_freeze_the_same_list_as_a_first_seen_union(
    tmp_path_factory: pytest.TempPathFactory, batches: list[list[FrozenTarget]]
) -> None:
    path = tmp_path_factory.mktemp("l") / "job.ledger.db"
    expected: dict[str, FrozenTarget] = {}
    with Ledger.open(path) as sqlite, MemoryLedger() as memory:
        for batch in batches:
            new = {t.imei for t in batch} - set(expected)
            for t in batch:
                expected.setdefault(t.imei, t)
            assert sqlite.freeze_targets(batch) == memory.freeze_targets(batch) == len(new)
        assert sqlite.frozen_targets() == memory.frozen_targets() == list(expected.values())
