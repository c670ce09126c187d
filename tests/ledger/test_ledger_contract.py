"""The LedgerStore contract: every implementation, run through the same cases: registering and
reading, the lifecycle, hand-over to a retry job, canary verdicts.

The ``store`` fixture (conftest.py) gives each implementation in turn (the SQLite ledger, the
in-memory one); a new one (PostgreSQL) is held to the same contract by adding an opener to
``OPENERS`` (tests/support/stores.py). Beside the named cases, tests/ledger/test_ledger_twins.py
drives both with the same random operations and compares every answer.
"""

from __future__ import annotations

import pytest

from dispatcher.errors import LedgerError
from dispatcher.ledger.lifecycle import TABLE, Event, LifecycleError, target
from dispatcher.ledger.store import (
    LedgerStore,
    Status,
)
from dispatcher.model import Op, WriteValue
from dispatcher.times import parse_timespec
from tests.support.ledger import make_command
from tests.support.stores import (
    in_flight,
    key_in_state,
    result_of,
    status_of,
)


def test_register_adds_new_commands_as_pending_and_keeps_existing_ones(store: LedgerStore) -> None:
    cmds = [make_command(i) for i in range(3)]
    assert store.register(cmds[:2]) == [Status.PENDING] * 2
    store.write_batch([in_flight(cmds[0].key)], [result_of(cmds[0].key, Status.ACCEPTED)])
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
    keys = [key_in_state(store, i, s) for i, s in enumerate(states)]
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
    store.write_batch([in_flight(a.key), in_flight(b.key)], [])
    store.write_batch([], [result_of(a.key, Status.ACCEPTED, uuid="u-a"),
                           result_of(b.key, Status.IN_DOUBT, uuid=None)])  # fmt: skip
    assert store.known_uuids(a.imei) == {"u-a"}
    assert store.known_uuids("nobody") == set()


@pytest.mark.parametrize("event", list(Event))
def test_an_event_moves_exactly_the_states_the_table_allows(
    store: LedgerStore, event: Event
) -> None:
    for n, state in enumerate(Status):
        key = key_in_state(store, n, state)
        if state in TABLE[event]:
            assert store.move([key], event, error="why") == [state]
            assert status_of(store, key) is target(state, event)
        else:
            with pytest.raises(LifecycleError):
                store.move([key], event)
            assert status_of(store, key) is state


def test_a_refused_move_rolls_back_the_whole_batch(store: LedgerStore) -> None:
    pending = key_in_state(store, 1, Status.PENDING)
    accepted = key_in_state(store, 2, Status.ACCEPTED)
    with pytest.raises(LifecycleError):
        store.skip([pending, accepted], "a rule")
    assert status_of(store, pending) is Status.PENDING
    with pytest.raises(LifecycleError):
        store.write_batch([in_flight(pending)], [result_of(accepted, Status.ACCEPTED)])
    assert status_of(store, pending) is Status.PENDING
    with pytest.raises(LedgerError):
        store.move([pending, "not-a-key"], Event.ABORT)
    assert status_of(store, pending) is Status.PENDING


def test_an_event_that_keeps_a_state_writes_nothing_to_it(store: LedgerStore) -> None:
    failed = key_in_state(store, 1, Status.FAILED)
    pending = key_in_state(store, 2, Status.PENDING)
    before = store.rows_of([failed])
    assert store.skip([failed, pending], "canary failed") == [Status.FAILED, Status.PENDING]
    assert store.rows_of([failed]) == before
    (skipped,) = store.rows_of([pending])
    assert (skipped.status, skipped.error) == (Status.SKIPPED, "canary failed")


def test_an_answer_is_written_with_its_times_and_attempts(store: LedgerStore) -> None:
    key = key_in_state(store, 1, Status.PENDING)
    store.write_batch([in_flight(key, at=1000.0, server_at=999.0)], [])
    store.write_batch([], [result_of(key, Status.FAILED, attempts=2, at=1500.0, errno=500)])
    store.write_batch([in_flight(key, at=3000.0, server_at=2999.0)], [])
    store.write_batch([], [result_of(key, Status.ACCEPTED, attempts=1, at=3100.0, latency_ms=7.5)])
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
    failed = key_in_state(store, 1, Status.FAILED)
    pending = key_in_state(store, 2, Status.PENDING)
    held = [result_of(k, Status.SKIPPED, error="step 1 not accepted", attempts=0)
            for k in (failed, pending)]  # fmt: skip
    store.write_batch([], held)
    assert [(r.status, r.error) for r in store.rows_of([failed, pending])] == [
        (Status.FAILED, ""), (Status.SKIPPED, "step 1 not accepted"),
    ]  # fmt: skip


def test_hand_over_retires_unsent_commands_and_marks_sent_ones(store: LedgerStore) -> None:
    pending = key_in_state(store, 1, Status.PENDING)
    rejected = key_in_state(store, 2, Status.REJECTED)
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
    handed = key_in_state(store, 1, Status.PENDING)
    fresh = key_in_state(store, 2, Status.PENDING)
    store.hand_over([handed], "first.csv")
    with pytest.raises(LifecycleError, match="another retry job"):
        store.hand_over([fresh, handed], "second.csv")
    assert [(r.status, r.retried_in) for r in store.rows_of([handed, fresh])] == [
        (Status.RETRIED, "first.csv"), (Status.PENDING, None),
    ]  # fmt: skip
    with pytest.raises(LifecycleError):
        store.hand_over([key_in_state(store, 3, Status.IN_DOUBT)], "first.csv")


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
    accepted = key_in_state(store, 1, Status.ACCEPTED)
    pending = key_in_state(store, 2, Status.PENDING)
    store.compare([make_command(1)], apply=True)  # command 2 is retired
    assert store.uncovered([accepted, pending]) == set()
