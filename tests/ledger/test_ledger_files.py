"""The SQLite ledger's files: one opener at a time (through links too), owner-only files, what is
refused, reopening, read-only opening, runs kept without secrets."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from dispatcher.errors import LedgerError, LedgerLockedError
from dispatcher.ledger import schema as ledger_file
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from tests.support.ledger import (
    make_command,
)


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
