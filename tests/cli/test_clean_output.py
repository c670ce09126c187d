"""What dispatcher writes stays clean: foreign text reaches the terminal without control or bidi
characters, csv exports neutralise formulas, ``-o`` never writes over a job's own files or a
ledger, and a file that is not a ledger is never made into one."""

from __future__ import annotations

import csv
import io
import logging
import sqlite3
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from click.testing import Result as CliResult
from rich.console import Console

from dispatcher.cli import console
from dispatcher.errors import LedgerError
from dispatcher.ledger.schema import MIGRATIONS
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, JobRecord, Result, Status
from dispatcher.report.export import EXPORT_FIELDS, write_export
from dispatcher.report.html import write_html
from dispatcher.report.render import render_table
from dispatcher.report.summary import summarize
from tests.support.cli import invoke as shared_invoke
from tests.support.ledger import make_command, write_outcomes

# What a hostile device or OneNET could answer: a colour, a screen clear, a window title (OSC),
# an 8-bit CSI, a bell, right-to-left override and isolates, and a line break to forge a line.
HOSTILE = (
    "\x1b[31mred\x1b[2J\x1b]0;owned\x07 \u202eexe.txt\u202c \u2066x\u2069\u200f \x9b1m\nnext\tcol"
)
CLEANED = "[31mred[2J]0;owned exe.txt x 1m next col"


def unclean(text: str) -> list[str]:
    """The control and format characters in ``text`` (line ends aside)."""
    return [
        f"U+{ord(c):04X}"
        for c in text
        if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp")
    ]


@pytest.fixture
def cli() -> Iterator[Callable[..., CliResult]]:
    """The CLI in-process. (conftest.py undoes what it leaves.)"""

    def invoke(*args: str | Path) -> CliResult:
        return shared_invoke(*args, key="test-key-clean")

    yield invoke


def hostile_ledger(path: Path, job_path: Path | None = None) -> Path:
    """Two accepted commands the devices answered with HOSTILE, one refused with HOSTILE as
    OneNET's text, and a run stopped for HOSTILE."""
    with Ledger.open(path, synchronous="normal") as ledger:
        cmds = [make_command(n) for n in range(3)]
        ledger.register(cmds)
        write_outcomes(
            ledger,
            [Result(c.key, Status.ACCEPTED, 0, "", f"u{n}", 1, 1000.0, 1.0)
             for n, c in enumerate(cmds[:2])]
            + [Result(cmds[2].key, Status.REJECTED, 5006, HOSTILE, None, 1, 1000.0, 1.0)],
        )  # fmt: skip
        ledger.record_delivery(
            [Delivery(c.key, 6, HOSTILE, None, None, HOSTILE, 2000.0) for c in cmds[:2]]
        )  # both final: nothing is left to ask OneNET
        if job_path is not None:
            ledger.set_job(JobRecord(str(job_path.resolve()), "fleet", "0" * 32, 3))
        ledger.finish_run(ledger.start_run("fleet.yaml", {}), {}, f"stopped: {HOSTILE}")
    return path


# --- terminal output --------------------------------------------------------------------------


