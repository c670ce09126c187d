"""``dispatcher run`` on spreadsheets as they come, against the emulator: a GBK CSV and an .xlsx
sheet (Chinese text in an ignored column, IMEIs as text and as numbers) send the right commands;
--encoding and --ignore-column work on run; the same rows saved again are the same job."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from dispatcher.emulator.server import Emulator, serve
from tests.support.cli import dispatcher_async, no_traceback, nothing_sent
from tests.support.job_texts import I1, I2, I3
from tests.support.sheets import write_sheet

HEAD = ["imei", "obj_id", "obj_inst_id", "res_id", "args", "expired_time", "备注"]
ROWS = [
    [I1, "3303", "0", "5605", "开灯", "+1d", "东门的表"],
    [I2, "3303", "0", "5605", "关灯 (夜间)", "+1d", ""],
    [I3, "3303", "0", "5605", "on", "+2d", "西门"],
]
SENT = {I1: "开灯", I2: "关灯 (夜间)", I3: "on"}
GBK_CSV = "\r\n".join(",".join(row) for row in [HEAD, *ROWS]) + "\r\n"


def _sent(emulator: Emulator) -> dict[str, str | None]:
    return {c.imei: c.args for c in emulator.accepted() if c.obj_id == 3303 and c.res_id == 5605}


@pytest.mark.parametrize("flags", [(), ("--encoding", "gbk")])
async def test_run_sends_a_gbk_csv_with_an_ignored_column(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    (tmp_path / "fleet.csv").write_bytes(GBK_CSV.encode("gbk"))
    emulator = Emulator()
    async with serve(emulator) as url:
        refused = await dispatcher_async("run", "fleet.csv", "--base-url", url, cwd=tmp_path)
        assert nothing_sent(emulator)
        done = await dispatcher_async(
            "run", "fleet.csv", "--ignore-column", "备注", *flags, "--base-url", url,
            "--rate", "0", cwd=tmp_path,
        )  # fmt: skip
    assert refused.code == 1
    assert "fleet.csv:1: 备注: unknown column" in refused.stdout
    assert "--ignore-column 备注" in refused.stdout
    assert done.code == 0, done.stdout + done.stderr
    assert _sent(emulator) == SENT
    assert no_traceback(done.stderr)


async def test_run_sends_an_xlsx_sheet_with_imeis_as_text_and_as_numbers(tmp_path: Path) -> None:
    sheet = [HEAD, [ROWS[0][0], 3303, 0, 5605, *ROWS[0][4:]]]
    sheet += [[int(row[0]), 3303.0, 0.0, 5605.0, *row[4:]] for row in ROWS[1:]]
    write_sheet(tmp_path / "fleet.xlsx", sheet, title="设备")
    emulator = Emulator()
    async with serve(emulator) as url:
        dry = await dispatcher_async(
            "run", "fleet.xlsx", "--ignore-column", "备注", "--dry-run", "--base-url", url,
            cwd=tmp_path,
        )  # fmt: skip
        assert nothing_sent(emulator)
        done = await dispatcher_async(
            "run", "fleet.xlsx", "--ignore-column", "备注", "--base-url", url, "--rate", "0",
            cwd=tmp_path,
        )  # fmt: skip
    assert dry.code == 0, dry.stdout + dry.stderr
    assert "  fleet.xlsx: sheet '设备'" in dry.stdout.splitlines()
    assert done.code == 0, done.stdout + done.stderr
    assert _sent(emulator) == SENT
    # The report says where each command was written as the run's errors do: FILE:SHEET!ROW.
    report = await dispatcher_async(
        "report", "fleet.xlsx.ledger.db", "--format", "csv", cwd=tmp_path
    )
    assert report.code == 0, report.stderr
    sources = [row["source"] for row in csv.DictReader(io.StringIO(report.stdout))]
    assert sorted(sources) == [f"fleet.xlsx:设备!{row}" for row in (2, 3, 4)], report.stdout


async def test_run_errors_of_a_sheet_name_the_sheet_and_row_and_send_nothing(
    tmp_path: Path,
) -> None:
    sheet = [HEAD[:-1], [int(I1) // 10, 3303, 0, 5605, "on", "+1d"]]  # 14 digits
    write_sheet(tmp_path / "fleet.xlsx", sheet, title="设备")
    emulator = Emulator()
    async with serve(emulator) as url:
        done = await dispatcher_async("run", "fleet.xlsx", "--base-url", url, cwd=tmp_path)
    assert done.code == 1
    assert f"fleet.xlsx:设备!2: imei: is the number {int(I1) // 10}" in done.stdout
    assert nothing_sent(emulator)


async def test_the_same_rows_saved_as_utf8_are_the_same_job(tmp_path: Path) -> None:
    job = tmp_path / "fleet.csv"
    job.write_bytes(GBK_CSV.replace("备注", "#备注").encode("gbk"))
    emulator = Emulator()
    async with serve(emulator) as url:
        first = await dispatcher_async("run", "fleet.csv", "--base-url", url, cwd=tmp_path)
        posts = emulator.stats()["posts"]
        job.write_text("\ufeff" + GBK_CSV.replace("备注", "#备注"), encoding="utf-8")
        again = await dispatcher_async("run", "fleet.csv", "--base-url", url, cwd=tmp_path)
    assert first.code == 0, first.stdout + first.stderr
    assert again.code == 0, again.stdout + again.stderr
    assert "the job is finished (3 accepted): nothing to send" in again.stderr
    assert "edited" not in again.stderr
    assert emulator.stats()["posts"] == posts == 3


async def test_the_same_rows_saved_as_a_workbook_resume_the_csv_ledger(tmp_path: Path) -> None:
    (tmp_path / "fleet.csv").write_bytes(GBK_CSV.replace("备注", "#备注").encode("gbk"))
    sheet = [HEAD, *([int(row[0]), 3303, 0, 5605, *row[4:]] for row in ROWS)]
    write_sheet(tmp_path / "fleet.xlsx", sheet)
    emulator = Emulator()
    async with serve(emulator) as url:
        first = await dispatcher_async("run", "fleet.csv", "--base-url", url, cwd=tmp_path)
        again = await dispatcher_async(
            "run", "fleet.xlsx", "--ignore-column", "备注", "--ledger", "fleet.csv.ledger.db",
            "--base-url", url, cwd=tmp_path,
        )  # fmt: skip
    assert first.code == 0, first.stdout + first.stderr
    assert again.code == 0, again.stdout + again.stderr
    assert "the job is finished (3 accepted): nothing to send" in again.stderr
    assert emulator.stats()["posts"] == 3
