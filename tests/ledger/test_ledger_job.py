"""The ledger and its job: the job record, edited and removed commands, default ledger paths."""

from __future__ import annotations

import dataclasses
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.errors import LedgerError
from dispatcher.job.model import Command
from dispatcher.ledger.identity import default_ledger_path
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import JobRecord, Result, Retired, Status
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
def ledger(path: Path) -> Iterator[Ledger]:
    with Ledger.open(path, synchronous="normal") as opened:
        yield opened


def _edited(cmd: Command, **fields: object) -> Command:
    return dataclasses.replace(cmd, **fields)  # type: ignore[arg-type]


def _temp_tables(ledger: Ledger) -> list[str]:
    conn = ledger._conn
    assert conn is not None
    return [n for (n,) in conn.execute("SELECT name FROM sqlite_temp_master WHERE type='table'")]


# -- the job record ------------------------------------------------------------------------------


def test_the_job_record_is_kept_and_replaced(path: Path) -> None:
    record = JobRecord("/srv/jobs/fleet.yaml", "fleet", "ab12" * 8, 600_000)
    with Ledger.open(path) as ledger:
        assert ledger.job() is None
        ledger.set_job(record)
    with Ledger.open(path) as ledger:
        assert ledger.job() == record
        ledger.set_job(dataclasses.replace(record, total=600_001, fingerprint="ff"))
    with Ledger.open(path, read_only=True) as reader:
        assert reader.job() == JobRecord("/srv/jobs/fleet.yaml", "fleet", "ff", 600_001)


def test_a_ledger_without_a_record_names_the_jobs_its_runs_were_started_with(
    ledger: Ledger,
) -> None:
    for job in ("jobs/a.yaml", "jobs/b.csv", "jobs/a.yaml"):
        ledger.start_run(job, {})
    assert ledger.job() is None
    assert ledger.recorded_job_paths() == ["jobs/a.yaml", "jobs/b.csv"]


# -- comparing the job with the ledger -----------------------------------------------------------


def test_a_dry_comparison_finds_changed_removed_and_new_and_writes_nothing(
    ledger: Ledger,
) -> None:
    cmds = [make_command(i) for i in range(5)]
    ledger.register(cmds)
    job = [
        cmds[0],
        _edited(cmds[1], retry=9, expired_time=parse_timespec("+2d")),
        cmds[2],
        make_command(7),
    ]  # 3 and 4 removed
    before = list(ledger.rows())
    diff = ledger.compare(job)
    assert (diff.changed, diff.removed, diff.returned, diff.new, diff.applied) == (
        1, 2, 0, 1, False,
    )  # fmt: skip
    (change,) = diff.changed_examples
    assert (change.row.key, change.row.command.retry, change.command.retry) == (cmds[1].key, 3, 9)
    assert change.fields == ("expired_time", "retry")
    assert [r.key for r in diff.removed_examples] == [cmds[3].key, cmds[4].key]
    assert list(ledger.rows()) == before
    assert _temp_tables(ledger) == []


def test_a_moved_command_is_not_changed_but_gets_its_new_place_when_applied(
    ledger: Ledger,
) -> None:
    cmd = make_command(1)
    ledger.register([cmd])
    moved = _edited(cmd, source="jobs/other.csv", line=99)
    dry = ledger.compare([moved])
    assert (dry.changed, dry.moved, dry.same) == (0, 1, False)
    diff = ledger.compare([moved], apply=True)
    assert (diff.changed, diff.removed, diff.new, diff.moved) == (0, 0, 0, 1)
    assert ledger.compare([moved]).same
    row = find_row(ledger, cmd.key)
    assert row is not None
    assert (row.command.source, row.command.line, row.retired) == ("jobs/other.csv", 99, None)


def test_applying_an_edit_keeps_the_old_row_under_a_suffixed_key_and_adds_the_edit(
    ledger: Ledger,
) -> None:
    cmd, other = make_command(1), make_command(2)
    ledger.register([cmd, other])
    ledger.write_batch([mark(cmd.key, at=1000.0)], ())
    write_outcomes(ledger, [accept(cmd.key, "u-old", at=1001.0)])
    edit = _edited(cmd, timeout=40, valid_time=parse_timespec("2031-01-01T00:00:00"))
    diff = ledger.compare([edit, other], apply=True)
    assert (diff.changed, diff.removed, diff.applied) == (1, 0, True)
    assert diff.changed_examples[0].fields == ("valid_time", "timeout")
    old = find_row(ledger, f"{cmd.key}~1")
    assert old is not None
    assert (old.status, old.uuid, old.attempts, old.command.timeout, old.retired) == (
        Status.ACCEPTED, "u-old", 1, 25, Retired.CHANGED,
    )  # fmt: skip
    assert (old.first_attempt_at, old.sent_expired_time) == (1000.0, "2024-05-01T16:00:00")
    new = find_row(ledger, cmd.key)
    assert new is not None
    assert (new.status, new.command.timeout, new.uuid, new.retired) == (
        Status.PENDING, 40, None, None,
    )  # fmt: skip
    assert new.command.valid_time == parse_timespec("2031-01-01T00:00:00")
    assert ledger.register([edit, other]) == [Status.PENDING, Status.PENDING]
    assert ledger.known_uuids(cmd.imei) == {"u-old"}  # the old version's uuid stays claimed
    assert ledger.compare([edit, other]).same


