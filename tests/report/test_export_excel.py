"""Exports made for Excel: the csv with a BOM, CRLF and digits kept as text, and the xlsx workbook
with text cells, a bold frozen header and flat memory; formulas never run in either."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import tracemalloc
import zipfile
from pathlib import Path

import openpyxl
import pytest

from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Delivery, Result, Status
from dispatcher.report.export import EXPORT_FIELDS, write_export
from dispatcher.report.spreadsheet import write_xlsx
from tests.support.ledger import make_command, write_outcomes

BOM = "\ufeff"
IMEI = "865820031234567"


def fill(ledger: Ledger) -> None:
    """Three commands: args and an error that begin like formulas, Chinese text, a device's answer
    with a control character, and an args of digits with a leading zero."""
    cmds = [
        make_command(0, imei=IMEI, args='=HYPERLINK("http://evil","x")'),
        make_command(1, args="温度 -5"),
        make_command(2, args="0012345"),
    ]
    ledger.register(cmds)
    write_outcomes(
        ledger,
        [
            Result(cmds[0].key, Status.REJECTED, -1, "=1+1 说明", None, 1, 1.0, 2.0),
            Result(cmds[1].key, Status.ACCEPTED, 0, "succ", "u-1", 1, 1.0, 3.0),
            Result(cmds[2].key, Status.ACCEPTED, 0, "succ", "u-2", 1, 1.0, 4.0),
        ],
    )
    ledger.record_delivery([Delivery(cmds[1].key, 6, "+ok", None, None, "bad\x1bansi", 9.0)])


def excel_csv(ledger: Ledger) -> str:
    out = io.StringIO(newline="")
    assert write_export(ledger, "csv", out, excel=True) == 3
    return out.getvalue()


def cells_of(text: str) -> list[dict[str, str]]:
    header, *rows = csv.reader(io.StringIO(text.removeprefix(BOM), newline=""))
    assert tuple(header) == EXPORT_FIELDS
    return [dict(zip(header, row, strict=True)) for row in rows]


# --- csv --excel ----------------------------------------------------------------------------


def test_excel_csv_starts_with_a_bom_and_ends_lines_with_crlf(ledger: Ledger) -> None:
    fill(ledger)
    text = excel_csv(ledger)
    assert text.startswith(BOM + "imei,")
    assert text.encode("utf-8").startswith(b"\xef\xbb\xbfimei,")
    assert text.count("\r\n") == 4  # the header and three rows
    assert "\n" not in text.replace("\r\n", "")
    assert "温度" in text


def test_excel_csv_keeps_an_imei_as_text(ledger: Ledger) -> None:
    fill(ledger)
    text = excel_csv(ledger)
    assert f'"=""{IMEI}"""' in text  # ="865820031234567" in the file: a text, never 8.6582E+14
    cells = cells_of(text)
    assert cells[0]["imei"] == f'="{IMEI}"'
    assert all(c["imei"].startswith('="86') and c["imei"].endswith('"') for c in cells)


def test_excel_csv_keeps_digits_with_a_leading_zero_as_text(ledger: Ledger) -> None:
    fill(ledger)
    assert cells_of(excel_csv(ledger))[2]["args"] == '="0012345"'


def test_excel_csv_leaves_numbers_and_short_texts_as_they_are(ledger: Ledger) -> None:
    fill(ledger)
    cells = cells_of(excel_csv(ledger))
    assert [c["errno"] for c in cells] == ["-1", "0", "0"]
    assert [c["obj_id"] for c in cells] == ["3200"] * 3
    assert [c["latency_ms"] for c in cells] == ["2.0", "3.0", "4.0"]
    assert cells[1]["args"] == "温度 -5"


def test_excel_csv_neutralises_args_and_error_texts_that_begin_like_a_formula(
    ledger: Ledger,
) -> None:
    fill(ledger)
    cells = cells_of(excel_csv(ledger))
    assert cells[0]["args"] == '\'=HYPERLINK("http://evil","x")'
    assert cells[0]["error"] == "'=1+1 说明"
    assert cells[1]["confirm_status"] == "'+ok"


