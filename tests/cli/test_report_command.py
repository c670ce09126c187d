"""``dispatcher report``: the table, csv, jsonl and json agree; a reader that stops early; missing
or foreign ledgers; a ledger another process is writing."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.job.model import load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Result, Status
from tests.support.cli import (
    SECRET,
    Done,
    LedgerHolder,
    dispatcher_async,
    invoke,
)
from tests.support.e2e import fleet, write_csv_job
from tests.support.job_texts import EXPORT_COLUMNS, I1, I2, I3, I4, ROOT, WriteFile, job_yaml
from tests.support.ledger import make_command, write_outcomes

# --- report ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger from a real run: three accepted, one rejected (errno 1)."""
    root = tmp_path_factory.mktemp("finished")
    (root / "job.yaml").write_text(job_yaml(I1, I2, I3, I4), encoding="utf-8")

    async def go() -> Done:
        emulator = Emulator(Faults(api_key=SECRET, foreign_imeis=frozenset({I4})))
        async with serve(emulator) as url:
            return await dispatcher_async(
                "run", "job.yaml", "--base-url", url, "--rate", "0", cwd=root
            )

    done = asyncio.run(go())
    assert done.code == 3, done.stderr
    return root / "job.yaml.ledger.db"


def test_report_table_summarizes_the_ledger(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger)
    assert result.exit_code == 0
    text = result.stdout
    assert "Ledger summary" in text
    rows = {
        cells[0]: cells[1]
        for cells in (
            [c.strip() for c in line.strip("│┃| ").split("│")]
            for line in text.splitlines()
            if "│" in line
        )
        if len(cells) == 2
    }
    assert rows["commands"] == "4"
    assert rows["accepted"].startswith("3")
    assert rows["rejected"].startswith("1")
    assert any(name.startswith("errno 1") for name in rows)
    assert "latency p50 / p95 / p99" in rows
    assert rows["runs"] == "1"


def test_report_csv_holds_one_record_per_command(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger, "--format", "csv")
    assert result.exit_code == 0
    assert result.stderr == ""
    records = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert len(records) == 4
    assert set(EXPORT_COLUMNS) <= set(records[0])
    by_imei = {r["imei"]: r for r in records}
    assert [by_imei[i]["status"] for i in (I1, I2, I3, I4)] == ["accepted"] * 3 + ["rejected"]
    assert by_imei[I4]["errno"] == "1"
    assert all(by_imei[i]["uuid"] for i in (I1, I2, I3))
    assert by_imei[I1]["source"] == "job.yaml:9"
    assert (by_imei[I1]["obj_id"], by_imei[I1]["res_id"]) == ("3303", "5605")


def test_report_jsonl_holds_one_object_per_line(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger, "--format", "jsonl")
    assert result.exit_code == 0
    assert result.stderr == ""
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 4
    assert all(set(EXPORT_COLUMNS) <= set(r) for r in records)
    assert sorted(r["status"] for r in records) == ["accepted"] * 3 + ["rejected"]
    assert {r["imei"]: r["obj_id"] for r in records} == dict.fromkeys([I1, I2, I3, I4], 3303)


def test_report_json_is_one_array(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger, "--format", "json")
    assert result.exit_code == 0
    assert result.stderr == ""
    records = json.loads(result.stdout)
    assert isinstance(records, list)
    assert sorted(r["imei"] for r in records) == sorted([I1, I2, I3, I4])
    assert all(set(EXPORT_COLUMNS) <= set(r) for r in records)


def test_report_formats_agree(finished_ledger: Path) -> None:
    as_json = json.loads(invoke("report", finished_ledger, "--format", "json").stdout)
    as_jsonl = [
        json.loads(line)
        for line in invoke("report", finished_ledger, "--format", "jsonl").stdout.splitlines()
    ]
    as_csv = list(
        csv.DictReader(
            io.StringIO(invoke("report", finished_ledger, "--format", "csv").stdout, newline="")
        )
    )
    assert as_json == as_jsonl
    assert [(r["imei"], r["uuid"] or "") for r in as_json] == [
        (r["imei"], r["uuid"]) for r in as_csv
    ]