def test_a_second_edit_takes_the_next_free_suffix(ledger: Ledger) -> None:
    cmd = make_command(1)
    ledger.register([cmd])
    ledger.compare([_edited(cmd, retry=4)], apply=True)
    ledger.compare([_edited(cmd, retry=5)], apply=True)
    rows = {r.key: r for r in ledger.rows()}
    assert {k: (r.command.retry, r.retired) for k, r in rows.items()} == {
        cmd.key: (5, None),
        f"{cmd.key}~1": (3, Retired.CHANGED),
        f"{cmd.key}~2": (4, Retired.CHANGED),
    }


def test_removed_rows_are_retired_and_return_as_they_were(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(3)]
    ledger.register(cmds)
    write_outcomes(ledger, [accept(cmds[2].key, "u-2")])
    diff = ledger.compare(cmds[:1], apply=True)
    assert (diff.removed, [r.key for r in diff.removed_examples]) == (
        2, [cmds[1].key, cmds[2].key],
    )  # fmt: skip
    assert ledger.counts()[Status.PENDING] == 1
    assert ledger.counts()[Status.ACCEPTED] == 0
    assert ledger.retired_counts() == {"removed": 2, "changed": 0}
    assert [r.key for r in ledger.rows(retired=True)] == [cmds[1].key, cmds[2].key]
    assert [r.key for r in ledger.rows(retired=False)] == [cmds[0].key]
    assert len(list(ledger.rows())) == 3
    assert ledger.stats().total == 1
    moved_back = _edited(cmds[2], line=500)
    diff = ledger.compare([cmds[0], moved_back], apply=True)
    assert (diff.returned, diff.removed, diff.changed, diff.new) == (1, 0, 0, 0)  # 1 stays out
    back = find_row(ledger, cmds[2].key)
    assert back is not None
    assert (back.retired, back.status, back.uuid, back.command.line) == (
        None,
        Status.ACCEPTED,
        "u-2",
        500,
    )
    assert ledger.retired_counts() == {"removed": 1, "changed": 0}


def test_a_removed_row_back_with_other_fields_stays_retired_beside_the_edit(
    ledger: Ledger,
) -> None:
    cmd = make_command(1)
    ledger.register([cmd])
    write_outcomes(ledger, [accept(cmd.key, "u-1")])
    ledger.compare([], apply=True)
    edit = _edited(cmd, trigger_msg=2)
    diff = ledger.compare([edit], apply=True)
    assert (diff.changed, diff.returned, diff.new) == (1, 0, 0)
    assert diff.changed_examples[0].fields == ("trigger_msg",)
    old = find_row(ledger, f"{cmd.key}~1")
    assert old is not None
    assert (old.retired, old.uuid, old.command.trigger_msg) == (Retired.REMOVED, "u-1", 7)
    new = find_row(ledger, cmd.key)
    assert new is not None
    assert (new.retired, new.status, new.command.trigger_msg) == (None, Status.PENDING, 2)


def test_new_commands_are_counted_and_left_to_register(ledger: Ledger) -> None:
    diff = ledger.compare([make_command(i) for i in range(3)], apply=True)
    assert (diff.new, diff.changed, diff.removed) == (3, 0, 0)
    assert ledger.total() == 0


def test_examples_are_capped_at_the_sample_size_but_counts_are_not(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(1200)]
    ledger.register(cmds)
    job = [_edited(c, retry=0) for c in cmds[:700]]
    diff = ledger.compare(job, sample=5)
    assert (diff.changed, diff.removed) == (700, 500)
    assert [c.row.key for c in diff.changed_examples] == [c.key for c in cmds[:5]]
    assert [r.key for r in diff.removed_examples] == [c.key for c in cmds[700:705]]
    none = ledger.compare(job, sample=0)
    assert (none.changed_examples, none.removed_examples) == ((), ())


def test_a_command_listed_twice_is_compared_once(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(600)]
    ledger.register(cmds)
    diff = ledger.compare([*cmds, _edited(cmds[0], retry=1)], apply=True)
    assert diff.same
    assert ledger.total() == 600


def test_a_dry_comparison_works_on_a_read_only_ledger(path: Path, ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(3)]
    ledger.register(cmds)
    with Ledger.open(path, read_only=True) as reader:
        diff = reader.compare(cmds[1:])
    assert (diff.removed, diff.new) == (1, 0)


