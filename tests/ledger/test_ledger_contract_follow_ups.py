"""The LedgerStore contract, continued: deliveries and cancels, counts and figures, comparing and
editing the job, runs and the job record, a closed ledger."""

from __future__ import annotations

import pytest

from dispatcher.errors import LedgerError
from dispatcher.ledger import follow_ups
from dispatcher.ledger.lifecycle import LifecycleError
from dispatcher.ledger.records import DeliveryState
from dispatcher.ledger.store import (
    Delivery,
    JobRecord,
    LedgerStats,
    LedgerStore,
    Retired,
    Status,
)
from tests.support.ledger import make_command
from tests.support.stores import (
    NOW,
    in_flight,
    key_in_state,
    result_of,
)


def _accepted(store: LedgerStore, n: int, **fields: object) -> str:
    cmd = make_command(n, **fields)
    store.register([cmd])
    store.write_batch([in_flight(cmd.key)], [result_of(cmd.key, Status.ACCEPTED)])
    return cmd.key


def _delivery(key: str, send_status: int | None, confirm: str | None = None) -> Delivery:
    return Delivery(key, send_status, confirm, "t-send", None, None, NOW)


def test_rows_to_check_are_open_deliveries_by_device_then_job_order(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follow_ups, "PAGE", 2)  # pages of two rows
    b1 = _accepted(store, 1, imei="862")
    a1 = _accepted(store, 2, imei="861", product="meters")
    b2 = _accepted(store, 3, imei="862", args="second")
    a2 = _accepted(store, 4, imei="861", args="second")
    done = _accepted(store, 5, imei="860")
    key_in_state(store, 6, Status.PENDING)
    store.record_delivery([_delivery(done, 5), _delivery(b2, 3)])
    assert [r.key for r in store.rows_to_check()] == [a1, a2, b1, b2]
    assert [r.key for r in store.rows_to_check("meters")] == [a1]
    assert [r.key for r in store.rows_to_check("")] == [a2, b1, b2]
    assert store.count_to_check() == (4, 2, "2024-05-01T16:00:00")
    assert store.count_to_check("lamps") == (0, 0, None)
    assert store.products_to_check() == ["", "meters"]


def test_a_delivery_is_recorded_for_accepted_commands_only(store: LedgerStore) -> None:
    key = _accepted(store, 1)
    pending = key_in_state(store, 2, Status.PENDING)
    store.record_delivery([Delivery(key, 5, "ok", "t1", "t2", "result", NOW)])
    store.record_delivery([Delivery(key, 5, "ok", "t1", "t2", None, NOW + 1)])  # result kept
    (row,) = store.rows_of([key])
    assert (row.send_status, row.confirm_status, row.send_time, row.confirm_time) == (
        5, "ok", "t1", "t2",
    )  # fmt: skip
    assert (row.cmd_result, row.status_checked_at, row.delivery) == (
        "result", NOW + 1, DeliveryState.DELIVERED,
    )  # fmt: skip
    with pytest.raises(LifecycleError):
        store.record_delivery([_delivery(key, 4), _delivery(pending, 1)])
    assert store.rows_of([key])[0].send_status == 5
    with pytest.raises(LedgerError):
        store.record_delivery([_delivery("not-a-key", 1)])


def test_a_cancel_is_recorded_as_cancelled_or_refused(store: LedgerStore) -> None:
    cancelled, refused, unknown = (_accepted(store, n) for n in range(3))
    store.record_delivery([_delivery(refused, 3), _delivery(unknown, 1)])
    store.record_cancel([(cancelled, None, None), (refused, "already sent", 3),
                         (unknown, "no answer", None)])  # fmt: skip
    rows = store.rows_of([cancelled, refused, unknown])
    assert [(r.cancelled_at, r.cancel_error, r.send_status) for r in rows] == [
        (NOW, None, 2), (NOW, "already sent", 3), (NOW, "no answer", 1),
    ]  # fmt: skip
    pending = key_in_state(store, 5, Status.PENDING)
    with pytest.raises(LifecycleError):
        store.record_cancel([(cancelled, None, None), (pending, None, None)])


