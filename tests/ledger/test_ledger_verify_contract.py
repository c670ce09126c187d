"""The LedgerStore contract of verify records, for every implementation (OPENERS): each device's
latest verdict kept in place of the last, read back in order; device ids kept by IMEI; a ledger
never verified has none, and a read-only SQLite ledger reads them too."""

from __future__ import annotations

from pathlib import Path

from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import LedgerStore, VerifyResult, VerifyState
from tests.support.ledger import make_command


def _result(
    imei: str, state: VerifyState, value: str | None = None, product: str = ""
) -> VerifyResult:
    return VerifyResult(imei, product, state, value, 1000.0 if value else None, "command", "why")


def test_a_ledger_never_verified_has_no_results_and_no_ids(store: LedgerStore) -> None:
    assert store.verify_results() == []
    assert store.device_ids() == {}


def test_each_devices_latest_verdict_replaces_its_last(store: LedgerStore) -> None:
    store.record_verify(
        [_result("862", VerifyState.NOT_YET, "2.3.0"), _result("861", VerifyState.NEVER_SEEN)]
    )
    store.record_verify([_result("862", VerifyState.ON_TARGET, "2.4.1")])
    assert store.verify_results() == [
        _result("861", VerifyState.NEVER_SEEN),
        _result("862", VerifyState.ON_TARGET, "2.4.1"),
    ]


def test_a_device_of_two_products_has_a_verdict_in_each(store: LedgerStore) -> None:
    store.record_verify(
        [
            _result("861", VerifyState.FAILED, product="b"),
            _result("861", VerifyState.ON_TARGET, "x"),
        ]
    )
    assert [(r.product, r.state) for r in store.verify_results()] == [
        ("", VerifyState.ON_TARGET),
        ("b", VerifyState.FAILED),
    ]


def test_device_ids_are_kept_and_added_to(store: LedgerStore) -> None:
    store.record_device_ids({"861": "1001", "862": "1002"})
    store.record_device_ids({"862": "2002", "863": "1003"})
    assert store.device_ids() == {"861": "1001", "862": "2002", "863": "1003"}


def test_a_read_only_ledger_reads_the_verify_results(tmp_path: Path) -> None:
    path = tmp_path / "job.ledger.db"
    with Ledger.open(path) as ledger:
        ledger.register([make_command(1)])
        with Ledger.open(path, read_only=True) as before:
            assert before.verify_results() == []
        ledger.record_verify([_result("861", VerifyState.ON_TARGET, "2.4.1")])
    with Ledger.open(path, read_only=True) as reader:
        assert [r.state for r in reader.verify_results()] == [VerifyState.ON_TARGET]
