"""The LedgerStore contract: every implementation, run through the same cases.

The ``store`` fixture gives each implementation in turn (the SQLite ledger, the in-memory one); a
new one (PostgreSQL) is held to the same contract by adding an opener to ``OPENERS``. Beside the
named cases, tests/ledger/test_ledger_twins.py drives both with the same random operations and
compares every answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dispatcher.errors import LedgerError
from dispatcher.ledger import follow_ups
from dispatcher.ledger.lifecycle import TABLE, Event, LifecycleError, target
from dispatcher.ledger.memory import MemoryLedger
from dispatcher.ledger.records import DeliveryState
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import (
    Delivery,
    InFlight,
    JobRecord,
    LedgerStats,
    LedgerStore,
    Result,
    Retired,
    Status,
)
from dispatcher.model import Op, WriteValue
from dispatcher.times import parse_timespec
from tests.support.ledger import make_command

NOW = 1_700_000_000.0
Opener = Callable[[Path, Callable[[], float]], LedgerStore]

# Each implementation of LedgerStore, by name: open an empty ledger under ``tmp``.
OPENERS: dict[str, Opener] = {
    "sqlite": lambda tmp, clock: Ledger.open(tmp / "job.ledger.db", clock=clock),
    "memory": lambda tmp, clock: MemoryLedger(tmp / "job.ledger.db", clock=clock),
}


@pytest.fixture(params=sorted(OPENERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LedgerStore]:
    with OPENERS[request.param](tmp_path, lambda: NOW) as opened:
        yield opened


def _mark(key: str, at: float = 1000.0, server_at: float | None = None) -> InFlight:
    return InFlight(key, at, "2024-05-01T10:00:00", "2024-05-01T16:00:00", 1, server_at)


def _result(key: str, status: Status, **fields: object) -> Result:
    values: dict[str, object] = {"errno": None, "error": "", "uuid": None, "attempts": 1,
                                 "at": 2000.0, "latency_ms": 40.0}  # fmt: skip
    if status is Status.ACCEPTED:
        values.update(errno=0, error="succ", uuid=f"u-{key[:6]}")
    values.update(fields)
    return Result(key, status, **values)  # type: ignore[arg-type]


def _status(store: LedgerStore, key: str) -> Status:
    (row,) = store.rows_of([key])
    return row.status


def _in_state(store: LedgerStore, n: int, state: Status) -> str:
    """Register command ``n`` and bring it to ``state`` by the events a run writes."""
    cmd = make_command(n)
    store.register([cmd])
    key = cmd.key
    sent = {Status.ACCEPTED, Status.REJECTED, Status.FAILED, Status.IN_DOUBT, Status.IN_FLIGHT}
    if state in sent:
        store.write_batch([_mark(key)], [])
    if state in sent - {Status.IN_FLIGHT}:
        errno = {Status.FAILED: None, Status.ACCEPTED: 0}.get(state, 1)
        store.write_batch([], [_result(key, state, errno=errno)])
    elif state is Status.EXPIRED:
        store.write_batch([], [_result(key, Status.EXPIRED, attempts=0)])
    elif state is Status.RETRIED:
        store.hand_over([key], "retry.csv")
    elif state is Status.SKIPPED:
        store.skip([key], "a rule")
    assert _status(store, key) is state
    return key


# -- registering and reading ---------------------------------------------------------------------


def test_register_adds_new_commands_as_pending_and_keeps_existing_ones(store: LedgerStore) -> None:
    cmds = [make_command(i) for i in range(3)]
    assert store.register(cmds[:2]) == [Status.PENDING] * 2
    store.write_batch([_mark(cmds[0].key)], [_result(cmds[0].key, Status.ACCEPTED)])
    assert store.register(cmds) == [Status.ACCEPTED, Status.PENDING, Status.PENDING]
    assert store.total() == 3
    assert [r.seq for r in store.rows()] == [1, 2, 3]


def test_a_row_holds_every_field_of_its_command(store: LedgerStore) -> None:
    cmd = make_command(7, valid_time=parse_timespec("2030-01-02 03:04:05"), args=None, retry=10,
                       timeout=40, trigger_msg=4, op="read", obj_inst_id=None, res_id=None,
                       step=2, after="k-before", product="meters")  # fmt: skip
    store.register([cmd])
    (row,) = store.rows()
    assert row.command == cmd
    c = row.command
    assert (row.key, c.imei, c.obj_id, c.obj_inst_id, c.res_id, c.args) == (
        cmd.key, cmd.imei, 3200, None, None, None,
    )  # fmt: skip
    assert (c.valid_time, c.expired_time, c.retry, c.timeout, c.trigger_msg) == (
        parse_timespec("2030-01-02 03:04:05"), parse_timespec("+6h"), 10, 40, 4,
    )  # fmt: skip
    assert (c.source, c.line, c.op, c.step, c.after, c.product) == (
        "jobs/fleet.yaml", 17, Op.READ, 2, "k-before", "meters",
    )  # fmt: skip
    assert (row.status, row.attempts, row.reconciled, row.uuid, row.error) == (
        Status.PENDING, 0, False, None, "",
    )  # fmt: skip


def test_a_write_comes_back_from_the_ledger_with_its_values_typed_as_registered(
    store: LedgerStore,
) -> None:
    values = (
        *(WriteValue(5850, True), WriteValue(5851, 40), WriteValue(5852, 1.5)),
        *(WriteValue(1, "0a0b", 1), WriteValue(2, 1700000000, 2), WriteValue(3, "1")),
    )
    write = make_command(1, op=Op.WRITE, mode=2, args=None, res_id=None, values=values)
    one = make_command(2, op=Op.WRITE, mode=1, args=None, values=(WriteValue(5750, 1),))
    store.register([write, one])
    rows = {r.key: r.command for r in store.rows()}
    assert rows == {write.key: write, one.key: one}
    # Typed as written: a true is not a 1, a 1 not a "1" nor a 1.0.
    assert [type(v.val) for v in rows[write.key].values] == [bool, int, float, str, int, str]
    assert rows[one.key].values != (WriteValue(5750, True),)
    assert rows[write.key].args is None


def test_a_command_without_a_key_is_refused_and_nothing_of_the_batch_is_kept(
    store: LedgerStore,
) -> None:
    with pytest.raises(ValueError, match="no ledger key"):
        store.register([make_command(1), make_command(2, key="")])
    assert store.total() == 0


def test_rows_come_in_job_order_filtered_by_status_and_retirement(store: LedgerStore) -> None:
    states = [Status.PENDING, Status.ACCEPTED, Status.FAILED, Status.PENDING]
    keys = [_in_state(store, i, s) for i, s in enumerate(states)]
    store.compare([make_command(i) for i in range(3)], apply=True)  # command 3 retired
    assert [r.key for r in store.rows()] == keys
    assert [r.key for r in store.rows([Status.PENDING])] == [keys[0], keys[3]]
    assert [r.key for r in store.rows([Status.PENDING], retired=False)] == [keys[0]]
    assert [r.key for r in store.rows(retired=True)] == [keys[3]]
    assert list(store.rows([])) == []
    assert [r.key for r in store.rows_of([keys[2], "nope", keys[0]])] == [keys[0], keys[2]]


def test_known_uuids_are_a_devices_whatever_their_row(store: LedgerStore) -> None:
    a = make_command(1)
    b = make_command(2, imei=a.imei, args="other")
    store.register([a, b, make_command(3)])
    store.write_batch([_mark(a.key), _mark(b.key)], [])
    store.write_batch([], [_result(a.key, Status.ACCEPTED, uuid="u-a"),
                           _result(b.key, Status.IN_DOUBT, uuid=None)])  # fmt: skip
    assert store.known_uuids(a.imei) == {"u-a"}
    assert store.known_uuids("nobody") == set()


# -- the lifecycle -------------------------------------------------------------------------------


@pytest.mark.parametrize("event", list(Event))
def test_an_event_moves_exactly_the_states_the_table_allows(
    store: LedgerStore, event: Event
) -> None:
    for n, state in enumerate(Status):
        key = _in_state(store, n, state)
        if state in TABLE[event]:
            assert store.move([key], event, error="why") == [state]
            assert _status(store, key) is target(state, event)
        else:
            with pytest.raises(LifecycleError):
                store.move([key], event)
            assert _status(store, key) is state


def test_a_refused_move_rolls_back_the_whole_batch(store: LedgerStore) -> None:
    pending = _in_state(store, 1, Status.PENDING)
    accepted = _in_state(store, 2, Status.ACCEPTED)
    with pytest.raises(LifecycleError):
        store.skip([pending, accepted], "a rule")
    assert _status(store, pending) is Status.PENDING
    with pytest.raises(LifecycleError):
        store.write_batch([_mark(pending)], [_result(accepted, Status.ACCEPTED)])
    assert _status(store, pending) is Status.PENDING
    with pytest.raises(LedgerError):
        store.move([pending, "not-a-key"], Event.ABORT)
    assert _status(store, pending) is Status.PENDING


def test_an_event_that_keeps_a_state_writes_nothing_to_it(store: LedgerStore) -> None:
    failed = _in_state(store, 1, Status.FAILED)
    pending = _in_state(store, 2, Status.PENDING)
    before = store.rows_of([failed])
    assert store.skip([failed, pending], "canary failed") == [Status.FAILED, Status.PENDING]
    assert store.rows_of([failed]) == before
    (skipped,) = store.rows_of([pending])
    assert (skipped.status, skipped.error) == (Status.SKIPPED, "canary failed")


def test_an_answer_is_written_with_its_times_and_attempts(store: LedgerStore) -> None:
    key = _in_state(store, 1, Status.PENDING)
    store.write_batch([_mark(key, at=1000.0, server_at=999.0)], [])
    store.write_batch([], [_result(key, Status.FAILED, attempts=2, at=1500.0, errno=500)])
    store.write_batch([_mark(key, at=3000.0, server_at=2999.0)], [])
    store.write_batch([], [_result(key, Status.ACCEPTED, attempts=1, at=3100.0, latency_ms=7.5)])
    (row,) = store.rows_of([key])
    assert (row.status, row.uuid, row.attempts, row.latency_ms) == (
        Status.ACCEPTED, f"u-{key[:6]}", 3, 7.5,
    )  # fmt: skip
    assert (row.first_attempt_at, row.last_attempt_at) == (1000.0, 3100.0)
    assert (row.first_server_at, row.last_server_at) == (999.0, 2999.0)
    assert (row.sent_valid_time, row.sent_expired_time) == (
        "2024-05-01T10:00:00", "2024-05-01T16:00:00",
    )  # fmt: skip


def test_a_step_held_back_keeps_a_failed_commands_failure(store: LedgerStore) -> None:
    failed = _in_state(store, 1, Status.FAILED)
    pending = _in_state(store, 2, Status.PENDING)
    held = [_result(k, Status.SKIPPED, error="step 1 not accepted", attempts=0)
            for k in (failed, pending)]  # fmt: skip
    store.write_batch([], held)
    assert [(r.status, r.error) for r in store.rows_of([failed, pending])] == [
        (Status.FAILED, ""), (Status.SKIPPED, "step 1 not accepted"),
    ]  # fmt: skip


# -- hand-over to a retry job ----------------------------------------------------------------------


def test_hand_over_retires_unsent_commands_and_marks_sent_ones(store: LedgerStore) -> None:
    pending = _in_state(store, 1, Status.PENDING)
    rejected = _in_state(store, 2, Status.REJECTED)
    store.hand_over([pending, rejected], "retry.csv")
    store.hand_over([pending], "retry.csv")  # the same file again: the same hand-over
    rows = store.rows_of([pending, rejected])
    assert [(r.status, r.retried_in) for r in rows] == [
        (Status.RETRIED, "retry.csv"), (Status.REJECTED, "retry.csv"),
    ]  # fmt: skip
    # the rejected one kept its outcome, and is the retry job's to send: counted as handed over
    assert store.handed_over() == 1
    assert store.counts()[Status.REJECTED] == 1


def test_hand_over_refuses_a_second_retry_file_and_records_nothing(store: LedgerStore) -> None:
    handed = _in_state(store, 1, Status.PENDING)
    fresh = _in_state(store, 2, Status.PENDING)
    store.hand_over([handed], "first.csv")
    with pytest.raises(LifecycleError, match="another retry job"):
        store.hand_over([fresh, handed], "second.csv")
    assert [(r.status, r.retried_in) for r in store.rows_of([handed, fresh])] == [
        (Status.RETRIED, "first.csv"), (Status.PENDING, None),
    ]  # fmt: skip
    with pytest.raises(LifecycleError):
        store.hand_over([_in_state(store, 3, Status.IN_DOUBT)], "first.csv")


# -- canary verdicts -----------------------------------------------------------------------------


def test_a_passed_canary_covers_its_lanes_commands_registered_so_far(store: LedgerStore) -> None:
    meters = [make_command(i, product="meters") for i in range(3)]
    other = make_command(9, product="lamps")
    store.register([meters[0], other])
    assert not store.canary_covered_before("meters")
    assert store.uncovered([meters[0].key, other.key, "unknown"]) == {
        meters[0].key, other.key, "unknown",
    }  # fmt: skip
    first = store.pass_canary("meters", [meters[0].key], meters[:2])
    assert store.canary_covered_before("meters") and store.canary_covered_before(None)
    assert not store.canary_covered_before("lamps")
    assert store.uncovered([m.key for m in meters[:2]] + [other.key]) == {other.key}
    store.register([meters[2]])  # registered after the verdict: not covered by it
    assert store.uncovered([m.key for m in meters]) == {meters[2].key}
    assert store.pass_canary(None, [], []) == first + 1  # every lane: covers the rest
    assert store.uncovered([meters[2].key, other.key]) == set()


def test_a_sent_or_retired_command_needs_no_canary(store: LedgerStore) -> None:
    accepted = _in_state(store, 1, Status.ACCEPTED)
    pending = _in_state(store, 2, Status.PENDING)
    store.compare([make_command(1)], apply=True)  # command 2 is retired
    assert store.uncovered([accepted, pending]) == set()


# -- follow-ups: delivery and cancels ------------------------------------------------------------


def _accepted(store: LedgerStore, n: int, **fields: object) -> str:
    cmd = make_command(n, **fields)
    store.register([cmd])
    store.write_batch([_mark(cmd.key)], [_result(cmd.key, Status.ACCEPTED)])
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
    _in_state(store, 6, Status.PENDING)
    store.record_delivery([_delivery(done, 5), _delivery(b2, 3)])
    assert [r.key for r in store.rows_to_check()] == [a1, a2, b1, b2]
    assert [r.key for r in store.rows_to_check("meters")] == [a1]
    assert [r.key for r in store.rows_to_check("")] == [a2, b1, b2]
    assert store.count_to_check() == (4, 2, "2024-05-01T16:00:00")
    assert store.count_to_check("lamps") == (0, 0, None)
    assert store.products_to_check() == ["", "meters"]


def test_a_delivery_is_recorded_for_accepted_commands_only(store: LedgerStore) -> None:
    key = _accepted(store, 1)
    pending = _in_state(store, 2, Status.PENDING)
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
    pending = _in_state(store, 5, Status.PENDING)
    with pytest.raises(LifecycleError):
        store.record_cancel([(cancelled, None, None), (pending, None, None)])


def test_the_delivery_breakdown_counts_a_device_under_its_least_happy_command(
    store: LedgerStore,
) -> None:
    d1, d2 = _accepted(store, 1, imei="861"), _accepted(store, 2, imei="861", args="b")
    d3 = _accepted(store, 3, imei="862")
    _accepted(store, 4, imei="863")
    _in_state(store, 5, Status.FAILED)
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


# -- counts and figures --------------------------------------------------------------------------


def test_counts_and_figures_are_over_the_jobs_active_rows(store: LedgerStore) -> None:
    a = _in_state(store, 1, Status.ACCEPTED)
    _in_state(store, 2, Status.REJECTED)
    _in_state(store, 3, Status.PENDING)
    store.register([make_command(4, product="meters"), make_command(5)])
    store.write_batch([_mark(make_command(5).key)], [])
    store.write_batch([], [_result(make_command(5).key, Status.REJECTED, attempts=3,
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
        key = _in_state(store, n, Status.PENDING)
        store.write_batch([_mark(key)], [_result(key, Status.REJECTED, errno=errno, error=text)])
    assert store.errno_groups() == [(2, "z", 1), (5, "a", 2), (5, "b", 1)]


# -- the job: comparing and its record ------------------------------------------------------------


def test_a_dry_comparison_counts_the_differences_and_writes_nothing(store: LedgerStore) -> None:
    kept, edited, gone, moved = (_in_state(store, n, Status.PENDING) for n in range(4))
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
    key = _in_state(store, 1, Status.FAILED)
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
    stays, goes = _in_state(store, 1, Status.PENDING), _in_state(store, 2, Status.ACCEPTED)
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