def test_the_delivery_breakdown_counts_a_device_under_its_least_happy_command(
    store: LedgerStore,
) -> None:
    d1, d2 = _accepted(store, 1, imei="861"), _accepted(store, 2, imei="861", args="b")
    d3 = _accepted(store, 3, imei="862")
    _accepted(store, 4, imei="863")
    key_in_state(store, 5, Status.FAILED)
    store.record_delivery([_delivery(d1, 5, "ok"), _delivery(d2, 4), _delivery(d3, 5, "ok")])
    found = store.delivery_breakdown()
    assert {s: n for s, n in found.commands.items() if n} == {
        DeliveryState.DELIVERED: 2, DeliveryState.EXPIRED: 1, DeliveryState.UNREAD: 1,
    }  # fmt: skip
    assert {s: n for s, n in found.devices.items() if n} == {
        DeliveryState.EXPIRED: 1, DeliveryState.DELIVERED: 1, DeliveryState.UNREAD: 1,
    }  # fmt: skip
    assert (found.not_held, found.devices_not_held, found.confirm_statuses) == (1, 1, [("ok", 2)])
    assert found.open == 1


def test_counts_and_figures_are_over_the_jobs_active_rows(store: LedgerStore) -> None:
    a = key_in_state(store, 1, Status.ACCEPTED)
    key_in_state(store, 2, Status.REJECTED)
    key_in_state(store, 3, Status.PENDING)
    store.register([make_command(4, product="meters"), make_command(5)])
    store.write_batch([in_flight(make_command(5).key)], [])
    store.write_batch([], [result_of(make_command(5).key, Status.REJECTED, attempts=3,
                                   latency_ms=10.0, errno=1)])  # fmt: skip
    job = [make_command(1), make_command(2), make_command(4, product="meters"), make_command(5)]
    store.compare(job, apply=True)  # 3 retired
    counts = store.counts()
    assert set(counts) == set(Status)
    assert {s: n for s, n in counts.items() if n} == {
        Status.ACCEPTED: 1, Status.REJECTED: 2, Status.PENDING: 1,
    }  # fmt: skip
    assert store.total() == 5
    assert store.retired_counts() == {"removed": 1, "changed": 0}
    assert store.product_counts() == {"": {"accepted": 1, "rejected": 2},
                                      "meters": {"pending": 1}}  # fmt: skip
    assert store.errno_groups() == [(0, "succ", 1), (1, "", 2)]
    assert store.stats() == LedgerStats(4, 3, 1000.0, 2000.0, 5, 2, 0, 3)
    assert store.latencies_at([1, 3, 2]) == [10.0, 40.0, 40.0]
    assert store.rows_of([a])[0].latency_ms == 40.0


def test_errno_groups_put_the_most_common_text_first(store: LedgerStore) -> None:
    for n, (errno, text) in enumerate([(5, "b"), (5, "a"), (5, "a"), (2, "z")]):
        key = key_in_state(store, n, Status.PENDING)
        store.write_batch(
            [in_flight(key)], [result_of(key, Status.REJECTED, errno=errno, error=text)]
        )
    assert store.errno_groups() == [(2, "z", 1), (5, "a", 2), (5, "b", 1)]


def test_a_dry_comparison_counts_the_differences_and_writes_nothing(store: LedgerStore) -> None:
    kept, edited, gone, moved = (key_in_state(store, n, Status.PENDING) for n in range(4))
    before = list(store.rows())
    job = [make_command(0), make_command(1, retry=9), make_command(3, line=99), make_command(7)]
    diff = store.compare(job, sample=1)
    assert (diff.changed, diff.removed, diff.returned, diff.new, diff.moved) == (1, 1, 0, 1, 1)
    assert [c.row.key for c in diff.changed_examples] == [edited]
    assert diff.changed_examples[0].fields == ("retry",)
    assert [r.key for r in diff.removed_examples] == [gone]
    assert not diff.applied and not diff.same
    assert list(store.rows()) == before and kept and moved