def test_status_shows_device_answers_without_control_or_bidi_characters(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    ledger = hostile_ledger(tmp_path / "l.db")
    result = cli("status", ledger, "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 0, result.stderr
    assert f"device answers: {CLEANED} 2" in result.stdout
    assert unclean(result.stdout) == []
    assert unclean(result.stderr) == []


def test_report_table_shows_onenet_texts_without_control_or_bidi_characters(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    path = hostile_ledger(tmp_path / "l.db")
    result = cli("report", path)
    assert result.exit_code == 0, result.stderr
    assert unclean(result.stdout) == []
    wide = Console(record=True, width=300, color_system=None)
    with Ledger.open(path, read_only=True) as ledger:
        wide.print(render_table(summarize(ledger)))
    shown = wide.export_text()
    assert f"errno 5006 ({CLEANED})" in shown
    assert f"stopped: {CLEANED}" in shown


def test_error_notes_and_warnings_lose_control_and_bidi_characters_and_stay_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console.error(f"OneNET said {HOSTILE}")
    console.warn(HOSTILE)
    console.note(HOSTILE)
    console.show(HOSTILE)
    out, err = capsys.readouterr()
    assert err.splitlines() == [f"error: OneNET said {CLEANED}", f"warning: {CLEANED}", CLEANED]
    assert out.splitlines() == [CLEANED]


def test_log_lines_lose_control_and_bidi_characters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logger = logging.getLogger("dispatcher")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    try:
        console.setup_logging(0)
        logging.getLogger("dispatcher.run").warning("OneNET answered %s", HOSTILE)
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]
    assert capsys.readouterr().err.splitlines() == [f"warning: OneNET answered {CLEANED}"]


def test_the_html_report_holds_no_control_or_bidi_characters(tmp_path: Path) -> None:
    out = io.StringIO()
    with Ledger.open(hostile_ledger(tmp_path / "l.db"), read_only=True) as ledger:
        write_html(ledger, out)
    page = out.getvalue()
    assert "exe.txt" in page
    assert unclean(page.replace("\t", " ")) == []


# --- csv exports ------------------------------------------------------------------------------


def export_ledger(path: Path) -> Path:
    """Commands whose texts begin like formulas, and numbers that begin with a minus."""
    with Ledger.open(path, synchronous="normal") as ledger:
        cmds = [
            make_command(0, args='=HYPERLINK("http://evil","x")'),
            make_command(1, args="-5"),
            make_command(2, args="@SUM(A1)"),
        ]
        ledger.register(cmds)
        write_outcomes(
            ledger,
            [
                Result(cmds[0].key, Status.REJECTED, -1, "+1+cmd|' /C calc'!A0", None, 1, 1.0, 2.0),
                Result(cmds[1].key, Status.REJECTED, 5006, "\tx", None, 1, 1.0, -0.5),
                Result(cmds[2].key, Status.ACCEPTED, 0, "", "u2", 1, 1.0, 3.0),
            ],
        )
        ledger.record_delivery([Delivery(cmds[2].key, 6, "-2+3", None, None, "\r=1+1", 9.0)])
    return path


def test_csv_export_neutralises_text_cells_that_begin_like_a_formula(tmp_path: Path) -> None:
    out = io.StringIO(newline="")
    with Ledger.open(export_ledger(tmp_path / "l.db"), read_only=True) as ledger:
        write_export(ledger, "csv", out)
    header, *rows = csv.reader(io.StringIO(out.getvalue(), newline=""))
    cells = [dict(zip(header, row, strict=True)) for row in rows]
    assert [c["args"] for c in cells] == ['\'=HYPERLINK("http://evil","x")', "-5", "'@SUM(A1)"]
    assert [c["error"] for c in cells] == ["'+1+cmd|' /C calc'!A0", "'\tx", ""]
    assert (cells[2]["confirm_status"], cells[2]["cmd_result"]) == ("'-2+3", "'\r=1+1")
    # Numbers stay numbers, a negative one too.
    assert [c["errno"] for c in cells] == ["-1", "5006", "0"]
    assert [c["latency_ms"] for c in cells] == ["2.0", "-0.5", "3.0"]


def test_json_exports_keep_formula_like_texts_exactly(tmp_path: Path) -> None:
    out = io.StringIO()
    with Ledger.open(export_ledger(tmp_path / "l.db"), read_only=True) as ledger:
        write_export(ledger, "jsonl", out)
    records = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [r["args"] for r in records] == ['=HYPERLINK("http://evil","x")', "-5", "@SUM(A1)"]
    assert records[2]["cmd_result"] == "\r=1+1"
    assert list(records[0]) == list(EXPORT_FIELDS)


# --- -o never writes over the job's own files or a ledger ---------------------------------------


def job_with_targets(directory: Path) -> Path:
    """A YAML job whose targets are in ``fleet.csv`` beside it."""
    (directory / "fleet.csv").write_text("imei,args\n860000000000001,go\n", encoding="utf-8")
    job = directory / "job.yaml"
    job.write_text(
        "job: csv fleet\n"
        "defaults: {obj_id: 3303, obj_inst_id: 0, res_id: 5605, expired_time: '+2d'}\n"
        "targets_csv: fleet.csv\n",
        encoding="utf-8",
    )
    return job


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("job.yaml", "is the job file"),
        ("alias.yaml", "is the job file"),
        ("fleet.csv", "is the targets_csv of the job file"),
        ("l.db-wal", "is the ledger being read"),
        ("other.db", "is a ledger"),
        ("other.db-wal", "is a ledger"),
    ],
)
def test_report_never_writes_over_the_job_its_targets_or_any_ledger(
    tmp_path: Path, cli: Callable[..., CliResult], name: str, what: str
) -> None:
    job = job_with_targets(tmp_path)
    (tmp_path / "alias.yaml").symlink_to(job)
    ledger = hostile_ledger(tmp_path / "l.db", job)
    with Ledger.open(tmp_path / "other.db") as other:
        other.register([make_command(9)])
    (tmp_path / "other.db-wal").write_bytes(b"")  # left beside it, as SQLite may
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != "l.db-shm"}
    result = cli("report", ledger, "--format", "csv", "-o", tmp_path / name)
    assert result.exit_code == 2, result.stderr
    assert what in result.stderr
    assert "Traceback" not in result.stderr
    assert {name: (tmp_path / name).read_bytes() for name in files} == files