def test_an_error_while_reading_the_job_leaves_no_temporary_table(ledger: Ledger) -> None:
    cmds = [make_command(i) for i in range(1000)]
    ledger.register(cmds)

    def broken_job() -> Iterator[Command]:
        yield from cmds[:700]
        raise LedgerError("the job file went away")

    with pytest.raises(LedgerError, match="went away"):
        ledger.compare(broken_job(), apply=True)
    assert _temp_tables(ledger) == []
    assert ledger.retired_counts() == {"removed": 0, "changed": 0}  # nothing retired half-way
    assert ledger.compare(cmds).same


def test_a_command_without_a_key_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="no ledger key"):
        ledger.compare([make_command(1, key="")])
    assert _temp_tables(ledger) == []


def test_comparing_a_large_job_holds_no_command_per_row(ledger: Ledger) -> None:
    n = 30_000
    for start in range(0, n, 5000):
        ledger.register([make_command(i) for i in range(start, start + 5000)])

    def job() -> Iterator[Command]:
        for i in range(n):
            cmd = make_command(i)
            yield _edited(cmd, retry=1) if i % 1000 == 0 else cmd

    tracemalloc.start()
    try:
        diff = ledger.compare(job(), apply=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (diff.changed, diff.removed, diff.new) == (30, 0, 0)
    assert peak < 3_000_000  # 30,000 commands held would be well over 10 MB


# -- the default ledger path ---------------------------------------------------------------------


def test_default_ledger_paths_of_a_yaml_and_a_csv_job_differ(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    assert default_ledger_path(jobs / "a.yaml") == jobs / "a.yaml.ledger.db"
    assert default_ledger_path(jobs / "a.csv") == jobs / "a.csv.ledger.db"


def test_an_old_default_ledger_recorded_by_its_runs_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").mkdir()
    old = tmp_path / "jobs" / "a.ledger.db"
    with Ledger.open(old) as ledger:
        ledger.start_run("jobs/a.yaml", {})  # relative to the directory it ran in
    assert default_ledger_path(Path("jobs/a.yaml")) == Path("jobs/a.ledger.db")
    assert default_ledger_path(tmp_path / "jobs" / "a.yaml") == old
    assert default_ledger_path(Path("jobs/a.csv")) == Path("jobs/a.csv.ledger.db")


def test_an_old_default_ledger_is_matched_by_its_job_record(tmp_path: Path) -> None:
    old = tmp_path / "a.ledger.db"
    with Ledger.open(old) as ledger:
        ledger.set_job(JobRecord(str(tmp_path / "a.csv"), "a", "00", 3))
        ledger.start_run("a.yaml", {})  # the record, not the runs, says whose it is
    assert default_ledger_path(tmp_path / "a.csv") == old
    assert default_ledger_path(tmp_path / "a.yaml") == tmp_path / "a.yaml.ledger.db"


def test_an_old_schema_1_ledger_of_this_job_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "jobs").mkdir()
    schema_1_ledger(tmp_path / "jobs" / "a.ledger.db")  # its run names jobs/a.yaml
    assert default_ledger_path(Path("jobs/a.yaml")) == Path("jobs/a.ledger.db")


def test_the_new_default_wins_once_it_exists_and_strangers_are_ignored(tmp_path: Path) -> None:
    old = tmp_path / "a.ledger.db"
    with Ledger.open(old) as ledger:
        ledger.start_run(str(tmp_path / "a.yaml"), {})
    Ledger.open(tmp_path / "a.yaml.ledger.db").close()
    assert default_ledger_path(tmp_path / "a.yaml") == tmp_path / "a.yaml.ledger.db"
    (tmp_path / "b.ledger.db").write_bytes(b"not a database at all" * 100)
    assert default_ledger_path(tmp_path / "b.yaml") == tmp_path / "b.yaml.ledger.db"
    with sqlite3.connect(tmp_path / "c.ledger.db") as other:
        other.execute("CREATE TABLE devices (imei TEXT)")
    other.close()
    assert default_ledger_path(tmp_path / "c.csv") == tmp_path / "c.csv.ledger.db"
    Ledger.open(tmp_path / "d.ledger.db").close()  # no run, no record: nobody's
    assert default_ledger_path(tmp_path / "d.yaml") == tmp_path / "d.yaml.ledger.db"


def test_a_result_for_a_retired_row_is_still_written(ledger: Ledger) -> None:
    cmd = make_command(1)
    ledger.register([cmd])
    ledger.write_batch([mark(cmd.key)], ())
    ledger.compare([_edited(cmd, retry=0)], apply=True)
    write_outcomes(
        ledger, [Result(f"{cmd.key}~1", Status.IN_DOUBT, None, "cut", None, 1, 5.0, None)]
    )
    old = find_row(ledger, f"{cmd.key}~1")
    assert old is not None
    assert (old.status, old.retired) == (Status.IN_DOUBT, Retired.CHANGED)
    assert [r.key for r in ledger.rows({Status.IN_DOUBT})] == [old.key]  # still to be settled
    assert ledger.counts()[Status.IN_DOUBT] == 0