def test_applying_an_edit_keeps_the_old_row_aside_and_a_revert_takes_it_back(
    store: LedgerStore,
) -> None:
    key = key_in_state(store, 1, Status.FAILED)
    edit = make_command(1, retry=9)
    diff = store.compare([edit], apply=True)
    assert (diff.changed, diff.applied, diff.changed_at_onenet) == (1, True, 0)
    rows = {r.key: r for r in store.rows()}
    assert (rows[key].status, rows[key].command.retry, rows[key].retired) == (
        Status.PENDING, 9, None,
    )  # fmt: skip
    old = rows[f"{key}~1"]
    assert (old.status, old.command.retry, old.retired) == (Status.FAILED, 3, Retired.CHANGED)
    assert old.command.key == f"{key}~1"  # the row's key, set aside
    diff = store.compare([make_command(1)], apply=True)  # back to the version held
    assert (diff.returned, diff.changed) == (1, 0)
    rows = {r.key: r for r in store.rows()}
    assert (rows[key].status, rows[key].command.retry, rows[key].retired, rows[key].seq) == (
        Status.FAILED, 3, None, old.seq,
    )  # fmt: skip
    assert rows[key].command.key == key
    assert rows[f"{key}~2"].command.retry == 9


def test_a_removed_row_is_retired_and_returns_as_it_was(store: LedgerStore) -> None:
    stays, goes = key_in_state(store, 1, Status.PENDING), key_in_state(store, 2, Status.ACCEPTED)
    assert store.compare([make_command(1)], apply=True).removed == 1
    assert store.rows_of([goes])[0].retired is Retired.REMOVED
    diff = store.compare([make_command(1), make_command(2, line=50)], apply=True)
    assert (diff.returned, diff.removed) == (1, 0)
    (row,) = store.rows_of([goes])
    assert (row.retired, row.status, row.command.line) == (None, Status.ACCEPTED, 50)
    assert store.compare([make_command(1), make_command(2, line=50)]).same and stays


def test_runs_and_the_job_record_are_kept(store: LedgerStore) -> None:
    assert (store.runs(), store.job(), store.recorded_job_paths()) == ([], None, [])
    first = store.start_run("jobs/a.yaml", {"rate": 5, "api_key": "secret", "nested": {"token": 1}})
    second = store.start_run("jobs/b.yaml", {})
    store.start_run("jobs/a.yaml", {})
    store.finish_run(first, {"accepted": 3}, "stopped by the operator")
    runs = store.runs()
    assert [r.id for r in runs] == [first, second, second + 1] == [1, 2, 3]
    assert (runs[0].settings, runs[0].summary, runs[0].stop_reason) == (
        {"rate": 5, "nested": {}}, {"accepted": 3}, "stopped by the operator",
    )  # fmt: skip
    assert (runs[0].started_at, runs[0].finished_at, runs[1].finished_at) == (NOW, NOW, None)
    assert store.recorded_job_paths() == ["jobs/a.yaml", "jobs/b.yaml"]
    record = JobRecord("/jobs/a.yaml", "a", "ff", 3)
    store.set_job(record)
    assert store.job() == record


def test_a_closed_ledger_refuses_to_be_read_and_a_runs_error_wins(store: LedgerStore) -> None:
    run = store.start_run("jobs/a.yaml", {})
    store.close()
    store.close()  # idempotent
    with pytest.raises(LedgerError):
        store.counts()
    with pytest.raises(LedgerError):
        list(store.rows())
    disk = OSError("the disk is gone")
    with pytest.raises(OSError, match="the disk is gone") as caught:
        store.finish_run(run, {}, None, error=disk)
    assert any("could not be recorded either" in n for n in caught.value.__notes__)


def test_an_open_ledger_checks_out_and_a_closed_one_does_not(store: LedgerStore) -> None:
    store.check()
    store.close()
    with pytest.raises(LedgerError):
        store.check()