def test_plain_csv_has_no_bom_and_keeps_the_imei_bare(ledger: Ledger) -> None:
    fill(ledger)
    out = io.StringIO(newline="")
    write_export(ledger, "csv", out)
    assert out.getvalue().startswith("imei,")
    assert cells_of(out.getvalue())[0]["imei"] == IMEI


def test_excel_is_only_for_csv(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="excel"):
        write_export(ledger, "jsonl", io.StringIO(), excel=True)


def test_an_empty_ledger_exports_a_header_after_the_bom(ledger: Ledger) -> None:
    out = io.StringIO(newline="")
    assert write_export(ledger, "csv", out, excel=True) == 0
    assert out.getvalue() == BOM + ",".join(EXPORT_FIELDS) + "\r\n"


# --- xlsx -----------------------------------------------------------------------------------


def xlsx_of(ledger: Ledger, path: Path) -> openpyxl.Workbook:
    with path.open("wb") as out:
        assert write_xlsx(ledger, out) == 3
    return openpyxl.load_workbook(path)


def test_xlsx_holds_the_same_columns_and_rows_as_the_csv(ledger: Ledger, tmp_path: Path) -> None:
    fill(ledger)
    sheet = xlsx_of(ledger, tmp_path / "out.xlsx").active
    assert sheet is not None
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0] == EXPORT_FIELDS
    assert len(rows) == 4
    records = [dict(zip(EXPORT_FIELDS, row, strict=True)) for row in rows[1:]]
    assert [r["status"] for r in records] == ["rejected", "accepted", "accepted"]
    assert [r["errno"] for r in records] == [-1, 0, 0]  # numbers stay numbers
    assert [r["reconciled"] for r in records] == [False] * 3  # a boolean, not "false"
    assert records[1]["args"] == "温度 -5"
    assert records[2]["args"] == "0012345"
    assert records[0]["uuid"] is None and records[1]["uuid"] == "u-1"


def test_xlsx_imei_cells_are_text_formatted_as_text(ledger: Ledger, tmp_path: Path) -> None:
    fill(ledger)
    sheet = xlsx_of(ledger, tmp_path / "out.xlsx").active
    assert sheet is not None
    imeis = [row[0] for row in sheet.iter_rows(min_row=2)]
    assert imeis[0].value == IMEI
    assert all(c.data_type == "s" and isinstance(c.value, str) for c in imeis)
    assert {c.number_format for c in imeis} == {"@"}


