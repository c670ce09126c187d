"""The SQLite results ledger: resume semantics, crash safety, locking, files and schema."""

from __future__ import annotations

import dataclasses
import fcntl
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from dispatcher.errors import LedgerError, LedgerLockedError
from dispatcher.ledger import columns, schema as ledger_file
from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.sqlite_files import discard, is_database, side_file_of, side_files
from dispatcher.ledger.store import FINAL, TO_SEND, InFlight, LedgerFullError, Result, Row, Status
from dispatcher.times import parse_timespec
from tests.support.ledger import (
    accept,
    find_row,
    make_command,
    mark,
    schema_1_ledger,
    write_outcomes,
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "job.ledger.db"


@pytest.fixture
def ledger(path: Path) -> Iterator[Ledger]:
    with Ledger.open(path) as opened:
        yield opened


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


def test_a_second_opener_in_the_same_process_is_refused_until_close(path: Path) -> None:
    first = Ledger.open(path)
    with pytest.raises(
        LedgerLockedError, match=r"job\.ledger\.db is in use.*: it is locked"
    ) as caught:
        Ledger.open(path)
    assert f"process {os.getpid()}" in str(caught.value)
    first.close()
    Ledger.open(path).close()


def test_a_second_opener_in_another_process_is_refused(path: Path, ledger: Ledger) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from dispatcher.errors import LedgerLockedError
        from dispatcher.ledger.sqlite import Ledger
        try:
            Ledger.open({str(path)!r})
        except LedgerLockedError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stderr
    assert "in use by another dispatcher" in done.stdout
    assert f"ledger {path} is in use" in done.stdout


def test_ledger_files_are_owner_only_whatever_the_umask(path: Path) -> None:
    old = os.umask(0o022)
    try:
        with Ledger.open(path) as opened:
            opened.register([make_command(1)])
            names = [path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.lock")]
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in names}
    finally:
        os.umask(old)
    assert modes == dict.fromkeys(modes, 0o600)


def test_a_file_that_is_not_sqlite_is_refused_and_unlocked(path: Path) -> None:
    path.write_bytes(b"imei,obj_id\n" * 200)
    with pytest.raises(LedgerError, match="not a dispatcher ledger"):
        Ledger.open(path)
    with open(path, "a") as lock:  # the failed open released its lock
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_an_sqlite_database_of_another_kind_is_refused(path: Path) -> None:
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE devices (imei TEXT)")
    other.close()
    with pytest.raises(LedgerError, match="SQLite database but not a dispatcher ledger"):
        Ledger.open(path)


def test_a_ledger_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="does not exist"):
        Ledger.open(tmp_path / "nowhere" / "job.ledger.db")


def test_reopening_keeps_the_data_and_the_schema_version(path: Path) -> None:
    with Ledger.open(path) as first:
        first.register([make_command(1)])
        assert first.schema_version == len(ledger_file.MIGRATIONS)
    with Ledger.open(path, synchronous="normal") as again:
        assert again.schema_version == len(ledger_file.MIGRATIONS)
        assert again.total() == 1


