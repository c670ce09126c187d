"""The earlier ledgers of a recurring job (ledger paths with placeholders): a ledger an older
dispatcher wrote is looked at too, never passed over (passing over an unfinished one would make
a new ledger and send the whole job again)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.errors import LedgerLockedError
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.lock import lock, unlock
from dispatcher.ledger.occurrences import occurrences
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Result, Status
from tests.support.ledger import make_command, schema_1_ledger, write_outcomes


def test_an_older_ledgers_unfinished_run_makes_it_an_unfinished_occurrence_of_its_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the old ledger recorded its job file as jobs/a.yaml
    old = tmp_path / "a-2030-01-01.db"
    schema_1_ledger(old)

    (found,) = occurrences([old])

    assert found.path == old
    assert found.job.path == str((tmp_path / "jobs" / "a.yaml").resolve())
    assert found.unfinished == "its last run has no recorded end"


def test_an_older_ledger_another_process_holds_is_refused_not_passed_over(
    tmp_path: Path,
) -> None:
    old = tmp_path / "a-2030-01-01.db"
    schema_1_ledger(old)
    held = lock(old)  # as a run of an older dispatcher holds it (its schema not upgraded)
    try:
        with pytest.raises(LedgerLockedError):
            occurrences([old])
    finally:
        unlock(held)


def test_a_finished_ledger_of_this_version_is_an_occurrence_done(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with Ledger.open(path) as ledger:
        command = make_command(0)
        ledger.register([command])
        ledger.set_job(JobRecord(str(tmp_path / "a.yaml"), "a", "f" * 32, 1))
        write_outcomes(ledger, [Result(command.key, Status.ACCEPTED, 0, "", "u0", 1, 1.0, 1.0)])

    (found,) = occurrences([path])

    assert found.unfinished is None and found.job.fingerprint == "f" * 32


def test_an_earlier_job_of_a_postgresql_ledger_that_cannot_be_read_stops_the_scan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A job the database listed, unreadable for a moment (no more connections): passed over, it
    # could be sent again whole; so the scan stops with the error instead.
    from dispatcher.errors import LedgerError
    from dispatcher.ledger import occurrences as scan
    from dispatcher.ledger.address import PostgresAddress

    def busy(path: object, *, read_only: bool) -> None:
        raise LedgerError("postgresql://ops@db/dispatcher#fleet-2026-12-05: too many clients")

    monkeypatch.setattr(scan, "_read", busy)
    earlier = PostgresAddress("postgresql://ops@db/dispatcher", "fleet-2026-12-05")
    with pytest.raises(LedgerError, match="too many clients"):
        scan.occurrences([earlier])