def test_xlsx_header_is_bold_frozen_and_columns_are_wide_enough(
    ledger: Ledger, tmp_path: Path
) -> None:
    fill(ledger)
    sheet = xlsx_of(ledger, tmp_path / "out.xlsx").active
    assert sheet is not None
    assert all(cell.font.b for cell in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["A"].width >= len(IMEI) + 1
    assert sheet.column_dimensions["I"].width >= 36  # uuid


def test_xlsx_writes_formula_like_texts_as_text_never_as_formulas(
    ledger: Ledger, tmp_path: Path
) -> None:
    fill(ledger)
    path = tmp_path / "out.xlsx"
    sheet = xlsx_of(ledger, path).active
    assert sheet is not None
    args = sheet.cell(row=2, column=EXPORT_FIELDS.index("args") + 1)
    error = sheet.cell(row=2, column=EXPORT_FIELDS.index("error") + 1)
    assert (args.value, args.data_type) == ('=HYPERLINK("http://evil","x")', "s")
    assert (error.value, error.data_type) == ("=1+1 说明", "s")
    assert args.quotePrefix and error.quotePrefix  # stays text when the cell is edited
    with zipfile.ZipFile(path) as book:
        sheet_xml = book.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet_xml


def test_xlsx_replaces_characters_a_workbook_cannot_hold(ledger: Ledger, tmp_path: Path) -> None:
    fill(ledger)
    sheet = xlsx_of(ledger, tmp_path / "out.xlsx").active
    assert sheet is not None
    result = sheet.cell(row=3, column=EXPORT_FIELDS.index("cmd_result") + 1)
    assert result.value == "bad\ufffdansi"


def test_xlsx_of_an_empty_ledger_has_the_header_only(ledger: Ledger, tmp_path: Path) -> None:
    path = tmp_path / "empty.xlsx"
    with path.open("wb") as out:
        assert write_xlsx(ledger, out) == 0
    sheet = openpyxl.load_workbook(path).active
    assert sheet is not None
    assert list(sheet.iter_rows(values_only=True)) == [EXPORT_FIELDS]


def test_xlsx_goes_on_over_a_new_sheet_past_a_sheets_rows(ledger: Ledger, tmp_path: Path) -> None:
    fill(ledger)
    path = tmp_path / "out.xlsx"
    with path.open("wb") as out:
        assert write_xlsx(ledger, out, rows_per_sheet=2) == 3
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["commands", "commands 2"]
    first, second = (list(book[name].iter_rows(values_only=True)) for name in book.sheetnames)
    assert first[0] == second[0] == EXPORT_FIELDS
    assert [r[0] for r in first[1:] + second[1:]] == [IMEI, "860000000000001", "860000000000002"]
    assert book["commands 2"].freeze_panes == "A2"
    assert book["commands 2"]["A2"].number_format == "@"


def test_xlsx_streams_rows_in_flat_memory(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "big.ledger.db", synchronous="normal") as ledger:
        ledger.register([make_command(i) for i in range(6000)])
        tracemalloc.start()
        try:
            with (tmp_path / "big.xlsx").open("wb") as out:
                assert write_xlsx(ledger, out) == 6000
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 4_000_000  # the 6,000 records alone, held, would be over 7 MB


# --- opened by LibreOffice, where it is installed -------------------------------------------

SOFFICE = shutil.which("soffice")
needs_libreoffice = pytest.mark.skipif(
    SOFFICE is None, reason="LibreOffice (soffice) not installed"
)


def libreoffice_convert(source: Path, to: str, infilter: str | None = None) -> Path:
    """``source`` opened by LibreOffice Calc (headless) and saved as ``to`` beside it."""
    assert SOFFICE is not None
    out_dir = source.parent / f"lo-{to}"
    command = [SOFFICE, "--headless", "--convert-to", to, "--outdir", str(out_dir), str(source)]
    if infilter is not None:
        command[2:2] = [f"--infilter={infilter}"]
    env = {**os.environ, "HOME": str(source.parent)}  # a profile of its own, not the user's
    subprocess.run(command, env=env, capture_output=True, timeout=180, check=True)
    converted = out_dir / f"{source.stem}.{to.split(':')[0]}"
    assert converted.exists(), f"LibreOffice wrote no {converted.name}"
    return converted


@needs_libreoffice
def test_libreoffice_reads_the_excel_csv_with_imeis_and_zero_led_digits_as_text(
    ledger: Ledger, tmp_path: Path
) -> None:
    fill(ledger)
    source = tmp_path / "for-excel.csv"
    with source.open("w", encoding="utf-8", newline="") as out:
        write_export(ledger, "csv", out, excel=True)
    # As its Text Import dialog opens it: UTF-8 (76), comma, double quote, from line 1.
    book = libreoffice_convert(source, "xlsx", "Text - txt - csv (StarCalc):44,34,76,1")
    sheet = openpyxl.load_workbook(book, data_only=True).active
    assert sheet is not None
    rows = [dict(zip(EXPORT_FIELDS, r, strict=True)) for r in sheet.iter_rows(values_only=True)]
    assert rows[1]["imei"] == IMEI  # all 15 digits, a text
    assert rows[3]["args"] == "0012345"
    assert rows[2]["args"] == "温度 -5"
    assert rows[1]["error"] == "'=1+1 说明"  # shown, never run


@needs_libreoffice
def test_libreoffice_opens_the_xlsx_with_imeis_whole_and_formulas_unrun(
    ledger: Ledger, tmp_path: Path
) -> None:
    fill(ledger)
    book = tmp_path / "commands.xlsx"
    with book.open("wb") as out:
        write_xlsx(ledger, out)
    text = libreoffice_convert(book, "csv:Text - txt - csv (StarCalc):44,34,76").read_text(
        encoding="utf-8"
    )
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert rows[0]["imei"] == IMEI
    assert rows[0]["args"] == '=HYPERLINK("http://evil","x")'  # the text, not a link
    assert rows[0]["error"] == "=1+1 说明"
    assert rows[2]["args"] == "0012345"