def test_an_older_ledger_gains_new_columns_and_keeps_its_rows(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Ledger.open(path) as old:
        old.register([make_command(1)])
    later = (*ledger_file.MIGRATIONS, ("ALTER TABLE commands ADD COLUMN note TEXT",))
    monkeypatch.setattr(ledger_file, "MIGRATIONS", later)
    with Ledger.open(path) as upgraded:
        assert upgraded.schema_version == len(later)
        assert upgraded.register([make_command(1)]) == [Status.PENDING]
    with sqlite3.connect(path) as raw:
        columns = [name for _, name, *_ in raw.execute("PRAGMA table_info(commands)")]
    raw.close()
    assert columns[-1] == "note"


def test_a_ledger_from_a_newer_dispatcher_is_refused(path: Path) -> None:
    Ledger.open(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    raw.close()
    with pytest.raises(LedgerError, match="newer dispatcher"):
        Ledger.open(path)


def test_read_only_opening_needs_no_lock_and_no_missing_file(path: Path, ledger: Ledger) -> None:
    ledger.register([make_command(1)])
    with Ledger.open(path, read_only=True) as reader:
        assert reader.total() == 1
    with pytest.raises(LedgerError, match="no ledger at"):
        Ledger.open(path.with_name("other.db"), read_only=True)


def test_unknown_synchronous_mode_is_a_programming_error(path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        Ledger.open(path, synchronous="off")


def test_a_closed_ledger_says_so(path: Path) -> None:
    closed = Ledger.open(path)
    closed.close()
    closed.close()
    with pytest.raises(LedgerError, match="closed"):
        closed.total()


def test_runs_keep_settings_without_secrets(path: Path) -> None:
    @dataclass(frozen=True)
    class OneNet:
        base_url: str
        api_key: str

    settings = {
        "onenet": OneNet("https://api.heclouds.com", "SeCrEt-KeY-123"),
        "api-key": "SeCrEt-KeY-123",
        "limits": {"rate_per_second": 20, "API_KEY": "SeCrEt-KeY-123"},
        "api_key_env": "ONENET_API_KEY",
    }
    with Ledger.open(path, clock=lambda: 123.0) as opened:
        run_id = opened.start_run("jobs/fleet.yaml", settings)
        opened.finish_run(run_id, {"accepted": 3}, "interrupted")
        (run,) = opened.runs()
    assert run.settings == {
        "onenet": {"base_url": "https://api.heclouds.com"},
        "limits": {"rate_per_second": 20},
        "api_key_env": "ONENET_API_KEY",
    }
    assert (run.id, run.job_path, run.started_at, run.finished_at) == (
        run_id, "jobs/fleet.yaml", 123.0, 123.0,
    )  # fmt: skip
    assert (run.summary, run.stop_reason) == ({"accepted": 3}, "interrupted")
    for file in path.parent.iterdir():
        assert b"SeCrEt-KeY-123" not in file.read_bytes(), file.name


# -- schema 2: the expired status, OneNET's clock, migration ---------------------------------------


def test_expired_is_final_and_never_sent_again(ledger: Ledger) -> None:
    cmd = make_command(1)
    ledger.register([cmd])
    write_outcomes(ledger, [Result(cmd.key, Status.EXPIRED, None, "expired", None, 0, 5.0, None)])
    assert Status.EXPIRED in FINAL
    assert Status.EXPIRED not in TO_SEND
    assert ledger.register([cmd]) == [Status.EXPIRED]
    assert ledger.counts()[Status.EXPIRED] == 1


def test_in_flight_marks_keep_the_first_server_time_and_the_latest(ledger: Ledger) -> None:
    cmd = make_command(1)
    ledger.register([cmd])
    ledger.write_batch([InFlight(cmd.key, 1000.0, None, "2024-05-02T00:00:00", 1, 990.5)], ())
    ledger.write_batch([InFlight(cmd.key, 1500.0, None, "2024-05-02T00:00:00", 2, 1491.0)], ())
    row = find_row(ledger, cmd.key)
    assert row is not None
    assert (row.first_server_at, row.last_server_at) == (990.5, 1491.0)
    assert (row.first_attempt_at, row.last_attempt_at, row.status) == (
        1000.0, 1500.0, Status.IN_FLIGHT,
    )  # fmt: skip
    ledger.write_batch([InFlight(cmd.key, 2000.0, None, "2024-05-02T00:00:00", 3)], ())
    row = find_row(ledger, cmd.key)
    assert row is not None
    assert (row.first_server_at, row.last_server_at, row.last_attempt_at) == (990.5, None, 2000.0)


def test_a_row_is_its_place_its_command_and_the_state_columns_with_the_new_ones_last() -> None:
    names = [f.name for f in dataclasses.fields(Row)]
    state = [c for c in columns.ROW_COLUMNS if c not in ("seq", *columns.INSERT_COLUMNS)]
    assert names == ["seq", "key", "command", *state]
    assert set(columns.INSERT_COLUMNS) < set(columns.ROW_COLUMNS)
    assert list(columns.ROW_COLUMNS[-14:]) == [
        "send_status", "confirm_status", "send_time", "confirm_time", "cmd_result",
        "status_checked_at", "cancelled_at", "cancel_error", "retried_in", "op", "mode", "step",
        "after_key", "product",
    ]  # fmt: skip


def test_a_schema_1_ledger_migrates_to_the_newest_in_place_and_keeps_its_rows(path: Path) -> None:
    schema_1_ledger(path)
    with Ledger.open(path) as upgraded:
        assert upgraded.schema_version == len(ledger_file.MIGRATIONS)
        row = find_row(upgraded, "k1")
        assert row is not None
        assert (row.status, row.uuid, row.retired, row.first_server_at) == (
            Status.ACCEPTED, "u-old", None, None,
        )  # fmt: skip
        assert upgraded.counts()[Status.ACCEPTED] == 1
        assert upgraded.job() is None
        assert upgraded.recorded_job_paths() == ["jobs/a.yaml"]
    with Ledger.open(path, read_only=True) as reader:
        assert reader.schema_version == len(ledger_file.MIGRATIONS)


# -- the lock is on the real file ----------------------------------------------------------------


def test_a_second_opener_through_a_symlink_is_refused(path: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    link = elsewhere / "alias.ledger.db"
    with Ledger.open(path):
        link.symlink_to(path)
        with pytest.raises(LedgerLockedError, match=rf"alias\.ledger\.db \(the file {path}\)"):
            Ledger.open(link)
    with Ledger.open(link) as through_link:
        through_link.register([make_command(1)])
        assert Path(f"{path}-wal").exists()  # the WAL sits beside the real file, not the link
        assert not Path(f"{link}-wal").exists()
    with Ledger.open(path, read_only=True) as reader:
        assert reader.total() == 1


def test_a_second_opener_through_a_hard_link_is_refused(path: Path, tmp_path: Path) -> None:
    Ledger.open(path).close()
    link = tmp_path / "copy.ledger.db"
    os.link(path, link)
    with Ledger.open(path), pytest.raises(LedgerLockedError, match=f"process {os.getpid()}"):
        Ledger.open(link)
    with Ledger.open(link), pytest.raises(LedgerLockedError):
        Ledger.open(path)


def test_another_process_opening_a_hard_link_is_refused(path: Path, tmp_path: Path) -> None:
    Ledger.open(path).close()
    link = tmp_path / "copy.ledger.db"
    os.link(path, link)
    script = textwrap.dedent(
        f"""
        import sys
        from dispatcher.errors import LedgerLockedError
        from dispatcher.ledger.sqlite import Ledger
        try:
            Ledger.open({str(link)!r})
        except LedgerLockedError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    with Ledger.open(path):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 3, done.stderr
    assert f"in use by another dispatcher (process {os.getpid()})" in done.stdout


def test_read_only_opening_through_a_link_takes_no_lock(path: Path, tmp_path: Path) -> None:
    link = tmp_path / "alias.ledger.db"
    with Ledger.open(path) as writer:
        writer.register([make_command(1)])
        link.symlink_to(path)
        with Ledger.open(link, read_only=True) as reader:
            assert reader.total() == 1
    with Ledger.open(link, read_only=True) as reader, Ledger.open(path) as writer:
        writer.register([make_command(2)])
        assert reader.total() == 2


# -- a full disk ---------------------------------------------------------------------------------


def _fill(ledger: Ledger) -> int:
    """Register commands until the disk is full; return how many made it."""
    done = 0
    for start in range(0, 100_000, 200):
        try:
            ledger.register([make_command(n) for n in range(start, start + 200)])
        except LedgerFullError:
            return done
        done += 200
    raise AssertionError("the ledger never filled up")


def test_a_full_disk_raises_ledger_full_error_saying_what_to_do(path: Path) -> None:
    with Ledger.open(path, max_pages=1) as ledger:  # no room beyond the pages it has
        with pytest.raises(LedgerFullError) as caught:
            for start in range(0, 100_000, 200):
                ledger.register([make_command(n) for n in range(start, start + 200)])
        assert isinstance(caught.value, LedgerError)
        message = str(caught.value)
        assert "disk (or the ledger file's size limit) is full" in message
        assert "free space, then run the same command again" in message
        assert "in flight are settled first" in message
        assert ledger.total() % 200 == 0  # the batch that did not fit left nothing behind


def test_the_end_of_a_run_is_recorded_after_the_disk_filled(path: Path) -> None:
    with Ledger.open(path, clock=lambda: 50.0) as ledger:
        run_id = ledger.start_run("jobs/fleet.yaml", {})
    with Ledger.open(path, max_pages=1, clock=lambda: 60.0) as ledger:
        kept = _fill(ledger)
        original = LedgerFullError("the disk filled")
        ledger.finish_run(run_id, {"pending": kept}, "disk full", error=original)
        (run,) = ledger.runs()
    assert (run.finished_at, run.summary, run.stop_reason) == (60.0, {"pending": kept}, "disk full")


def test_a_failed_end_of_run_after_a_full_disk_raises_the_original_error(path: Path) -> None:
    with Ledger.open(path) as ledger:
        run_id = ledger.start_run("jobs/fleet.yaml", {})
    with Ledger.open(path, max_pages=1) as ledger:
        _fill(ledger)
        original = LedgerFullError("the disk filled while sending")
        too_big = {"note": "x" * 200_000}  # needs pages the disk does not have
        with pytest.raises(LedgerFullError, match="while sending") as caught:
            ledger.finish_run(run_id, too_big, None, error=original)
        assert caught.value is original
        assert any("could not be recorded either" in n for n in caught.value.__notes__)
        with pytest.raises(LedgerFullError, match="free space"):
            ledger.finish_run(run_id, too_big, None)  # without an original, its own error
        (run,) = ledger.runs()
        assert run.finished_at is None


# -- the package and its files -------------------------------------------------------------------


def test_importing_the_ledger_loads_no_job_reader_field_rules_or_registry() -> None:
    script = (
        "import sys, dispatcher.ledger\n"
        "heavy = ('yaml', 'dispatcher.job.model', 'dispatcher.job.fields', 'dispatcher.lwm2m')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_discarding_a_ledger_deletes_it_and_every_side_file(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.register([make_command(1)])
        beside = [p for p in side_files(path) if p.exists()]
        assert {p.name for p in beside} >= {"job.ledger.db-wal", "job.ledger.db.lock"}
    other = path.with_name("other.db")
    other.write_text("not this ledger's")
    discard(path)
    assert not path.exists() and not any(p.exists() for p in side_files(path))
    assert other.exists()


def test_a_side_file_is_told_by_its_name_and_a_ledger_by_its_header(path: Path) -> None:
    assert side_file_of(Path("/d/x.db-wal")) == (Path("/d/x.db"), "wal")
    assert side_file_of(Path("/d/x.db.lock")) == (Path("/d/x.db"), "lock")
    assert side_file_of(Path("/d/x.db-journal")) == (Path("/d/x.db"), "journal")
    assert side_file_of(Path("/d/x.db")) is None
    assert not is_database(path)
    Ledger.open(path).close()
    assert is_database(path)
    assert not is_database(path.with_name(path.name + ".lock"))
