"""A job's ledger copied whole between SQLite and PostgreSQL (app/copying.py, ledger/copying.py):
exactly (every table, row and value, numbers kept), so that the copy answers every read as the
source does and a run resumes it; refused onto anything that holds a ledger, onto itself, from
nothing, and from a ledger a run holds; and a failure leaves nothing behind."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from dispatcher.app.copying import copy_ledger
from dispatcher.errors import LedgerError, LedgerLockedError
from dispatcher.ledger.address import LedgerAddress, PostgresAddress
from dispatcher.ledger.copying import TABLES, LedgerDump, digest_of
from dispatcher.ledger.opening import ledger_exists, open_copy_side, open_ledger
from dispatcher.ledger.postgres import PostgresLedger
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from dispatcher.ledger.targets import FrozenTarget
from tests.support.cli import ROOT, process_env
from tests.support.ledger import make_command
from tests.support.postgres import new_database, server
from tests.support.rich_ledger import JOB, Clock, fill, reads


def _pg(url: str, job: str | None = "fleet") -> PostgresAddress:
    address = PostgresAddress.parse(url)
    return address if job is None else address.with_job(job)


def _rich(path: Path) -> Path:
    with Ledger.open(path, clock=Clock()) as ledger:
        fill(ledger)
    return path


def _dumped(address: LedgerAddress) -> tuple[Any, ...]:
    """Everything the ledger holds, read whole through its dump."""
    side = open_copy_side(address, existing=True)
    try:
        dump = side.dump()
        return (dump.job, *((t.table.name, list(t.rows)) for t in dump.tables))
    finally:
        side.close()


def _reads(address: LedgerAddress) -> dict[str, Any]:
    with open_ledger(address, read_only=True) as store:
        return reads(store)


def test_a_ledger_goes_to_postgresql_and_back_exactly(tmp_path: Path) -> None:
    source = _rich(tmp_path / "fleet.yaml.ledger.db")
    there, back = _pg(new_database()), tmp_path / "back.ledger.db"
    copied = copy_ledger(source, there)
    assert copy_ledger(there, back).digest == copied.digest
    held = _dumped(source)
    assert _dumped(there) == held
    assert _dumped(back) == held
    tables = dict(held[1:])
    assert [len(tables[t.name]) for t in TABLES] == [10, 2, 1, 6, 2, 2]
    assert copied.digest.count("commands") == 10
    # The values the API never reads back are copied all the same (run_id, canary, floats).
    (seq1,) = [r for r in tables["commands"] if r[0] == 1]
    assert seq1[25] == 1 and seq1[19] == 1_700_000_001.1
    assert _reads(source) == _reads(there) == _reads(back)


def test_the_copies_answer_every_read_as_the_source(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    there = _pg(new_database())
    copy_ledger(source, there)
    answers = _reads(there)
    assert answers == _reads(source)
    assert answers["job"] == JOB
    assert answers["counts"][Status.IN_DOUBT] == 1 and answers["handed_over"] == 0
    assert answers["retired_counts"] == {"removed": 1, "changed": 1}
    assert (
        answers["runs"][0].settings["note"] == "升级 ✓" and answers["runs"][1].finished_at is None
    )


def test_run_settings_and_summaries_are_copied_byte_for_byte(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    raw = sqlite3.connect(source)
    raw.execute('UPDATE runs SET settings = \'{ "b":1,  "a":"\\u00e9" }\' WHERE id = 2')
    raw.commit()
    raw.close()
    there, back = _pg(new_database()), tmp_path / "back.ledger.db"
    copy_ledger(source, there)
    copy_ledger(there, back)
    runs = dict(_dumped(back)[1:])["runs"]
    assert runs[1][4] == '{ "b":1,  "a":"\\u00e9" }'


def test_sqlite_to_sqlite_and_postgresql_to_postgresql(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    url = new_database()
    copy_ledger(source, tmp_path / "b.ledger.db")
    copy_ledger(tmp_path / "b.ledger.db", _pg(url, "one"))
    copy_ledger(_pg(url, "one"), _pg(url, "two"))
    assert _dumped(_pg(url, "two")) == _dumped(tmp_path / "b.ledger.db") == _dumped(source)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_copy_is_resumed_where_the_source_stood(tmp_path: Path, kind: str) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    copy: LedgerAddress = tmp_path / "b.ledger.db" if kind == "sqlite" else _pg(new_database())
    if kind == "sqlite":  # through PostgreSQL and back
        copy_ledger(source, there := _pg(new_database()))
        copy_ledger(there, copy)
    else:
        copy_ledger(source, copy)
    with open_ledger(copy) as ledger:
        last = max(row.seq for row in ledger.rows())
        ledger.register([make_command(100), make_command(101)])
        assert [row.seq for row in ledger.rows()][-2:] == [last + 1, last + 2]
        assert ledger.start_run("jobs/fleet.yaml", {}) == 3
        assert ledger.pass_canary("meters", [], [make_command(103, product="meters")]) == 2
        assert ledger.freeze_targets([FrozenTarget("86000000000000099", "x")]) == 1
        assert ledger.frozen_targets()[-1] == FrozenTarget("86000000000000099", "x")
        assert len(ledger.frozen_targets()) == 7


def test_a_database_without_a_job_named_copies_its_only_job_into_one_named_after_it(
    tmp_path: Path,
) -> None:
    source = _rich(tmp_path / "fleet.yaml.ledger.db")
    url = new_database()
    copied = copy_ledger(source, _pg(url, None))
    assert copied.destination == _pg(url, "fleet")  # the job file's name, as a run names it
    back = copy_ledger(_pg(url, None), tmp_path / "back.ledger.db")
    assert back.source == _pg(url, "fleet")
    assert _dumped(tmp_path / "back.ledger.db") == _dumped(source)


def test_a_ledger_without_a_job_record_is_named_after_its_file(tmp_path: Path) -> None:
    path = tmp_path / "night.csv.ledger.db"
    with Ledger.open(path) as ledger:
        ledger.register([make_command(1)])
    url = new_database()
    assert copy_ledger(path, _pg(url, None)).destination == _pg(url, "night")
    with open_ledger(_pg(url, "night"), read_only=True) as copied:
        assert copied.job() is None and copied.total() == 1


def test_a_destination_that_holds_a_ledger_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    held = tmp_path / "held.ledger.db"
    with Ledger.open(held) as ledger:
        ledger.start_run("other.yaml", {})
    url = new_database()
    with PostgresLedger.open(_pg(url)) as ledger:
        ledger.register([make_command(1)])
    for destination in (held, _pg(url)):
        before = _dumped(destination)
        with pytest.raises(LedgerError, match="already holds a ledger") as caught:
            copy_ledger(source, destination)
        assert str(destination) in str(caught.value)
        assert _dumped(destination) == before
    assert "(1 run)" in _message(source, held)


def _message(source: LedgerAddress, destination: LedgerAddress) -> str:
    with pytest.raises(LedgerError) as caught:
        copy_ledger(source, destination)
    return str(caught.value)


def test_an_empty_ledger_is_a_destination(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    empty = tmp_path / "empty.ledger.db"
    Ledger.open(empty).close()
    copy_ledger(source, empty)
    assert _dumped(empty) == _dumped(source)


def test_a_ledger_is_not_copied_onto_itself(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    (tmp_path / "alias.db").symlink_to(source)
    (tmp_path / "hard.db").hardlink_to(source)
    for same in (source, tmp_path / "alias.db", tmp_path / "hard.db"):
        assert "are the same ledger" in _message(source, same)
    url = new_database()
    copy_ledger(source, _pg(url))
    assert "are the same ledger" in _message(_pg(url), _pg(url))
    assert "are the same ledger" in _message(_pg(url), _pg(url, None))


def test_a_missing_source_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    missing = tmp_path / "missing.ledger.db"
    assert _message(missing, tmp_path / "b.ledger.db") == f"no ledger at {missing}"
    assert not missing.exists() and not (tmp_path / "b.ledger.db").exists()
    url = new_database()
    copy_ledger(_rich(tmp_path / "a.ledger.db"), _pg(url, "there"))
    assert "has no job 'absent' (its jobs: there)" in _message(_pg(url, "absent"), missing)
    assert not ledger_exists(_pg(url, "absent")) and not missing.exists()
    assert "holds no job yet" in _message(_pg(new_database(), None), missing)


def test_a_source_a_run_holds_is_refused_naming_the_holder(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom dispatcher.ledger.sqlite import Ledger\n"
         f"ledger = Ledger.open({str(source)!r})\nprint('held', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=process_env(),
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(LedgerLockedError, match=f"process {holder.pid}"):
            copy_ledger(source, tmp_path / "b.ledger.db")
    finally:
        holder.communicate("")
    assert not (tmp_path / "b.ledger.db").exists()
    url = new_database()
    copy_ledger(source, _pg(url))
    with PostgresLedger.open(_pg(url)), pytest.raises(LedgerLockedError, match="in use by"):
        copy_ledger(_pg(url), tmp_path / "c.ledger.db")
    assert not (tmp_path / "c.ledger.db").exists()


def test_a_destination_a_run_holds_is_refused(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    url = new_database()
    with PostgresLedger.open(_pg(url)), pytest.raises(LedgerLockedError):
        copy_ledger(source, _pg(url))
    with open_ledger(_pg(url), read_only=True) as ledger:
        assert ledger.total() == 0


def test_a_failed_copy_into_postgresql_leaves_no_job(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    raw = sqlite3.connect(source)  # a NUL, which SQLite holds and PostgreSQL's text cannot
    raw.execute("UPDATE commands SET error = 'a' || char(0) || 'b' WHERE seq = 9")
    raw.commit()
    raw.close()
    url = new_database()
    assert "cannot copy the ledger in" in _message(source, _pg(url, "new"))
    assert not ledger_exists(_pg(url, "new"))


def test_a_value_postgresql_cannot_hold_is_refused_naming_its_row(tmp_path: Path) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    raw = sqlite3.connect(source)
    raw.execute("UPDATE commands SET attempts = 'many' WHERE seq = 4")
    raw.commit()
    raw.close()
    url = new_database()
    assert "cannot copy the commands row seq 4" in _message(source, _pg(url, "new"))
    assert not ledger_exists(_pg(url, "new"))


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_load_whose_check_fails_keeps_nothing(tmp_path: Path, kind: str) -> None:
    source = _rich(tmp_path / "a.ledger.db")
    destination: LedgerAddress = (
        tmp_path / "b.ledger.db" if kind == "sqlite" else _pg(new_database())
    )
    src = open_copy_side(source, existing=True)
    dst = open_copy_side(destination, existing=False)
    seen: list[int] = []

    def refuse(back: LedgerDump) -> None:
        seen.append(digest_of(back).count("commands"))
        raise LedgerError("differs")

    try:
        dump = src.dump()
        with pytest.raises(LedgerError, match="differs"):
            dst.load(dump, refuse)
        dump.close()
        assert seen == [10]  # the check saw the rows written, before they were kept
        assert set(dst.held().values()) == {0}
        assert dst.dump().job is None
    finally:
        src.close()
        dst.close()


def test_the_tables_are_the_schemas_columns(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "a.ledger.db") as ledger:
        ledger.freeze_targets([FrozenTarget("1", "")])
        ledger.record_verify([])
    raw = sqlite3.connect(tmp_path / "a.ledger.db")
    url = new_database()
    PostgresLedger.open(_pg(url)).close()
    database = urlsplit(url).path.strip("/")
    for table in TABLES:
        assert tuple(c[1] for c in raw.execute(f"PRAGMA table_info({table.name})")) == table.names
        listed = server().psql(
            "SELECT string_agg(column_name, ' ' ORDER BY ordinal_position) FROM"
            f" information_schema.columns WHERE table_schema = 'dispatcher' AND table_name ="
            f" '{table.name}' AND column_name <> 'job_id'",
            database,
        )
        assert tuple(listed.split()) == table.names
    raw.close()