def test_report_piped_into_a_reader_that_stops_early_exits_quietly(tmp_path: Path) -> None:
    ledger_path = tmp_path / "big.ledger.db"
    with Ledger.open(ledger_path) as ledger:  # far more than a pipe holds
        ledger.register(list(load_job(write_csv_job(tmp_path, fleet(2000))).commands()))
    command = [sys.executable, "-m", "dispatcher", "report", str(ledger_path), "--format", "jsonl"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()  # as `| head -1` does
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert code == 0
    assert json.loads(first)["status"] == "pending"
    assert err == ""


def test_report_on_a_missing_ledger_fails(tmp_path: Path) -> None:
    result = invoke("report", tmp_path / "nowhere.ledger.db")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {tmp_path / 'nowhere.ledger.db'}: no such ledger"
    assert result.stdout == ""


@pytest.mark.parametrize("content", [b"", b"not a database at all\n" * 100])
def test_report_on_a_file_that_is_not_a_ledger_fails(write_file: WriteFile, content: bytes) -> None:
    path = write_file("job.yaml.ledger.db", content)
    result = invoke("report", path, "--format", "csv")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {path}")
    assert result.stdout == ""


def test_report_with_an_unknown_format_is_a_usage_error(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger, "--format", "xml")
    assert result.exit_code == 2
    assert "'xml' is not one of" in result.stderr


def test_report_leaves_the_ledger_unchanged(finished_ledger: Path) -> None:
    before = {p.name: p.read_bytes() for p in finished_ledger.parent.glob("job.yaml.ledger.db*")}
    for fmt in ("table", "csv", "jsonl", "json"):
        assert invoke("report", finished_ledger, "--format", fmt).exit_code == 0
    after = {p.name: p.read_bytes() for p in finished_ledger.parent.glob("job.yaml.ledger.db*")}
    assert after == before


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl", "json"])
def test_report_reads_a_ledger_another_process_is_writing(finished_ledger: Path, fmt: str) -> None:
    expected = invoke("report", finished_ledger, "--format", fmt)
    with LedgerHolder(finished_ledger):
        result = invoke("report", finished_ledger, "--format", fmt)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    if fmt != "table":
        assert result.stdout == expected.stdout  # the last committed state
    else:
        assert "Ledger summary" in result.stdout


# --- exports for Excel, and -o FILE's suffix ----------------------------------------------------

BOM = b"\xef\xbb\xbf"


def test_report_csv_for_excel_has_a_bom_and_imeis_as_text(
    finished_ledger: Path, tmp_path: Path
) -> None:
    out = tmp_path / "for-excel.csv"
    result = invoke("report", finished_ledger, "--format", "csv", "--excel", "-o", out)
    assert result.exit_code == 0, result.stderr
    data = out.read_bytes()
    assert data.startswith(BOM + b"imei,")
    assert data.count(b"\r\n") == 5 and b"\n" not in data.replace(b"\r\n", b"")
    records = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert sorted(r["imei"] for r in records) == sorted(f'="{i}"' for i in (I1, I2, I3, I4))


def test_report_csv_for_excel_on_stdout_starts_with_the_bom(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger, "--format", "csv", "--excel")
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes.startswith(BOM + b"imei,")


def test_report_csv_for_excel_neutralises_a_job_arg_and_an_error_text(tmp_path: Path) -> None:
    path = tmp_path / "job.ledger.db"
    with Ledger.open(path) as ledger:
        cmds = [make_command(0, args="=cmd|' /C calc'!A0"), make_command(1, args="on")]
        ledger.register(cmds)
        write_outcomes(
            ledger,
            [
                Result(cmds[0].key, Status.ACCEPTED, 0, "succ", "u-1", 1, 1.0, 2.0),
                Result(cmds[1].key, Status.REJECTED, 9, "@SUM(1+1)*cmd", None, 1, 1.0, 2.0),
            ],
        )
    result = invoke("report", path, "--format", "csv", "--excel")
    assert result.exit_code == 0, result.stderr
    records = list(csv.DictReader(io.StringIO(result.stdout.removeprefix("\ufeff"), newline="")))
    assert records[0]["args"] == "'=cmd|' /C calc'!A0"
    assert records[1]["error"] == "'@SUM(1+1)*cmd"


@pytest.mark.parametrize("fmt", ["table", "jsonl", "json", "html", "xlsx"])
def test_excel_with_another_format_is_a_usage_error(
    finished_ledger: Path, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / "out.bin"
    result = invoke("report", finished_ledger, "--format", fmt, "--excel", "-o", out)
    assert result.exit_code == 2
    assert "--excel is for --format csv" in result.stderr
    if fmt != "xlsx":
        assert f"not {fmt}: use --format csv --excel" in result.stderr
    assert result.stdout == ""
    assert not out.exists()


def test_report_xlsx_is_a_workbook_with_imeis_as_text(
    finished_ledger: Path, tmp_path: Path
) -> None:
    out = tmp_path / "commands.xlsx"
    result = invoke("report", finished_ledger, "--format", "xlsx", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    sheet = openpyxl.load_workbook(out).active
    assert sheet is not None
    header, *rows = list(sheet.iter_rows())
    assert [c.value for c in header][: len(EXPORT_COLUMNS)] == list(EXPORT_COLUMNS)
    imeis = [row[0] for row in rows]
    assert sorted(c.value for c in imeis) == sorted([I1, I2, I3, I4])
    assert all(c.data_type == "s" and c.number_format == "@" for c in imeis)


def test_report_xlsx_without_a_file_is_a_usage_error(finished_ledger: Path) -> None:
    result = invoke("report", finished_ledger, "--format", "xlsx")
    assert result.exit_code == 2
    assert "--format xlsx writes a workbook: give -o FILE.xlsx" in result.stderr
    assert result.stdout_bytes == b""


def test_report_to_an_html_file_without_a_format_writes_the_page(
    finished_ledger: Path, tmp_path: Path
) -> None:
    out = tmp_path / "x.html"
    result = invoke("report", finished_ledger, "-o", out)
    assert result.exit_code == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "Ledger summary" not in page  # not the table


@pytest.mark.parametrize("name", ["out.csv", "OUT.CSV", "out.jsonl", "out.json", "out.xlsx"])
def test_report_output_suffix_picks_the_format(
    finished_ledger: Path, tmp_path: Path, name: str
) -> None:
    out = tmp_path / name
    result = invoke("report", finished_ledger, "-o", out)
    assert result.exit_code == 0, result.stderr
    data = out.read_bytes()
    suffix = out.suffix.lower()
    if suffix == ".csv":
        assert data.startswith(b"imei,")
        assert len(list(csv.DictReader(io.StringIO(data.decode(), newline="")))) == 4
    elif suffix == ".jsonl":
        assert len([json.loads(line) for line in data.splitlines()]) == 4
    elif suffix == ".json":
        assert len(json.loads(data)) == 4
    else:
        assert data.startswith(b"PK")  # a zip: the workbook
        sheet = openpyxl.load_workbook(out).active
        assert sheet is not None and sheet.max_row == 5


def test_report_with_excel_and_a_csv_file_needs_no_format(
    finished_ledger: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    assert invoke("report", finished_ledger, "--excel", "-o", out).exit_code == 0
    assert out.read_bytes().startswith(BOM)


def test_report_to_a_file_of_another_suffix_writes_the_table(
    finished_ledger: Path, tmp_path: Path
) -> None:
    out = tmp_path / "summary.txt"
    result = invoke("report", finished_ledger, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "Ledger summary" in out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "fmt", "wanted"),
    [("x.html", "table", "html"), ("x.csv", "json", "csv"), ("x.xlsx", "csv", "xlsx")],
)
def test_a_format_that_disagrees_with_the_file_suffix_is_refused(
    finished_ledger: Path, tmp_path: Path, name: str, fmt: str, wanted: str
) -> None:
    out = tmp_path / name
    result = invoke("report", finished_ledger, "--format", fmt, "-o", out)
    assert result.exit_code == 2
    suffix = out.suffix
    assert (
        f"{out} ends in {suffix} but --format {fmt} was given; "
        f"drop --format or use --format {wanted}"
    ) in " ".join(result.stderr.split())
    assert not out.exists()


def test_a_format_that_agrees_with_the_file_suffix_is_written(
    finished_ledger: Path, tmp_path: Path
) -> None:
    out = tmp_path / "x.html"
    assert invoke("report", finished_ledger, "--format", "html", "-o", out).exit_code == 0
    assert out.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html>")
