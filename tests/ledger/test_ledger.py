"""The SQLite results ledger: registering, in-flight marks and outcomes (crash safety), reading
rows, counts and reconciling."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from dispatcher.errors import LedgerError
from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import FINAL, TO_SEND, InFlight, Result, Status
from dispatcher.times import parse_timespec
from tests.support.ledger import (
    accept,
    find_row,
    make_command,
    mark,
    write_outcomes,
)


def test_register_adds_new_commands_as_pending(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(3)]
    assert ledger.register(cmds) == [Status.PENDING] * 3
    assert ledger.total() == 3


def test_register_stores_every_parameter_as_written_in_the_job(ledger: Ledger) -> None:
    cmd = make_command(
        7,
        valid_time=parse_timespec("2030-01-02 03:04:05"),
        expired_time=parse_timespec("+2d"),
        args=None,
        retry=10,
        timeout=40,
        trigger_msg=4,
    )
    ledger.register([cmd])
    row = find_row(ledger, cmd.key)
    assert row is not None
    c = row.command
    assert c == cmd
    assert (c.imei, c.obj_id, c.obj_inst_id, c.res_id, c.args) == (cmd.imei, 3200, 0, 5750, None)
    assert c.valid_time is not None
    assert (c.valid_time.text, c.expired_time.text) == ("2030-01-02 03:04:05", "+2d")
    assert (c.retry, c.timeout, c.trigger_msg) == (10, 40, 4)
    assert (c.source, c.line, row.seq) == ("jobs/fleet.yaml", 17, 1)
    assert (row.status, row.attempts, row.reconciled, row.uuid) == (Status.PENDING, 0, False, None)


def test_register_again_returns_existing_statuses_and_keeps_final_outcomes(
    ledger: Ledger,
) -> None:
    cmds = [make_command(i) for i in range(4)]
    ledger.register(cmds)
    write_outcomes(
        ledger,
        [
            accept(cmds[0].key),
            Result(cmds[1].key, Status.REJECTED, 5006, "system logic limit", None, 1, 2.0, 9.0),
            Result(cmds[2].key, Status.FAILED, None, "HTTP 500", None, 6, 3.0, 30.0),
        ],
    )
    again = [*cmds, make_command(9)]
    statuses = ledger.register(again)
    assert statuses == [
        Status.ACCEPTED, Status.REJECTED, Status.FAILED, Status.PENDING, Status.PENDING,
    ]  # fmt: skip
    assert [s in FINAL for s in statuses] == [True, True, False, False, False]
    assert [s in TO_SEND for s in statuses] == [False, False, True, True, True]
    accepted = find_row(ledger, cmds[0].key)
    assert accepted is not None
    assert (accepted.status, accepted.uuid) == (Status.ACCEPTED, "u-1")


def test_register_looks_up_statuses_across_many_chunks(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(1203)]
    ledger.register(cmds)
    write_outcomes(ledger, [accept(c.key, f"u{i}") for i, c in enumerate(cmds) if i % 100 == 0])
    statuses = ledger.register(list(reversed(cmds)))
    expected = [Status.ACCEPTED if i % 100 == 0 else Status.PENDING for i in range(1203)]
    assert statuses == list(reversed(expected))


def test_register_refuses_a_command_without_key_and_writes_nothing(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="no ledger key"):
        ledger.register([make_command(1), make_command(2, key="")])
    assert ledger.total() == 0


def test_mark_in_flight_stores_the_sent_times_and_keeps_the_first_attempt_time(
    ledger: Ledger,
) -> None:
    cmd = make_command(1)
    ledger.register([cmd])
    ledger.write_batch([mark(cmd.key, at=1000.0, run_id=1)], ())
    ledger.write_batch([InFlight(cmd.key, 1500.0, None, "2024-05-02T00:00:00", 2)], ())
    row = find_row(ledger, cmd.key)
    assert row is not None
    assert row.status is Status.IN_FLIGHT
    assert (row.first_attempt_at, row.last_attempt_at) == (1000.0, 1500.0)
    assert (row.sent_valid_time, row.sent_expired_time) == (None, "2024-05-02T00:00:00")
    assert row.attempts == 0


def test_in_flight_mark_survives_a_process_killed_before_the_outcome(path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.support.ledger import make_command, mark
        from dispatcher.ledger.sqlite import Ledger
        ledger = Ledger.open({str(path)!r})
        cmds = [make_command(1), make_command(2)]
        ledger.register(cmds)
        ledger.write_batch([mark(cmds[0].key)], ())
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -9, done.stderr.decode()
    with Ledger.open(path) as reopened:  # the dead process's lock went with it
        row = find_row(reopened, make_command(1).key)
        assert row is not None
        assert row.status is Status.IN_FLIGHT
        assert (row.sent_valid_time, row.sent_expired_time) == (
            "2024-05-01T10:00:00", "2024-05-01T16:00:00",
        )  # fmt: skip
        assert row.first_attempt_at == 1000.0
        assert reopened.counts()[Status.PENDING] == 1


def test_record_writes_the_outcome_and_adds_the_attempts(ledger: Ledger) -> None:
    cmd = make_command(1)
    ledger.register([cmd])
    ledger.write_batch([mark(cmd.key, at=1000.0)], ())
    write_outcomes(
        ledger, [Result(cmd.key, Status.FAILED, None, "HTTP 503", None, 6, 1010.0, 31.0)]
    )
    ledger.write_batch([mark(cmd.key, at=5000.0)], ())
    write_outcomes(ledger, [accept(cmd.key, "uuid-9", at=5000.2)])
    row = find_row(ledger, cmd.key)
    assert row is not None
    assert (row.status, row.errno, row.error, row.uuid) == (Status.ACCEPTED, 0, "succ", "uuid-9")
    assert (row.attempts, row.latency_ms) == (7, 42.5)
    assert (row.first_attempt_at, row.last_attempt_at) == (1000.0, 5000.2)


def test_a_reconciled_outcome_keeps_the_last_attempt_time(ledger: Ledger) -> None:
    cmd = make_command(1)
    ledger.register([cmd])
    ledger.write_batch([mark(cmd.key, at=1000.0)], ())
    write_outcomes(ledger, [Result(cmd.key, Status.ACCEPTED, 0, "", "u-r", 0, 9000.0, None, True)])
    row = find_row(ledger, cmd.key)
    assert row is not None
    assert (row.status, row.uuid, row.reconciled) == (Status.ACCEPTED, "u-r", True)
    assert (row.last_attempt_at, row.attempts) == (1000.0, 0)


def test_marks_and_outcomes_of_one_batch_are_written_together(ledger: Ledger) -> None:
    a, b = make_command(1), make_command(2)
    ledger.register([a, b])
    ledger.write_batch([mark(a.key), mark(b.key)], [accept(a.key)])
    assert [r.status for r in ledger.rows()] == [Status.ACCEPTED, Status.IN_FLIGHT]


def test_an_outcome_for_an_unknown_key_rolls_back_the_whole_batch(ledger: Ledger) -> None:
    cmd = make_command(1)
    ledger.register([cmd])
    with pytest.raises(LedgerError, match="1 of 2 keys are not in the ledger"):
        write_outcomes(ledger, [accept(cmd.key), accept("no-such-key")])
    row = find_row(ledger, cmd.key)
    assert row is not None
    assert row.status is Status.PENDING


def test_rows_stream_in_job_order_filtered_by_status(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(2500)]
    for start in range(0, 2500, 500):
        ledger.register(cmds[start : start + 500])
    ledger.write_batch([mark(c.key) for c in cmds[::7]], ())
    write_outcomes(ledger, [accept(c.key) for c in cmds[::14]])
    assert [r.key for r in ledger.rows()] == [c.key for c in cmds]
    in_flight = [r.key for r in ledger.rows({Status.IN_FLIGHT})]
    assert in_flight == [c.key for i, c in enumerate(cmds) if i % 7 == 0 and i % 14 != 0]
    assert list(ledger.rows(set())) == []


def test_rows_can_be_settled_while_they_are_read(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(1200)]
    ledger.register(cmds)
    write_outcomes(
        ledger, [Result(c.key, Status.IN_DOUBT, None, "cut", None, 1, 1.0, None) for c in cmds]
    )
    seen = 0
    for row in ledger.rows({Status.IN_DOUBT}):
        found = Result(row.key, Status.ACCEPTED, 0, "", "u", 0, 2.0, None, True)
        ledger.write_batch((), [replace(found, event=Event.RECONCILE_FOUND)])
        seen += 1
    assert seen == 1200
    assert ledger.counts()[Status.ACCEPTED] == 1200


def test_known_uuids_are_those_of_one_device(ledger: Ledger) -> None:
    a, b, c = make_command(1), make_command(2, imei="861111111111111"), make_command(3)
    ledger.register([a, b, c])
    write_outcomes(ledger, [accept(a.key, "ua"), accept(b.key, "ub")])
    assert ledger.known_uuids(a.imei) == {"ua"}
    assert ledger.known_uuids(c.imei) == set()


def test_counts_name_every_status(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(3)]
    ledger.register(cmds)
    write_outcomes(ledger, [accept(cmds[0].key)])
    assert ledger.counts() == {
        Status.PENDING: 2, Status.IN_FLIGHT: 0, Status.ACCEPTED: 1,
        Status.REJECTED: 0, Status.FAILED: 0, Status.IN_DOUBT: 0, Status.EXPIRED: 0,
        Status.RETRIED: 0, Status.SKIPPED: 0,
    }  # fmt: skip


def test_reconciling_moves_commands_never_created_back_to_pending(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(3)]
    ledger.register(cmds)
    ledger.write_batch([mark(c.key) for c in cmds], ())
    before = ledger.move([cmds[0].key, cmds[2].key], Event.RECONCILE_MISSING)
    assert before == [Status.IN_FLIGHT, Status.IN_FLIGHT]
    assert [r.status for r in ledger.rows()] == [Status.PENDING, Status.IN_FLIGHT, Status.PENDING]
    row = find_row(ledger, cmds[0].key)
    assert row is not None
    assert row.sent_expired_time == "2024-05-01T16:00:00"  # what was sent stays on record
