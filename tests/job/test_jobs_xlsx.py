"""``.xlsx`` job files and a YAML job's ``targets_xlsx:``: the same columns as a CSV, rows numbered
as Excel shows them, cells taken by type (IMEIs stored as numbers, whole numbers, date cells), and
errors that name the sheet and row."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path

import pytest

from dispatcher.errors import JobFileError
from dispatcher.job.model import Command, Reading, load_job
from dispatcher.times import BEIJING
from tests.support.files import WriteFile
from tests.support.jobs import AT, DEFAULTS, I1, I2, I3, check, commands
from tests.support.sheets import write_sheet

HEAD = ["imei", "obj_id", "obj_inst_id", "res_id", "args", "expired_time"]
AS_TEXT = "format the column as text (Format Cells > Text) and type the IMEIs in again"


def test_xlsx_job_file_gives_the_commands_of_its_first_sheet(tmp_path: Path) -> None:
    path = write_sheet(
        tmp_path / "fleet.xlsx",
        [
            [*HEAD, "# 备注"],
            [I1, 3303, 0, 5605, "开灯", "+1d", "东门的表"],  # IMEI as text
            [int(I2), 3303.0, 0.0, 5605.0, "on", "+1d", None],  # IMEI and ids as numbers
        ],
        title="设备",
        others={"second": [["imei"], [I3]]},
    )
    result, problems = check(path)
    assert (problems, result.commands, result.devices) == ([], 2, 2)
    sent = commands(path)
    assert [(c.imei, c.obj_id, c.obj_inst_id, c.res_id, c.args) for c in sent] == [
        (I1, 3303, 0, 5605, "开灯"),
        (I2, 3303, 0, 5605, "on"),
    ]
    assert [(c.source, c.line) for c in sent] == [(f"{path}:设备!", 2), (f"{path}:设备!", 3)]
    job = load_job(path)
    assert job.name == "fleet" and job.table is not None
    assert job.table.note == f"{path}: sheet '设备'"


def test_rows_are_numbered_as_excel_numbers_them(tmp_path: Path) -> None:
    rows = [HEAD, [I1, 3, 0, 4, "on", "+1d"], [], [I2, 3, 0, 4, "on", "soon"]]
    path = write_sheet(tmp_path / "f.xlsx", rows, first_row=3)
    _, problems = check(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:Sheet1!6: expired_time: 'soon' is not a time")
    assert [c.line for c in load_job(path).scan(at=AT) if isinstance(c, Command)] == [4]


def test_the_first_visible_sheet_is_read(tmp_path: Path) -> None:
    path = write_sheet(
        tmp_path / "f.xlsx", [HEAD, [I1, 3, 0, 4, "on", "+1d"]], hidden={"old": [["x"]]}
    )
    assert [c.imei for c in commands(path)] == [I1]


@pytest.mark.parametrize(
    ("number", "message"),
    [
        (86451203000000, "is the number 86451203000000: a leading zero was lost; " + AS_TEXT),
        (
            12345670123459,
            "is the number 12345670123459: a leading zero was lost (012345670123459 passes the"
            " check digit); " + AS_TEXT,
        ),
        (
            8.6582e14,
            "is the number 865820000000000, which fails the check digit and looks cut short"
            " (Excel shows long numbers as 8.65820E+14 and keeps only what it shows): " + AS_TEXT,
        ),
        (8645120300000031, "is the number 8645120300000031, 16 digits, not 15: " + AS_TEXT),
        (864512.5, "is the number 864512.5, not 15 digits: " + AS_TEXT),
    ],
)
def test_imei_number_without_all_its_digits_says_to_format_the_column_as_text(
    tmp_path: Path, number: float, message: str
) -> None:
    path = write_sheet(tmp_path / "f.xlsx", [HEAD, [number, 3, 0, 4, "on", "+1d"]])
    result, problems = check(path)
    assert problems == [f"{path}:Sheet1!2: imei: {message}"]
    assert result.commands == 0


def test_imei_number_with_every_digit_is_taken_and_checked_as_text(tmp_path: Path) -> None:
    wrong = int(I1) + 1  # all 15 digits there, but the check digit is wrong: a warning
    path = write_sheet(tmp_path / "f.xlsx", [HEAD, [wrong, 3, 0, 4, "on", "+1d"]])
    result, problems = check(path)
    assert result.commands == 1
    assert problems == [
        f"warning: {path}:Sheet1!2: imei: check digit is wrong (Luhn: {I1}); is there a typo?"
    ]


def test_whole_number_cells_read_as_integers_and_others_as_written(tmp_path: Path) -> None:
    head = ["imei", "obj_id", "obj_inst_id", "res_id", "op", "value", "expired_time", "retry"]
    path = write_sheet(
        tmp_path / "f.xlsx", [head, [I1, 3308.0, 0, 5900, "write", 21.5, "+1d", 2.0]]
    )
    assert check(path)[1] == []
    (sent,) = commands(path)
    assert (sent.obj_id, sent.res_id, sent.retry) == (3308, 5900, 2)
    assert [(v.res_id, v.val) for v in sent.values] == [(5900, 21.5)]


def test_number_with_a_decimal_part_in_an_id_column_is_refused(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "f.xlsx", [HEAD, [I1, 3303.5, 0, 5605, "on", "+1d"]])
    _, problems = check(path)
    assert problems == [
        f"{path}:Sheet1!2: obj_id: must be a whole number from 0 to 65535, got '3303.5'"
    ]


def test_date_cell_in_a_time_column_is_that_time_in_utc8(tmp_path: Path) -> None:
    head = ["imei", "obj_id", "obj_inst_id", "res_id", "valid_time", "expired_time"]
    path = write_sheet(
        tmp_path / "f.xlsx",
        [
            head,
            [I1, 3, 0, 4, datetime(2030, 1, 2, 1, 59, 59, 999_900), datetime(2030, 1, 3, 2, 0)],
            [I2, 3, 0, 4, None, date(2030, 1, 4)],
        ],
    )
    result, problems = check(path)
    assert (problems, result.commands) == ([], 2)
    first, second = commands(path)
    assert first.valid_time is not None and first.valid_time.text == "2030-01-02T02:00:00"
    assert first.expired_time.at == datetime(2030, 1, 3, 2, 0, tzinfo=BEIJING)
    assert second.expired_time.text == "2030-01-04T00:00:00"


@pytest.mark.parametrize(
    ("column", "cell", "message"),
    [
        (
            "expired_time",
            time(2, 0),
            "is a time of day without a date (02:00:00): give a date and time"
            " (YYYY-MM-DD 02:00) or an offset (+1d)",
        ),
        (
            "args",
            datetime(2030, 1, 2),
            "is a date cell (2030-01-02): format the column as text (Format Cells >"
            " Text) and type the value in again",
        ),
        (
            "imei",
            datetime(2030, 1, 2, 8, 30),
            "is a date cell (2030-01-02 08:30:00): format the column as text (Format Cells >"
            " Text) and type the value in again",
        ),
    ],
)
def test_date_or_time_cell_that_cannot_be_taken_is_an_error_at_its_row(
    tmp_path: Path, column: str, cell: object, message: str
) -> None:
    row: list[object] = [I1, 3, 0, 4, "on", "+1d"]
    row[HEAD.index(column)] = cell
    path = write_sheet(tmp_path / "f.xlsx", [HEAD, [I2, 3, 0, 4, "on", "+1d"], row])
    result, problems = check(path)
    assert problems == [f"{path}:Sheet1!3: {column}: {message}"]
    assert result.commands == 1


def test_a_date_in_a_column_that_is_no_field_is_just_text(tmp_path: Path) -> None:
    path = write_sheet(
        tmp_path / "f.xlsx", [[*HEAD, "#added"], [I1, 3, 0, 4, "on", "+1d", date(2026, 1, 1)]]
    )
    assert check(path)[1] == []


def test_unknown_column_of_a_sheet_names_both_ways_to_skip_it(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "f.xlsx", [[*HEAD, "Note"], [I1, 3, 0, 4, "on", "+1d", "x"]])
    _, problems = check(path)
    assert problems == [
        f"{path}:Sheet1!1: note: unknown column (start its name with # or give --ignore-column"
        " note to skip it)"
    ]
    assert check(path, reading=Reading(ignore_columns=("note",)))[1] == []


def test_duplicate_rows_of_a_sheet_name_the_first_row(tmp_path: Path) -> None:
    row = [I1, 3, 0, 4, "on", "+1d"]
    path = write_sheet(tmp_path / "f.xlsx", [HEAD, row, row])
    _, problems = check(path)
    assert len(problems) == 1
    assert problems[0].startswith(
        f"{path}:Sheet1!3: imei: the same command (imei, obj_id, obj_inst_id, res_id, args) as"
        " row 2; remove the repeat, or name this workbook as the targets_xlsx of a YAML job"
    )


def test_a_workbook_without_an_imei_column_names_the_sheet_and_row(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "f.xlsx", [["device", "obj_id"], ["x", 3]], title="Fleet")
    with pytest.raises(JobFileError) as err:
        load_job(path)
    assert str(err.value) == f"{path}:Fleet!1: imei: no imei column in the header row"


def test_an_empty_sheet_is_an_error(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "f.xlsx", [])
    with pytest.raises(JobFileError) as err:
        load_job(path)
    assert str(err.value) == f"{path}:Sheet1!1: the file is empty"


def test_a_file_that_is_no_workbook_is_a_one_line_error(write_file: WriteFile) -> None:
    path = write_file("f.xlsx", "imei\n123\n")
    with pytest.raises(JobFileError) as err:
        load_job(path)
    assert str(err.value).startswith(f"{path}: cannot be read as an .xlsx workbook (")
    assert str(err.value).endswith("): save it from Excel as .xlsx")


def test_encoding_flag_is_refused_for_a_workbook(tmp_path: Path) -> None:
    path = write_sheet(tmp_path / "f.xlsx", [HEAD, [I1, 3, 0, 4, "on", "+1d"]])
    with pytest.raises(JobFileError) as err:
        load_job(path, Reading(encoding="gbk"))
    assert str(err.value) == (
        f"{path}: --encoding applies to a CSV: a workbook's sheet holds its own text"
    )


# --- targets_xlsx: in a YAML job ------------------------------------------------------------


def test_targets_xlsx_reads_the_named_sheet_with_ignore_columns(
    write_file: WriteFile, tmp_path: Path
) -> None:
    write_sheet(
        tmp_path / "fleet.xlsx",
        [["imei", "备注", "args"], [int(I1), "东门", "开灯"], [I2, None, None]],
        title="设备",
        others={"新表": [["imei", "备注"], [I3, "西门"]]},
    )
    path = write_file(
        "j.yaml",
        f"defaults:\n  {DEFAULTS}\n  args: std\ntargets_xlsx: fleet.xlsx\nsheet: 新表\n"
        "ignore_columns: [备注]\n",
    )
    result, problems = check(path)
    assert (problems, result.commands) == ([], 1)
    assert [(c.imei, c.args, c.source, c.line) for c in commands(path)] == [
        (I3, "std", f"{tmp_path / 'fleet.xlsx'}:新表!", 2)
    ]
    first = path.parent / "first.yaml"
    first.write_text(path.read_text("utf-8").replace("sheet: 新表\n", ""), "utf-8")
    assert [(c.imei, c.args) for c in commands(first)] == [(I1, "开灯"), (I2, "std")]


def test_targets_xlsx_unknown_sheet_lists_the_sheets(write_file: WriteFile, tmp_path: Path) -> None:
    write_sheet(tmp_path / "fleet.xlsx", [["imei"], [I1]], others={"b": [["imei"]]})
    path = write_file("j.yaml", f"defaults:\n  {DEFAULTS}\ntargets_xlsx: fleet.xlsx\nsheet: c\n")
    with pytest.raises(JobFileError) as err:
        load_job(path)
    assert str(err.value) == (
        f"{path}:7: sheet: no sheet 'c' in {tmp_path / 'fleet.xlsx'} (its sheets: 'Sheet1', 'b')"
    )


def test_targets_xlsx_unknown_column_suggests_ignore_columns(
    write_file: WriteFile, tmp_path: Path
) -> None:
    write_sheet(tmp_path / "fleet.xlsx", [["imei", "note"], [I1, "x"]])
    path = write_file("j.yaml", f"defaults:\n  {DEFAULTS}\ntargets_xlsx: fleet.xlsx\n")
    _, problems = check(path)
    assert problems == [
        f"{tmp_path / 'fleet.xlsx'}:Sheet1!1: note: unknown column (list it in ignore_columns:"
        " or start its name with # to skip it)"
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            "targets_csv: fleet.xlsx\n",
            "targets_csv: names a workbook: give it as targets_xlsx (sheet: names the sheet)",
        ),
        ("targets_xlsx: fleet.csv\n", "targets_xlsx: names no .xlsx workbook"),
        (
            "targets_csv: a.csv\ntargets_xlsx: fleet.xlsx\n",
            "targets_xlsx: give targets_csv or targets_xlsx, not both (the other is on line 6)",
        ),
    ],
)
def test_targets_xlsx_and_targets_csv_each_name_their_kind_of_file(
    write_file: WriteFile, lines: str, message: str
) -> None:
    path = write_file("j.yaml", f"defaults:\n  {DEFAULTS}\n{lines}")
    with pytest.raises(JobFileError) as err:
        load_job(path)
    assert str(err.value).startswith(f"{path}:")
    assert message in str(err.value)


def test_sheet_without_targets_xlsx_is_pointed_out(write_file: WriteFile) -> None:
    write_file("d.csv", f"imei\n{I1}\n")
    path = write_file("j.yaml", f"defaults:\n  {DEFAULTS}\ntargets_csv: d.csv\nsheet: a\n")
    _, problems = check(path)
    assert problems == [f"{path}:7: sheet: applies to targets_xlsx, and there is none"]


def test_a_value_under_a_column_without_a_name_is_an_error_naming_the_column(
    tmp_path: Path,
) -> None:
    path = write_sheet(
        tmp_path / "f.xlsx",
        [HEAD, [I1, 3, 0, 4, "on", "+1d"], [I2, 3, 0, 4, "on", "+1d", None, "x"]],
        first_row=2,
    )
    sheet = path.parent / "g.xlsx"
    write_sheet(sheet, [[None, *HEAD], [None, I1, 3, 0, 4, "on", "+1d"]])  # starts at column B
    result, problems = check(path)
    assert problems == [
        f"{path}:Sheet1!4: row: has a value in column H, which has no name in the header row:"
        " name the column (start its name with # to skip it)"
    ]
    assert result.commands == 1
    assert check(sheet)[1] == []