def test_report_writes_over_a_file_of_its_own_kind(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    ledger = hostile_ledger(tmp_path / "l.db", job_with_targets(tmp_path))
    (tmp_path / "report.csv").write_text("an older report\n", encoding="utf-8")
    result = cli("report", ledger, "--format", "csv", "-o", tmp_path / "report.csv")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "report.csv").read_text(encoding="utf-8").startswith("imei,")


# --- a file that is not a ledger is never made into one ---------------------------------------


@pytest.mark.parametrize("read_only", [False, True])
def test_an_existing_empty_file_is_refused_and_stays_empty(tmp_path: Path, read_only: bool) -> None:
    empty = tmp_path / "touched.db"
    empty.touch()
    with pytest.raises(LedgerError, match="is empty, not a ledger"):
        Ledger.open(empty, read_only=read_only)
    assert empty.stat().st_size == 0


def test_an_sqlite_database_without_tables_is_never_made_a_ledger(tmp_path: Path) -> None:
    bare = tmp_path / "bare.db"
    conn = sqlite3.connect(bare)
    conn.execute("PRAGMA user_version = 7")  # writes the header: a database with no tables
    conn.close()
    before = bare.read_bytes()
    with pytest.raises(LedgerError, match="an SQLite database without tables, not a ledger"):
        Ledger.open(bare)
    assert bare.read_bytes() == before


def test_a_ledger_whose_creating_run_died_before_its_schema_is_made_the_ledger(
    tmp_path: Path,
) -> None:
    # A run killed as it created its ledger: the file is there, empty, and its pid file names a
    # dispatcher that is gone. The same command goes on with it.
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    path = tmp_path / "run.db"
    path.touch(mode=0o600)
    (tmp_path / "run.db.lock").write_text(gone.stdout, encoding="ascii")
    with Ledger.open(path) as ledger:
        ledger.register([make_command(1)])
        assert ledger.total() == 1


def test_a_path_that_does_not_exist_is_made_a_ledger(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "new.db") as ledger:
        ledger.register([make_command(1)])
    with Ledger.open(tmp_path / "new.db", read_only=True) as again:
        assert again.total() == 1


@pytest.mark.parametrize(
    "command",
    [
        ("report",),
        ("report", "--format", "csv"),
        ("status",),
        ("cancel", "--yes"),
        ("retry-failed", "-o", "retry.yaml"),
    ],
)
def test_commands_refuse_an_empty_file_and_leave_it_empty(
    tmp_path: Path,
    cli: Callable[..., CliResult],
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "touched.db"
    empty.touch()
    result = cli(command[0], empty, *command[1:])
    assert result.exit_code == 1, result.stderr
    assert "is empty, not a" in result.stderr
    assert "dispatcher status" not in result.stderr  # no advice that status then refuses
    assert "Traceback" not in result.stderr
    assert empty.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["touched.db"]


def test_run_refuses_an_empty_ledger_file_and_sends_nothing(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    job = job_with_targets(tmp_path)
    empty = tmp_path / "touched.db"
    empty.touch()
    result = cli("run", job, "--ledger", empty, "--base-url", "http://127.0.0.1:9")
    assert result.exit_code == 1, result.stderr
    assert f"{empty} is empty, not a ledger" in result.stderr
    assert empty.stat().st_size == 0


def old_ledger(path: Path, version: int) -> Path:
    """A ledger as a dispatcher of schema ``version`` wrote it, holding one pending command."""
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:version]:
        for statement in step:
            conn.execute(statement)
    conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(version),))
    conn.execute(
        "INSERT INTO commands (key, imei, obj_id, obj_inst_id, res_id, expired_time, retry,"
        " timeout, trigger_msg, source, line) VALUES ('k', '860000000000001', 3200, 0, 5750,"
        " '2030-01-01T00:00:00', 3, 30, 0, 'fleet.yaml', 2)"
    )
    conn.close()
    return path


def test_the_upgrade_report_advises_is_what_status_does(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    ledger = old_ledger(tmp_path / "old.db", 2)
    refused = cli("report", ledger)
    assert refused.exit_code == 1
    assert f"run `dispatcher status {ledger}`" in refused.stderr
    upgraded = cli("status", ledger, "--base-url", "http://127.0.0.1:9")
    assert upgraded.exit_code == 0, upgraded.stderr
    shown = cli("report", ledger)
    assert shown.exit_code == 0, shown.stderr
    assert "pending" in shown.stdout
