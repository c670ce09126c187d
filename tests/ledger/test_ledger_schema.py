"""The SQLite ledger's schema and disk: schema 2 and its migration, a full disk, the package's
imports and side files."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from dispatcher.errors import LedgerError
from dispatcher.ledger import columns, schema as ledger_file
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.sqlite_files import discard, is_database, side_file_of, side_files
from dispatcher.ledger.store import FINAL, TO_SEND, InFlight, LedgerFullError, Result, Row, Status
from tests.support.ledger import (
    find_row,
    make_command,
    schema_1_ledger,
    write_outcomes,
)


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
